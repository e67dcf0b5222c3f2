"""Events as clients send them: the serializers that describe and validate the input, and a fast
path that takes plainly valid input without them.

Every 202 validates at least one event, and a batch 500. DRF's generic field machinery cost a
third of a batch request's CPU; for input that is plainly valid, `event_fields` and
`batch_fields` check the same rules directly and return what the serializer would. Anything
they are unsure of goes through the serializer, which then explains what is wrong, so the 400s
are the serializer's own. A test runs valid and invalid input through both.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from config.api.fields import KnownFieldsOnly, StrictCharField
from config.api.parsers import jsonb_refusal
from events.operational import RESERVED_PREFIX
from subscribers.matching import (
    EVENT_TYPE_MAX_LENGTH,
    EVENT_TYPE_REGEX,
    is_valid_event_type,
    schema_pattern,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_LENGTH = 255


@extend_schema_field(
    {
        "type": "string",
        "pattern": schema_pattern(EVENT_TYPE_REGEX),
        "maxLength": EVENT_TYPE_MAX_LENGTH,
    }
)
class EventTypeField(serializers.CharField):
    default_error_messages = {
        "invalid_event_type": (
            "Must be lowercase words (letters, digits, '_' or '-') joined by dots, "
            "e.g. 'order.created'."
        ),
        "reserved": (
            f"Event types starting '{RESERVED_PREFIX}' are Herald's own operational events."
        ),
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", EVENT_TYPE_MAX_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if len(value) > self.max_length:  # said first: the pattern would refuse it less clearly
            self.fail("max_length", max_length=self.max_length)
        if not is_valid_event_type(value):
            self.fail("invalid_event_type")
        if value.startswith(RESERVED_PREFIX):
            self.fail("reserved")
        return value


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    # Doubled braces: DRF formats error messages with str.format.
    default_error_messages = {
        "not_object": 'Must be a JSON object, e.g. {{"order_id": 42}}.',
        "unstorable_string": (
            "Strings must not contain NUL (\\u0000) or unpaired surrogate characters."
        ),
        "unstorable_number": "Numbers must be finite: at most about 1.8e308 in magnitude.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_object")
        refusal = jsonb_refusal(data)
        if refusal is not None:
            self.fail(f"unstorable_{refusal}")
        # No call to JSONField's own check: it serializes the value to prove it is JSON, and this
        # value is what the request's JSON parser produced.
        return data


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "An order was created",
            value={"event_type": "order.created", "payload": {"order_id": 42, "total": "19.90"}},
        )
    ]
)
class EventInputSerializer(KnownFieldsOnly, serializers.Serializer):
    event_type = EventTypeField(
        help_text="Lowercase words joined by dots; `herald.*` is reserved for Herald's own events."
    )
    payload = JSONObjectField(help_text="Any JSON object; sent to receivers as `data`.")


# One bound serializer validates every single event: binding a new one deep-copies each declared
# field, which took a tenth of the request's CPU, and validating leaves nothing on the serializer,
# so request threads can share it.
_EVENT_INPUT = EventInputSerializer()


class BatchEventInputSerializer(EventInputSerializer):
    idempotency_key = StrictCharField(
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        required=False,
        help_text="Per event, like the Idempotency-Key header of a single event.",
    )

    def validate_idempotency_key(self, value: str) -> str:
        if "\x00" in value:
            raise serializers.ValidationError("Must not contain NUL.")
        return value

    def validate_payload(self, value: dict) -> dict:
        # The request as a whole has its own (larger) limit; each event keeps the single one.
        size = _payload_size(value)
        if size > settings.HERALD_MAX_PAYLOAD_BYTES:
            raise serializers.ValidationError(
                f"Payload is {size} bytes; the limit is {settings.HERALD_MAX_PAYLOAD_BYTES}."
            )
        return value


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Two events",
            value={
                "events": [
                    {
                        "event_type": "order.created",
                        "payload": {"order_id": 42},
                        "idempotency_key": "order-42-created",
                    },
                    {"event_type": "invoice.paid", "payload": {"invoice_id": 7}},
                ]
            },
        )
    ]
)
class BatchInputSerializer(KnownFieldsOnly, serializers.Serializer):
    events = serializers.ListField(
        child=BatchEventInputSerializer(),
        allow_empty=False,
        min_length=1,
        max_length=settings.HERALD_MAX_BATCH_EVENTS,
        help_text="At most HERALD_MAX_BATCH_EVENTS (500).",
    )

    def validate_events(self, value: list) -> list:
        if len(value) > settings.HERALD_MAX_BATCH_EVENTS:
            raise serializers.ValidationError(
                f"At most {settings.HERALD_MAX_BATCH_EVENTS} events per batch, not {len(value)}."
            )
        return value


_SINGLE_FIELDS = frozenset({"event_type", "payload"})
_BATCH_FIELDS = _SINGLE_FIELDS | {"idempotency_key"}
# What DRF's CharField refuses besides blank and too long (ProhibitSurrogateCharactersValidator,
# ProhibitNullCharactersValidator).
_UNSTORABLE_KEY = re.compile("[\x00\ud800-\udfff]")


def event_fields(data: Any) -> dict[str, Any]:
    """One event's validated fields (`event_type`, `payload`); ValidationError (a 400 naming
    the field) if they are not valid."""
    fields = _plainly_valid(data, allowed=_SINGLE_FIELDS, check_size=False)
    return fields if fields is not None else _EVENT_INPUT.run_validation(data)


def batch_fields(data: Any) -> list[dict[str, Any]]:
    """Each event of a batch body, validated (`idempotency_key` where given); ValidationError
    naming the event and field otherwise."""
    events = data.get("events") if type(data) is dict and data.keys() == {"events"} else None
    if type(events) is list and 0 < len(events) <= settings.HERALD_MAX_BATCH_EVENTS:
        valid = [_plainly_valid(item, allowed=_BATCH_FIELDS, check_size=True) for item in events]
        if None not in valid:
            return valid
    serializer = BatchInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data["events"]


def _plainly_valid(data: Any, *, allowed: frozenset, check_size: bool) -> dict[str, Any] | None:
    """The fields as the serializer would return them, or None if the serializer must judge.

    Stricter than the serializer, never looser: it takes no whitespace to trim, for one.
    """
    if type(data) is not dict or not _SINGLE_FIELDS <= data.keys() <= allowed:
        return None
    event_type, payload = data["event_type"], data["payload"]
    if (
        type(event_type) is not str
        or not is_valid_event_type(event_type)
        or event_type.startswith(RESERVED_PREFIX)
        or type(payload) is not dict
        or jsonb_refusal(payload) is not None
        or (check_size and _payload_size(payload) > settings.HERALD_MAX_PAYLOAD_BYTES)
    ):
        return None
    fields = {"event_type": event_type, "payload": payload}
    if "idempotency_key" in data:
        key = data["idempotency_key"]
        if (
            type(key) is not str
            or not 0 < len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH
            or _UNSTORABLE_KEY.search(key)
        ):
            return None
        fields["idempotency_key"] = key
    return fields


def _payload_size(payload: dict) -> int:
    return len(json.dumps(payload, separators=(",", ":")).encode())
