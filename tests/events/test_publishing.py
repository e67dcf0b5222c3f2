"""Publishing events: the one-statement path (PostgreSQL) must do what the ORM path does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.apikeys import api_key_create
from deliveries.models import Delivery
from events.models import Event
from events.publishing import events_publish
from events.services import EventInput, IdempotencyConflict, event_create, events_create
from subscribers.matching import matches
from subscribers.models import Subscriber

PATTERNS = [
    "*",
    "order.*",
    "order.created",
    "order",
    "order.created.*",
    "herald.*",
    "herald.circuit.opened",
    "a_b.*",
    "a-b.c",
]
EVENT_TYPES = [
    "order",
    "order.created",
    "order.created.v2",
    "orders.created",
    "order.createdx",
    "herald.circuit.opened",
    "heraldx.y",
    "a_b.c",
    "axb.c",
    "a-b.c",
]


@pytest.mark.django_db
def test_every_pattern_matches_as_subscribers_matching_says(make_subscriber):
    subscribers = {
        pattern: make_subscriber(name=pattern, event_types=[pattern]) for pattern in PATTERNS
    }
    now = timezone.now()
    published = [
        Event(event_type=event_type, payload={}, created_at=now) for event_type in EVENT_TYPES
    ]
    counts = events_publish(published, now=now)

    for event in published:
        expected = {
            subscribers[pattern].pk for pattern in PATTERNS if matches(pattern, event.event_type)
        }
        received = set(Delivery.objects.filter(event=event).values_list("subscriber_id", flat=True))
        assert received == expected, event.event_type
        assert counts[event.id] == len(expected)


@pytest.mark.django_db
def test_a_subscriber_with_several_patterns_gets_one_delivery(make_subscriber):
    make_subscriber(event_types=["order.*", "order.created", "*"])
    ingested = event_create(event_type="order.created", payload={})
    assert ingested.delivery_count == 1
    assert Delivery.objects.filter(event=ingested.event).count() == 1


@pytest.mark.django_db
def test_deliveries_are_queued_held_or_slotted_by_the_subscribers_state(make_subscriber):
    plain = make_subscriber(name="plain")
    open_circuit = make_subscriber(name="open")
    Subscriber.objects.filter(pk=open_circuit.pk).update(circuit_state=Subscriber.Circuit.OPEN)
    limited = make_subscriber(name="limited", rate_limit_per_second=2)
    paused = make_subscriber(name="paused")
    Subscriber.objects.filter(pk=paused.pk).update(is_active=False)
    now = timezone.now()

    ingested = events_create(
        inputs=[EventInput("order.created", {"n": n}) for n in range(3)], api_key=None
    )

    assert [item.delivery_count for item in ingested] == [3, 3, 3]
    queued = Delivery.objects.filter(subscriber=plain)
    assert queued.count() == 3
    for delivery in queued:
        assert delivery.status == Delivery.Status.PENDING
        assert delivery.enqueued_at is not None
        assert delivery.next_attempt_at == delivery.enqueued_at
        assert delivery.attempt_count == 0
        assert delivery.last_error == ""
        assert delivery.rate_slot_at is None
        assert delivery.created_at >= now
    held = Delivery.objects.filter(subscriber=open_circuit)
    assert held.count() == 3
    assert all(delivery.enqueued_at is None for delivery in held)
    # 2/s: the burst of one is tolerated, then one slot every half second.
    slots = sorted(
        Delivery.objects.filter(subscriber=limited).values_list("rate_slot_at", flat=True)
    )
    assert slots[1] - slots[0] <= timedelta(milliseconds=1)
    assert slots[2] - slots[1] == timedelta(milliseconds=500)


@pytest.mark.django_db
def test_the_event_is_stored_exactly_as_the_response_says(make_subscriber):
    make_subscriber()
    payload = {"name": "Zoë ✓", "amount": 19.9, "nested": {"list": [1, None, True]}}
    ingested = event_create(event_type="order.created", payload=payload, idempotency_key="k-1")
    stored = Event.objects.get(pk=ingested.event.pk)
    assert stored.payload == payload
    assert stored.created_at == ingested.event.created_at  # to the microsecond
    assert stored.idempotency_key == "k-1"
    assert stored.request_fingerprint == ingested.event.request_fingerprint


@pytest.mark.django_db
def test_one_event_is_one_statement_on_postgresql(make_subscriber):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    for n in range(5):
        make_subscriber(name=f"s{n}")
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        events_publish([Event(event_type="order.created", payload={}, created_at=now)], now=now)
    assert len(queries) == 1
    assert Delivery.objects.count() == 5


@pytest.mark.django_db
def test_a_single_event_is_stored_in_one_statement_without_a_transaction(make_subscriber):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    make_subscriber(name="a")
    make_subscriber(name="b", event_types=["invoice.*"])
    with CaptureQueriesContext(connection) as queries:
        ingested = event_create(event_type="order.created", payload={"n": 1})
    assert len(queries) == 1  # no BEGIN, no COMMIT: the statement is atomic on its own
    assert ingested.created and ingested.delivery_count == 1
    assert Delivery.objects.filter(event=ingested.event).count() == 1


@pytest.mark.django_db
def test_a_single_event_for_a_rate_limited_subscriber_gets_its_slot(make_subscriber):
    plain = make_subscriber(name="plain")
    limited = make_subscriber(name="limited", rate_limit_per_second=1)
    first = event_create(event_type="order.created", payload={"n": 1})
    second = event_create(event_type="order.created", payload={"n": 2})

    assert first.delivery_count == second.delivery_count == 2
    assert Delivery.objects.filter(subscriber=plain).count() == 2
    slots = sorted(
        Delivery.objects.filter(subscriber=limited).values_list("rate_slot_at", flat=True)
    )
    assert None not in slots
    assert Event.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("with_api_key", [True, False])
def test_a_repeated_key_stores_nothing_and_returns_the_original(make_subscriber, with_api_key):
    make_subscriber()
    api_key = api_key_create(name="producer").api_key if with_api_key else None
    original, repeat = (
        event_create(
            event_type="order.created", payload={"n": 1}, idempotency_key="k", api_key=api_key
        )
        for _ in range(2)
    )
    assert repeat.event.pk == original.event.pk and not repeat.created
    assert repeat.delivery_count == 1
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1


@pytest.mark.django_db
def test_only_keyed_events_are_fingerprinted_and_a_key_still_tells_repeats_from_conflicts():
    unkeyed = event_create(event_type="order.created", payload={"order_id": 1})
    keyed = event_create(event_type="order.created", payload={"order_id": 2}, idempotency_key="k")

    assert Event.objects.get(pk=unkeyed.event.pk).request_fingerprint == ""
    assert len(Event.objects.get(pk=keyed.event.pk).request_fingerprint) == 64
    repeat = event_create(event_type="order.created", payload={"order_id": 2}, idempotency_key="k")
    assert (repeat.created, repeat.event.pk) == (False, keyed.event.pk)
    with pytest.raises(IdempotencyConflict):
        event_create(event_type="order.created", payload={"order_id": 3}, idempotency_key="k")
