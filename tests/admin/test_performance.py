"""Changelists stay a fixed handful of queries however many rows they show, and big tables are
not counted row by row."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config import admin_tools
from deadletters.models import DeadLetter
from deliveries.models import Delivery, DeliveryAttempt
from events.services import EventInput, events_create

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="estimates come from PostgreSQL's statistics"
)

PAGES = [
    "admin:subscribers_subscriber_changelist",
    "admin:events_event_changelist",
    "admin:deliveries_delivery_changelist",
    "admin:deadletters_deadletter_changelist",
]


def _grow(subscribers: int, events: int) -> None:
    """More subscribers and events, each delivery with two attempts and a dead letter."""
    from subscribers.services import subscriber_create

    for n in range(subscribers):
        subscriber_create(name=f"s{n}", endpoint_url="http://127.0.0.1:9/hook", event_types=["*"])
    events_create(
        inputs=[EventInput(event_type=f"order.t{n % 7}", payload={"n": n}) for n in range(events)]
    )
    now = timezone.now()
    fresh = list(Delivery.objects.filter(attempts=None))
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(delivery=d, number=n, started_at=now, status_code=500, duration_ms=9)
        for d in fresh
        for n in (1, 2)
    )
    Delivery.objects.filter(pk__in=[d.pk for d in fresh]).update(
        status="failed", last_status_code=500, last_error="HTTP 500", delivered_at=None
    )
    DeadLetter.objects.bulk_create(DeadLetter(delivery=d, reason="all failed") for d in fresh)


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("page", PAGES)
def test_changelist_queries_do_not_grow_with_rows(operator_client, page):
    url = reverse(page)
    _grow(subscribers=2, events=2)
    _queries(operator_client, url)  # warm caches (content types, sessions)
    few = _queries(operator_client, url)

    _grow(subscribers=8, events=20)  # a full page of 100 rows or more everywhere

    assert _queries(operator_client, url) == few
    assert few <= 10


def test_change_pages_do_not_grow_with_inline_rows(operator_client):
    _grow(subscribers=3, events=1)
    event = DeadLetter.objects.first().delivery.event
    delivery = event.deliveries.first()
    urls = [
        reverse("admin:events_event_change", args=[event.pk]),
        reverse("admin:deliveries_delivery_change", args=[delivery.pk]),
    ]
    for url in urls:
        _queries(operator_client, url)
    few = [_queries(operator_client, url) for url in urls]

    _grow(subscribers=20, events=0)
    events_create(inputs=[EventInput(event_type="order.t0", payload={})])
    event = event.__class__.objects.order_by("-created_at").first()
    for n in range(3, 12):
        DeliveryAttempt.objects.create(delivery=delivery, number=n, started_at=timezone.now())
    urls[0] = reverse("admin:events_event_change", args=[event.pk])

    assert [_queries(operator_client, url) for url in urls] == few


@on_postgresql
def test_big_changelist_shows_an_estimate_instead_of_counting(operator_client, monkeypatch):
    _grow(subscribers=3, events=10)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE deliveries_delivery")
    monkeypatch.setattr(admin_tools, "EXACT_COUNT_BELOW", 10)

    with CaptureQueriesContext(connection) as captured:
        response = operator_client.get(reverse("admin:deliveries_delivery_changelist"))

    assert response.context["cl"].paginator.count_is_estimate
    assert "about" in response.content.decode()
    assert not [q for q in captured if q["sql"].startswith("SELECT COUNT(*)")]


@on_postgresql
def test_a_small_result_that_is_costly_to_find_is_estimated(operator_client, monkeypatch):
    _grow(subscribers=3, events=10)
    monkeypatch.setattr(admin_tools, "EXACT_COUNT_MAX_COST", 0)

    response = operator_client.get(
        reverse("admin:deadletters_deadletter_changelist"), {"event_type": "order.t1"}
    )

    assert response.context["cl"].paginator.count_is_estimate


@on_postgresql
def test_estimates_follow_the_filter(monkeypatch):
    _grow(subscribers=3, events=10)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE deliveries_delivery")

    everything = admin_tools.estimated_count(Delivery.objects.all()).rows
    failed = admin_tools.estimated_count(Delivery.objects.filter(status="failed")).rows
    pending = admin_tools.estimated_count(Delivery.objects.filter(status="pending")).rows

    assert everything == 30
    assert failed >= 20 and pending <= 2  # the planner's estimates, from the statistics


def test_small_results_are_counted_exactly(operator_client):
    _grow(subscribers=1, events=3)

    response = operator_client.get(reverse("admin:deliveries_delivery_changelist"))

    assert not response.context["cl"].paginator.count_is_estimate
    assert response.context["cl"].result_count == 3


def test_big_tables_offer_no_facet_counts(operator_client):
    response = operator_client.get(
        reverse("admin:deliveries_delivery_changelist"), {"_facets": "1"}
    )

    assert "Show counts" not in response.content.decode()
    assert not response.context["cl"].add_facets
