"""The dashboard's numbers, pages and demo button (the browser tests drive it live)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from config.dashboard.selectors import capped_count, dashboard_cards, latest_attempts
from deadletters.models import DeadLetter
from deliveries.models import Delivery, DeliveryAttempt
from events.models import Event
from events.services import EventInput, event_create, events_create
from subscribers.models import Subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("op", "op@example.com", "pw"))
    return client


@pytest.fixture
def traffic(make_subscriber):
    """Known traffic: what each card should say about it is worked out in the test."""
    now = timezone.now()
    healthy = make_subscriber(name="healthy")
    tripped = make_subscriber(name="tripped")
    paused = make_subscriber(name="paused")
    for n in range(3):
        event_create(event_type="order.created", payload={"n": n})
    old = event_create(event_type="order.created", payload={"old": True}).event
    Event.objects.filter(pk=old.pk).update(created_at=now - timedelta(minutes=10))
    Subscriber.objects.filter(pk=tripped.pk).update(circuit_state="open")
    Subscriber.objects.filter(pk=paused.pk).update(is_active=False)
    deliveries = list(Delivery.objects.filter(subscriber=healthy).order_by("created_at"))
    for delivery, (code, ms) in zip(
        deliveries, [(200, 10), (200, 20), (200, 30), (500, 1000)], strict=True
    ):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=1,
            started_at=now - timedelta(seconds=20),
            finished_at=now - timedelta(seconds=19),
            status_code=code,
            duration_ms=ms,
        )
    # Ten minutes ago: outside every window.
    DeliveryAttempt.objects.create(
        delivery=deliveries[0],
        number=2,
        started_at=now - timedelta(minutes=10),
        finished_at=now - timedelta(minutes=10),
        status_code=500,
        duration_ms=5000,
    )
    Delivery.objects.filter(pk=deliveries[3].pk).update(status="retrying")
    Delivery.objects.filter(pk=deliveries[2].pk).update(status="failed")
    DeadLetter.objects.create(delivery=deliveries[2], reason="all attempts failed")
    return {"now": now, "healthy": healthy, "deliveries": deliveries}


def test_cards_count_what_happened(traffic):
    cards = dashboard_cards(now=timezone.now())

    assert cards.events_per_minute == 3
    assert (cards.deliveries_per_minute, cards.attempts_per_minute) == (3, 4)
    assert cards.success_rate == 0.75 and cards.success_percent == "75.0%"
    assert (cards.latency_p50_ms, cards.latency_p95_ms) == (20, 1000)
    # Due now: every pending or retrying delivery (4 events x 3 subscribers, less the failed).
    assert cards.queue_depth.value == 11 and not cards.queue_depth.capped
    assert cards.retrying.value == 1
    assert cards.dead_letters_unresolved.value == 1
    assert (cards.open_circuits, cards.paused_subscribers) == (1, 1)


def test_counts_of_what_waits_stop_at_the_cap(make_subscriber):
    make_subscriber()
    events_create(inputs=[EventInput(event_type="order.created", payload={}) for _ in range(3)])

    counted = capped_count(Delivery.objects.all(), cap=2)

    assert (counted.value, counted.capped, str(counted)) == (2, True, "2+")
    assert str(capped_count(Delivery.objects.all(), cap=3)) == "3"


def test_feed_is_the_latest_attempts_newest_first(traffic):
    feed = latest_attempts(limit=3)

    assert len(feed) == 3
    assert 5000 not in [a.duration_ms for a in feed]  # the old attempt is not among the latest
    assert feed[0].delivery.subscriber.name == "healthy"


def test_dashboard_needs_a_staff_login(client, django_user_model):
    assert client.get("/dashboard/").status_code == 302
    assert client.get("/dashboard/").url.startswith("/admin/login/")
    client.force_login(django_user_model.objects.create_user("customer"))
    assert client.get("/dashboard/live/").url.startswith("/admin/login/")


def test_dashboard_renders_cards_feed_health_and_links(staff_client, traffic):
    response = staff_client.get("/dashboard/")

    html = response.content.decode()
    assert response.status_code == 200
    for card in [
        "events_per_minute",
        "success_rate",
        "latency",
        "queue_depth",
        "retrying",
        "dead_letters",
        "open_circuits",
    ]:
        assert f'data-card="{card}"' in html
    assert "75.0%" in html and "20 / 1000" in html and "ms per request" in html
    assert reverse("admin:deadletters_deadletter_changelist") + "?state=unresolved" in html
    assert reverse("admin:deliveries_delivery_change", args=[traffic["deliveries"][0].pk]) in html
    assert reverse("admin:subscribers_subscriber_change", args=[traffic["healthy"].pk]) in html
    assert 'data-refresh-ms="3000"' in html


def test_health_table_puts_trouble_first(staff_client, traffic):
    response = staff_client.get("/dashboard/live/")

    names = [s.name for s in response.context["subscribers"]]
    assert names == ["tripped", "paused", "healthy"]
    healthy = response.context["subscribers"][2]
    assert (healthy.delivered_last_hour, healthy.failing_last_hour) == (0, 2)


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_live_fragment_costs_the_same_whatever_the_traffic(staff_client, make_subscriber):
    make_subscriber()
    _queries(staff_client, "/dashboard/live/")
    quiet = _queries(staff_client, "/dashboard/live/")

    for n in range(20):
        make_subscriber(name=f"s{n}")
    events_create(inputs=[EventInput(event_type="order.created", payload={}) for _ in range(10)])
    now = timezone.now()
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(delivery=d, number=1, started_at=now, status_code=200, duration_ms=5)
        for d in Delivery.objects.all()
    )

    assert _queries(staff_client, "/dashboard/live/") == quiet <= 12


def test_run_demo_button_creates_the_demo(staff_client, settings):
    settings.HERALD_ALLOW_PRIVATE_TARGETS = True
    assert b"Run demo" in staff_client.get("/dashboard/").content

    response = staff_client.post("/dashboard/demo/", follow=True)

    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Demo started: 30 events, 90 deliveries to 3 demo subscribers")
    assert sorted(Subscriber.objects.values_list("name", flat=True)) == [
        "demo: dead",
        "demo: flaky",
        "demo: healthy",
    ]


def test_no_demo_button_where_private_targets_are_refused(staff_client, settings):
    settings.HERALD_ALLOW_PRIVATE_TARGETS = False

    assert b"Run demo" not in staff_client.get("/dashboard/").content
    assert staff_client.post("/dashboard/demo/").status_code == 403
    assert not Subscriber.objects.exists()
