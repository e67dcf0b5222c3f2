"""The fast path for event input agrees with the serializers it stands in for."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from events.inputs import (
    BatchEventInputSerializer,
    EventInputSerializer,
    _plainly_valid,
    batch_fields,
    event_fields,
)

VALID = {"event_type": "order.created", "payload": {"order_id": 42, "lines": [{"sku": "a"}]}}

CANDIDATES = [
    VALID,
    {"event_type": "a", "payload": {}},
    {"event_type": "github.pull_request.opened-2", "payload": {"x": None, "y": 1.5, "z": True}},
    {"event_type": "x" * 200, "payload": {}},
    {"event_type": "x" * 201, "payload": {}},
    {"event_type": " order.created", "payload": {}},  # the serializer trims; the fast path defers
    {"event_type": "order.created\n", "payload": {}},
    {"event_type": "Order.Created", "payload": {}},
    {"event_type": "order..created", "payload": {}},
    {"event_type": "herald.circuit.opened", "payload": {}},
    {"event_type": "", "payload": {}},
    {"event_type": 42, "payload": {}},
    {"event_type": None, "payload": {}},
    {"event_type": "ordér.created", "payload": {}},
    {"event_type": "order.created", "payload": []},
    {"event_type": "order.created", "payload": None},
    {"event_type": "order.created", "payload": "{}"},
    {"event_type": "order.created", "payload": {"s": "nul\x00"}},
    {"event_type": "order.created", "payload": {"s": "lone \ud800"}},
    {"event_type": "order.created", "payload": {"n": float("inf")}},
    {"event_type": "order.created", "payload": {"deep": {"er": [{"s": "\x00"}]}}},
    {"event_type": "order.created"},
    {"payload": {}},
    {},
    {**VALID, "extra": 1},
    {**VALID, "id": "9b2e7c1a-5d3f-4e8b-a6c4-1f0d2e3b4a59"},
    [VALID],
    "order.created",
    None,
]
BATCH_CANDIDATES = [
    *CANDIDATES,
    {**VALID, "idempotency_key": "order-42"},
    {**VALID, "idempotency_key": " spaced "},  # kept as sent by both
    {**VALID, "idempotency_key": "k" * 255},
    {**VALID, "idempotency_key": "k" * 256},
    {**VALID, "idempotency_key": ""},
    {**VALID, "idempotency_key": "nul\x00"},
    {**VALID, "idempotency_key": "lone \udc00"},
    {**VALID, "idempotency_key": 42},
    {**VALID, "idempotency_key": None},
    {"event_type": "order.created", "payload": {"big": "x" * 300}},
]


def _serializer_says(serializer, data):
    try:
        return True, serializer.run_validation(data)
    except serializers.ValidationError:
        return False, None


def _agree(fast, serializer, data) -> None:
    accepted, validated = _serializer_says(serializer, data)
    if fast is not None:
        assert accepted, f"the fast path took what the serializer refuses: {data!r}"
        assert dict(validated) == fast
    if not accepted:
        assert fast is None


@pytest.mark.parametrize("data", CANDIDATES, ids=repr)
def test_single_event_fast_path_never_takes_what_the_serializer_refuses(data):
    fast = _plainly_valid(data, allowed=frozenset({"event_type", "payload"}), check_size=False)

    _agree(fast, EventInputSerializer(), data)


@pytest.mark.parametrize("data", BATCH_CANDIDATES, ids=repr)
def test_batch_event_fast_path_never_takes_what_the_serializer_refuses(data, settings):
    settings.HERALD_MAX_PAYLOAD_BYTES = 256
    allowed = frozenset({"event_type", "payload", "idempotency_key"})

    fast = _plainly_valid(data, allowed=allowed, check_size=True)

    _agree(fast, BatchEventInputSerializer(), data)


def test_plain_events_take_the_fast_path():
    assert _plainly_valid(VALID, allowed=frozenset(VALID), check_size=False) == VALID
    keyed = {**VALID, "idempotency_key": "order-42"}
    assert _plainly_valid(keyed, allowed=frozenset(keyed), check_size=True) == keyed


def test_event_fields_explains_refusals_as_the_serializer_does():
    with pytest.raises(serializers.ValidationError) as raised:
        event_fields({"event_type": "Bad", "payload": []})

    assert set(raised.value.detail) == {"event_type", "payload"}


def test_event_fields_lets_the_serializer_trim_what_it_trims():
    assert event_fields({"event_type": " order.created ", "payload": {}}) == {
        "event_type": "order.created",
        "payload": {},
    }


def test_batch_fields_names_the_event_at_fault():
    body = {"events": [VALID, {**VALID, "idempotency_key": ""}]}

    with pytest.raises(serializers.ValidationError) as raised:
        batch_fields(body)

    assert set(raised.value.detail["events"]) == {1}


@pytest.mark.parametrize(
    "body",
    [{}, {"events": []}, {"events": VALID}, {"events": [VALID], "more": 1}, [VALID], None],
    ids=repr,
)
def test_malformed_batches_are_refused_by_the_serializer(body):
    with pytest.raises(serializers.ValidationError):
        batch_fields(body)


def test_batch_size_limit_is_read_at_call_time(settings):
    settings.HERALD_MAX_BATCH_EVENTS = 2

    assert len(batch_fields({"events": [VALID, VALID]})) == 2
    with pytest.raises(serializers.ValidationError):
        batch_fields({"events": [VALID, VALID, VALID]})
