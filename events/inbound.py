"""Inbound webhooks: verify the signature, read the event type and delivery id, ingest once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from config.api.parsers import storable_in_jsonb
from events.models import Source
from events.services import Ingested, event_receive
from events.sources import source_record_rejection
from events.verification import SignatureError, verify
from subscribers.matching import is_valid_event_type

logger = logging.getLogger(__name__)

DELIVERY_ID_MAX_LENGTH = 255


class InboundInvalid(Exception):
    """A verified request whose body or headers cannot make an event; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def inbound_verify(
    *, source: Source, body: bytes, headers: Mapping[str, str], now: datetime
) -> None:
    """Return if the source signed `body`; else count the rejection and raise SignatureError."""
    try:
        verify(
            scheme=source.scheme,
            body=body,
            headers=headers,
            secrets=source.valid_secrets(now),
            now=now.timestamp(),
        )
    except SignatureError as exc:
        source_record_rejection(source=source, reason=exc.reason, now=now)
        logger.warning(
            "inbound webhook rejected", extra={"source": source.slug, "reason": exc.reason}
        )
        raise


def inbound_ingest(*, source: Source, payload: Any, headers: Mapping[str, str]) -> Ingested:
    """Store a verified request's body as `<slug>.<provider type>` and fan it out, once per id."""
    if not isinstance(payload, dict):
        raise InboundInvalid("body", "Must be a JSON object.")
    if not storable_in_jsonb(payload):
        raise InboundInvalid(
            "body", "Strings must not contain NUL (\\u0000) or unpaired surrogate characters."
        )
    provider_type, type_field, delivery_id, id_field = READERS[source.scheme](
        source, payload, headers
    )
    ingested = event_receive(
        source=source,
        event_type=_event_type(source, provider_type, field=type_field),
        payload=payload,
        delivery_id=_delivery_id(delivery_id, field=id_field),
    )
    logger.info(
        "inbound webhook accepted" if ingested.created else "inbound webhook repeated",
        extra={
            "source": source.slug,
            "event_id": str(ingested.event.id),
            "source_delivery_id": ingested.event.source_delivery_id,
        },
    )
    return ingested


# Each scheme's sender names the event type and its delivery id in its own place. A reader
# returns (type, where it was read, delivery id, where it was read); the places name the field in
# a 400, so the sender's operator knows what to fix.
Reader = Callable[[Source, dict, Mapping[str, str]], tuple[Any, str, Any, str]]


def _read_github(source: Source, payload: dict, headers: Mapping[str, str]):
    event = headers.get("X-GitHub-Event", "").strip()
    action = payload.get("action")
    if event and isinstance(action, str) and action:
        event = f"{event}.{action}"  # "issues" + "opened": subscribers can pick the action
    return event, "X-GitHub-Event", headers.get("X-GitHub-Delivery"), "X-GitHub-Delivery"


def _read_stripe(source: Source, payload: dict, headers: Mapping[str, str]):
    return payload.get("type"), "type", payload.get("id"), "id"


def _read_standard(source: Source, payload: dict, headers: Mapping[str, str]):
    return payload.get("type"), "type", headers.get("webhook-id"), "webhook-id"


def _read_hmac(source: Source, payload: dict, headers: Mapping[str, str]):
    value: Any = payload
    for part in source.event_type_field.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return (
        value,
        source.event_type_field,
        headers.get("X-Idempotency-Key"),
        "X-Idempotency-Key",
    )


READERS: dict[str, Reader] = {
    Source.Scheme.GITHUB: _read_github,
    Source.Scheme.STRIPE: _read_stripe,
    Source.Scheme.STANDARD: _read_standard,
    Source.Scheme.HMAC: _read_hmac,
}


def _event_type(source: Source, provider_type: Any, *, field: str) -> str:
    if not isinstance(provider_type, str) or not provider_type.strip():
        raise InboundInvalid(field, "Missing: this source reads the event type from here.")
    event_type = f"{source.slug}.{provider_type.strip().lower()}"
    if not is_valid_event_type(event_type):
        raise InboundInvalid(
            field,
            f"{provider_type[:100]!r} does not make a valid event type: it must be words of "
            "letters, digits, '_' or '-' joined by dots, e.g. 'invoice.paid'.",
        )
    return event_type


def _delivery_id(value: Any, *, field: str) -> str:
    """The sender's id for this delivery, or "" when it sent none (then nothing de-duplicates)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InboundInvalid(field, "Must be a string.")
    value = value.strip()
    if len(value) > DELIVERY_ID_MAX_LENGTH:
        raise InboundInvalid(field, f"At most {DELIVERY_ID_MAX_LENGTH} characters.")
    if "\x00" in value:
        raise InboundInvalid(field, "Must not contain NUL.")
    return value
