"""Metrics: the JSON and Prometheus views of one snapshot, from queries bounded at any size."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from config.apikeys import api_key_create
from config.db import bounded_count, rows_ever_inserted
from config.metrics import metrics_snapshot
from deadletters.models import DeadLetter
from deliveries.heartbeat import worker_heartbeat
from deliveries.models import Delivery, DeliveryAttempt
from events.models import Event
from events.services import event_create
from subscribers.models import Subscriber


def client_with(*scopes: str) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='c', scopes=scopes).plaintext}"
    )
    return client


@pytest.fixture
def traffic(make_subscriber):
    """A little of everything: each status, attempts of each outcome, a dead letter, circuits."""
    now = timezone.now()
    billing = make_subscriber(name="billing", event_types=["order.*"])
    paused = make_subscriber(name="paused", event_types=["order.*"])
    make_subscriber(name="other", event_types=["invoice.*"])
    for n in range(5):
        event_create(event_type="order.created", payload={"n": n})
    # 10 deliveries: 5 to billing, 5 to paused
    mine = list(Delivery.objects.filter(subscriber=billing).order_by("created_at"))
    theirs = list(Delivery.objects.filter(subscriber=paused).order_by("created_at"))
    Delivery.objects.filter(pk__in=[d.pk for d in mine[:2]]).update(status="delivered")
    Delivery.objects.filter(pk=mine[2].pk).update(status="failed", enqueued_at=None)
    Delivery.objects.filter(pk=mine[3].pk).update(
        status="retrying", next_attempt_at=now + timedelta(seconds=30)
    )
    Delivery.objects.filter(pk=mine[4].pk).update(
        status="in_flight", enqueued_at=None, next_attempt_at=None
    )
    # paused's: three held, two queued and overdue by a minute
    Delivery.objects.filter(pk__in=[d.pk for d in theirs[:3]]).update(enqueued_at=None)
    Delivery.objects.filter(pk__in=[d.pk for d in theirs[3:]]).update(
        next_attempt_at=now - timedelta(seconds=60)
    )
    Subscriber.objects.filter(pk=paused.pk).update(circuit_state="open")
    DeadLetter.objects.create(delivery=mine[2], reason="all attempts failed")
    attempts = [
        (mine[0], 200, 30, ""),  # succeeded, 0.03 s
        (mine[1], 204, 700, ""),  # succeeded, 0.7 s
        (mine[2], 500, 120, ""),  # http_error, 0.12 s
        (mine[3], None, 3000, "timed out"),  # network_error, 3 s
    ]
    for number, (delivery, code, duration, error) in enumerate(attempts, start=1):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=now - timedelta(seconds=10),
            finished_at=now,
            duration_ms=duration,
            status_code=code,
            error=error,
        )
    DeliveryAttempt.objects.create(delivery=mine[4], number=1, started_at=now)  # in flight
    # An attempt from an hour ago is outside the window.
    DeliveryAttempt.objects.create(
        delivery=mine[0],
        number=9,
        started_at=now - timedelta(hours=1),
        finished_at=now - timedelta(hours=1),
        duration_ms=5,
        status_code=200,
    )
    worker_heartbeat(worker="host:1", started_at=now, now=now - timedelta(seconds=4))
    return now


@pytest.mark.django_db
def test_the_snapshot_counts_what_the_tables_hold(traffic):
    snapshot = metrics_snapshot(now=traffic)

    assert snapshot["deliveries"] == {
        "pending": 5,
        "in_flight": 1,
        "retrying": 1,
        "delivered": 2,
        "failed": 1,
    }
    assert snapshot["estimated"] == []
    queue = snapshot["queue"]
    assert (queue["depth"], queue["held"], queue["retrying"]) == (2, 3, 1)
    assert 59 <= queue["oldest_age_seconds"] <= 61
    assert snapshot["dead_letters_unresolved"] == 1
    assert snapshot["circuits"] == {"open": 1, "half_open": 0}
    assert snapshot["subscribers"] == {"active": 3, "inactive": 0}
    assert snapshot["attempts"]["recent"] == {
        "succeeded": 2,
        "http_error": 1,
        "network_error": 1,
        "in_flight": 1,
    }
    latency = snapshot["latency_seconds"]
    assert latency["count"] == 4
    assert latency["sum"] == pytest.approx(3.85)
    assert latency["buckets"] == {
        "0.05": 1,
        "0.1": 1,
        "0.25": 2,
        "0.5": 2,
        "1.0": 3,
        "2.5": 3,
        "5.0": 4,
        "10.0": 4,
    }
    assert snapshot["workers"]["alive"] == 1
    assert 3.5 < snapshot["workers"]["last_heartbeat_age_seconds"] < 6
    assert snapshot["events_ingested_total"] >= 0


@pytest.mark.django_db
def test_the_snapshot_costs_the_same_number_of_queries_whatever_the_data(
    traffic, django_assert_max_num_queries
):
    with django_assert_max_num_queries(20) as context:
        metrics_snapshot()
    few = len(context.captured_queries)
    for n in range(30):
        event_create(event_type="order.created", payload={"more": n})

    with django_assert_max_num_queries(few):
        metrics_snapshot()


@pytest.mark.django_db
def test_counts_past_the_cap_are_estimates_not_scans(make_subscriber):
    make_subscriber()
    for n in range(6):
        event_create(event_type="order.created", payload={"n": n})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE deliveries_delivery")

    exact = bounded_count(Delivery.objects.all(), cap=10)
    capped = bounded_count(Delivery.objects.all(), cap=3)

    assert exact == (6, True)
    assert capped[1] is False
    assert capped[0] >= 3


@pytest.mark.django_db(transaction=True)
def test_events_ingested_is_a_counter_that_pruning_does_not_lower():
    before = rows_ever_inserted(Event)
    for n in range(3):
        event_create(event_type="order.created", payload={"n": n})
    Event.objects.filter(payload__n=0).delete()

    deadline = time.monotonic() + 10
    while rows_ever_inserted(Event) < before + 3 and time.monotonic() < deadline:
        # PostgreSQL publishes a backend's table statistics at most once a second.
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_stat_force_next_flush()")
        time.sleep(0.2)

    if connection.vendor == "postgresql":
        # Statistics count every insert, rolled-back ones too (of earlier tests here): at least.
        assert rows_ever_inserted(Event) >= before + 3
    else:
        assert rows_ever_inserted(Event) == 2  # SQLite, for development: the rows there are


@pytest.mark.django_db
def test_json_metrics_need_the_read_or_metrics_scope(traffic):
    response = client_with("metrics").get("/api/v1/metrics")

    assert response.status_code == 200
    assert response.json()["deliveries"]["pending"] == 5
    assert client_with("read").get("/api/v1/metrics").status_code == 200
    assert client_with("events:publish").get("/api/v1/metrics").status_code == 403
    assert APIClient().get("/api/v1/metrics").status_code == 401


def _families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _value(family, **labels) -> float:
    (sample,) = [
        s for s in family.samples if s.labels == labels and not s.name.endswith(("_created",))
    ][:1]
    return sample.value


@pytest.mark.django_db
def test_prometheus_metrics_in_the_text_format(traffic, settings):
    settings.HERALD_METRICS_PUBLIC = False
    response = client_with("metrics").get(
        "/metrics",
        HTTP_ACCEPT="application/openmetrics-text;version=1.0.0;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = _families(response.content.decode())
    assert _value(families["herald_deliveries"], status="pending") == 5
    assert _value(families["herald_queue_depth"]) == 2
    assert _value(families["herald_deliveries_held"]) == 3
    assert _value(families["herald_deliveries_retrying"]) == 1
    assert _value(families["herald_dead_letters_unresolved"]) == 1
    assert _value(families["herald_circuits"], state="open") == 1
    assert _value(families["herald_delivery_attempts_recent"], outcome="http_error") == 1
    assert _value(families["herald_workers_alive"]) == 1
    assert families["herald_events_ingested"].type == "counter"
    buckets = {
        s.labels["le"]: s.value
        for s in families["herald_delivery_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert buckets["0.25"] == 2
    assert buckets["+Inf"] == 4
    assert 59 <= _value(families["herald_queue_oldest_age_seconds"]) <= 62


@pytest.mark.django_db
def test_prometheus_metrics_need_a_key_unless_public(settings):
    settings.HERALD_METRICS_PUBLIC = False

    anonymous = APIClient().get("/metrics")
    producer = client_with("events:publish").get("/metrics")
    settings.HERALD_METRICS_PUBLIC = True
    public = APIClient().get("/metrics")

    assert anonymous.status_code == 401
    assert anonymous["Content-Type"] == "application/json"
    assert anonymous.json()["error"]["code"] == "not_authenticated"
    assert producer.status_code == 403
    assert producer.json()["error"]["code"] == "insufficient_scope"
    assert public.status_code == 200
    assert b"herald_queue_depth" in public.content
