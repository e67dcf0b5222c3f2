"""Ingestion: accept an event once, store it, and hand it to fan-out in the same transaction."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from config.models import ApiKey
from deliveries.services import fan_out
from events.models import Event
from subscribers.selectors import subscribers_matching

logger = logging.getLogger(__name__)


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a different request."""

    def __init__(self, event: Event) -> None:
        super().__init__(
            f"Idempotency-Key {event.idempotency_key!r} was already used for a different request "
            f"(event {event.id})."
        )
        self.event = event


@dataclass(frozen=True)
class Ingested:
    event: Event
    delivery_count: int
    created: bool  # False: an earlier request with the same idempotency key created it


def request_fingerprint(*, event_type: str, payload: Any) -> str:
    canonical = json.dumps(
        {"event_type": event_type, "payload": payload}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def event_create(
    *,
    event_type: str,
    payload: dict[str, Any],
    api_key: ApiKey | None = None,
    idempotency_key: str | None = None,
) -> Ingested:
    """Store an event and its deliveries and queue their jobs, all or nothing.

    With an idempotency key, the same request again returns the original event, and a different
    request with the same key raises IdempotencyConflict. Two racing requests with one key are
    settled by the unique constraint: the loser finds the winner's event.
    """
    fingerprint = request_fingerprint(event_type=event_type, payload=payload)
    if idempotency_key:
        earlier = _earlier_event(api_key=api_key, idempotency_key=idempotency_key)
        if earlier is not None:
            return _repeat(earlier, fingerprint=fingerprint)
    try:
        with transaction.atomic():
            event = Event.objects.create(
                event_type=event_type,
                payload=payload,
                api_key=api_key,
                idempotency_key=idempotency_key or "",
                request_fingerprint=fingerprint,
            )
            subscribers = subscribers_matching(event_type=event_type)
            fan_out(event_id=event.id, subscribers=subscribers, now=event.created_at)
    except IntegrityError:
        earlier = _earlier_event(api_key=api_key, idempotency_key=idempotency_key)
        if earlier is None:
            raise
        return _repeat(earlier, fingerprint=fingerprint)
    logger.info(
        "event accepted event_id=%s event_type=%s deliveries=%s",
        event.id,
        event_type,
        len(subscribers),
    )
    return Ingested(event=event, delivery_count=len(subscribers), created=True)


def _earlier_event(*, api_key: ApiKey | None, idempotency_key: str | None) -> Event | None:
    if not idempotency_key:
        return None
    return Event.objects.filter(api_key=api_key, idempotency_key=idempotency_key).first()


def _repeat(event: Event, *, fingerprint: str) -> Ingested:
    if event.request_fingerprint != fingerprint:
        raise IdempotencyConflict(event)
    return Ingested(event=event, delivery_count=event.deliveries.count(), created=False)
