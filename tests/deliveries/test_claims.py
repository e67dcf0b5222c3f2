"""What a claim costs the database, and that what it loads is complete."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deliveries.claims import (
    _lease_expired_condition,
    _queued_condition,
    deliveries_claim,
    delivery_claim,
)
from deliveries.locked import _join
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.outcomes import Sent, deliveries_record_outcomes
from deliveries.sender import SendResult
from events.models import Event
from events.services import event_create
from subscribers.models import Subscriber
from subscribers.services import subscribers_rotate_secret

pytestmark = pytest.mark.django_db


def _publish(count: int) -> None:
    for n in range(count):
        event_create(event_type="order.created", payload={"n": n, "note": "ünïcode"})


def _claim_and_record(limit: int) -> tuple[int, int]:
    """Queries taken to claim up to `limit` deliveries, and to record them all as delivered."""
    now = timezone.now()
    with CaptureQueriesContext(connection) as claiming:
        claims = deliveries_claim(limit=limit, now=now)
    assert len(claims) == limit
    ok = SendResult(status_code=200, duration_ms=5)
    with CaptureQueriesContext(connection) as recording:
        deliveries_record_outcomes([Sent(claim, ok) for claim in claims], now=now)
    return len(claiming), len(recording)


def test_a_batch_costs_the_same_queries_as_a_single_delivery(make_subscriber):
    for n in range(4):
        make_subscriber(name=f"receiver {n}")
    subscribers_rotate_secret(subscribers=Subscriber.objects.all()[:2], now=timezone.now())
    _publish(17)  # 68 deliveries

    single = _claim_and_record(1)
    batch = _claim_and_record(64)

    assert batch[0] == single[0] <= 6  # claiming
    if connection.vendor == "postgresql":  # SQLite, in process, updates row by row
        assert batch[1] == single[1] <= 4  # recording


def test_claimed_deliveries_are_sent_and_recorded_without_further_queries(make_subscriber):
    make_subscriber()
    subscribers_rotate_secret(subscribers=Subscriber.objects.all(), now=timezone.now())
    make_subscriber()
    _publish(3)
    now = timezone.now()
    claims = deliveries_claim(limit=10, now=now)

    with CaptureQueriesContext(connection) as reading:
        for claim in claims:
            delivery = claim.delivery
            assert delivery.subscriber.signing_secrets(now)
            assert delivery.event.payload["note"] == "ünïcode"
            assert (delivery.event.event_type, delivery.subscriber.is_active) == (
                "order.created",
                True,
            )

    assert len(claims) == 6 and len(reading) == 0


def test_a_claim_holds_what_the_database_holds(make_subscriber):
    make_subscriber(event_types=["order.*"])
    subscribers_rotate_secret(subscribers=Subscriber.objects.all(), now=timezone.now())
    _publish(1)
    delivery = Delivery.objects.get()

    claim = delivery_claim(delivery_id=str(delivery.pk), now=timezone.now() + timedelta(seconds=1))

    def fields(instance) -> dict:
        return {f.attname: getattr(instance, f.attname) for f in type(instance)._meta.fields}

    assert fields(claim.delivery.event) == fields(Event.objects.get())
    assert fields(claim.delivery.subscriber) == fields(Subscriber.objects.get())
    assert fields(claim.delivery) == fields(Delivery.objects.get())  # as the claim left it
    assert fields(claim.attempt) == fields(DeliveryAttempt.objects.get())


def test_a_batch_builds_each_subscriber_and_event_once(make_subscriber):
    first, second = make_subscriber(name="first"), make_subscriber(name="second")
    _publish(3)  # 6 deliveries: 3 events, each to both subscribers

    claims = deliveries_claim(limit=10, now=timezone.now())

    subscribers = {id(c.delivery.subscriber): c.delivery.subscriber_id for c in claims}
    events = {id(c.delivery.event): c.delivery.event_id for c in claims}
    assert sorted(subscribers.values(), key=str) == sorted([first.pk, second.pk], key=str)
    assert len(events) == 3 == len(set(events.values()))
    assert all(c.delivery.subscriber.pk == c.delivery.subscriber_id for c in claims)
    assert all(c.delivery.event.pk == c.delivery.event_id for c in claims)


def test_a_number_already_in_the_history_is_passed_over(make_subscriber):
    if connection.vendor != "postgresql":
        pytest.skip("guards the release of the attempts_made migration on PostgreSQL")
    make_subscriber()
    _publish(1)
    delivery = Delivery.objects.get()
    # Claimed by code from before attempts_made: numbered from the history, not counted.
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=timezone.now())

    claim = delivery_claim(delivery_id=delivery.pk, now=timezone.now())

    assert claim.attempt.number == 2
    assert list(delivery.attempts.values_list("number", flat=True)) == [1, 2]


@pytest.mark.parametrize(
    ("condition", "order_by", "index"),
    [
        (
            lambda: f"{_queued_condition()} AND d.next_attempt_at <= $1",
            "d.next_attempt_at",
            "delivery_ready_idx",
        ),
        (
            lambda: f"{_lease_expired_condition()} $1",
            "d.lease_until",
            "delivery_lease_idx",
        ),
    ],
)
def test_a_claims_generic_plan_still_reads_its_partial_index(condition, order_by, index):
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements and their generic plans are PostgreSQL's")
    # A prepared statement may run on a generic plan, which knows no parameter values: the
    # statuses must be in the SQL for the planner to see that the partial index covers the rows.
    # Sequential scans are off so that a table this small still shows which index is usable.
    select = _join(connections[DEFAULT_DB_ALIAS]).select
    sql = f"{select} WHERE {condition()} ORDER BY {order_by} LIMIT $2"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"PREPARE generic_claim AS {sql}")
        try:
            cursor.execute("EXPLAIN EXECUTE generic_claim(now(), 64)")
            plan = "\n".join(line for (line,) in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE generic_claim")

    assert f"Index Scan using {index} on deliveries_delivery d" in plan, plan
