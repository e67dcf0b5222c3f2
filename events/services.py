"""Ingestion: accept events once, store them, and hand them to fan-out in the same transaction."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from config.dberrors import is_deadlock
from config.models import ApiKey
from events.models import Event, Source
from events.publishing import event_publish_alone, events_publish

logger = logging.getLogger(__name__)

DEADLOCK_ATTEMPTS = 3


class IdempotencyConflict(Exception):
    """The idempotency key was already used for a different request.

    `index` is the position of the input that repeated it (a batch names it in the 409).
    """

    def __init__(self, event: Event, *, index: int = 0) -> None:
        super().__init__(
            f"Idempotency-Key {event.idempotency_key!r} was already used for a different request "
            f"(event {event.id})."
        )
        self.event = event
        self.index = index


class KeyRepeatedInBatch(Exception):
    """Two events of one batch carry the same idempotency key but differ: nothing was stored,
    so there is no original to name, only the two inputs."""

    def __init__(self, *, key: str, first: int, index: int) -> None:
        super().__init__(
            f"Also the idempotency_key of events[{first}], which is a different event; "
            "a key names one event."
        )
        self.key, self.first, self.index = key, first, index


@dataclass(frozen=True)
class EventInput:
    event_type: str
    payload: dict[str, Any]
    idempotency_key: str = ""


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
    """Store one event and queue its deliveries, all or nothing."""
    (ingested,) = events_create(
        inputs=[EventInput(event_type, payload, idempotency_key or "")], api_key=api_key
    )
    return ingested


def events_create(*, inputs: Sequence[EventInput], api_key: ApiKey | None = None) -> list[Ingested]:
    """Store events with their queued deliveries in one transaction: all of them or none.

    An idempotency key already used with the same event returns the original; used with a
    different event it raises IdempotencyConflict and nothing is stored. Requests racing with one
    key are settled by the unique constraint: the loser retries once and finds the winner's event.
    """
    # Only a keyed event is ever compared with a later request, so only it needs a fingerprint:
    # hashing a canonical copy of every payload was a tenth of a batch's CPU.
    fingerprints = [
        request_fingerprint(event_type=i.event_type, payload=i.payload) if i.idempotency_key else ""
        for i in inputs
    ]
    attempt = 1
    while True:
        try:
            return _events_store(inputs, fingerprints, api_key=api_key)
        except OperationalError as exc:
            # Storing deliveries locks each matched subscriber's row (its foreign key) in the
            # order they match; a transaction locking subscribers in another order (a batch
            # reserving rate-limit slots, an operator's bulk action) can deadlock with it, and
            # PostgreSQL then aborts one of the two. Nothing was stored: store it again, unless a
            # caller's transaction, now aborted, holds this one.
            if not is_deadlock(exc) or attempt == DEADLOCK_ATTEMPTS or connection.in_atomic_block:
                raise
            logger.warning("ingest deadlocked with another transaction; storing again")
            attempt += 1


def _events_store(
    inputs: Sequence[EventInput], fingerprints: list[str], *, api_key: ApiKey | None
) -> list[Ingested]:
    # The unique constraint settles a repeated key only for a key's own events (NULLs differ):
    # a keyed event without an API key (internal callers) is looked up on the transactional path.
    alone = len(inputs) == 1 and (api_key is not None or not inputs[0].idempotency_key)
    if alone and connection.vendor == "postgresql":
        ingested = _store_alone(inputs[0], fingerprints[0], api_key=api_key)
        if ingested is not None:
            return [ingested]
    try:
        with transaction.atomic():
            return _store(inputs, fingerprints, api_key=api_key)
    except IntegrityError:
        if not any(i.idempotency_key for i in inputs):
            raise
    with transaction.atomic():
        return _store(inputs, fingerprints, api_key=api_key)


def _store_alone(item: EventInput, fingerprint: str, *, api_key: ApiKey | None) -> Ingested | None:
    """The common case in one statement, or None when it needs the transactional path."""
    now = timezone.now()
    event = _new_event(item, fingerprint, api_key=api_key, now=now)
    count = event_publish_alone(event, now=now)
    return None if count is None else Ingested(event=event, delivery_count=count, created=True)


def _new_event(
    item: EventInput, fingerprint: str, *, api_key: ApiKey | None, now: datetime
) -> Event:
    # Every column given, in order: Event(**fields) looks up the default of each field it is
    # not given (a foreign key's lookup is slow), 8.6 against 4.6 µs an event, a tenth of a
    # batched event's CPU. A column added to Event fails here, loudly, until it is added.
    values = {
        "id": uuid.uuid4(),
        "event_type": item.event_type,
        "payload": item.payload,
        "api_key_id": api_key.pk if api_key is not None else None,
        "idempotency_key": item.idempotency_key,
        "request_fingerprint": fingerprint,
        "source_id": None,
        "source_delivery_id": "",
        "created_at": now,
    }
    return Event(*[values[attname] for attname in _event_attnames()])


@functools.cache
def _event_attnames() -> tuple[str, ...]:
    return tuple(field.attname for field in Event._meta.concrete_fields)


def _store(
    inputs: Sequence[EventInput], fingerprints: list[str], *, api_key: ApiKey | None
) -> list[Ingested]:
    now = timezone.now()
    keys = {i.idempotency_key for i in inputs if i.idempotency_key}
    earlier = (
        {
            e.idempotency_key: e
            for e in Event.objects.filter(api_key=api_key, idempotency_key__in=keys)
        }
        if keys
        else {}
    )
    # Each input resolves to an event: one stored by an earlier request with its key, or a new one.
    # The same key twice in one batch is one event, as if the request had been sent twice.
    resolved: list[tuple[Event, str]] = []
    new_events: list[Event] = []
    first_with_key: dict[str, int] = {}  # a key first given in this batch: where
    for index, (item, fingerprint) in enumerate(zip(inputs, fingerprints, strict=True)):
        key = item.idempotency_key
        event = earlier.get(key) if key else None
        if event is not None:
            repeat = key in first_with_key
            if event.request_fingerprint != fingerprint:
                if repeat:
                    raise KeyRepeatedInBatch(key=key, first=first_with_key[key], index=index)
                raise IdempotencyConflict(event, index=index)
            resolved.append((event, "repeat" if repeat else "old"))
            continue
        event = _new_event(item, fingerprint, api_key=api_key, now=now)
        new_events.append(event)
        if key:
            earlier[key] = event
            first_with_key[key] = index
        resolved.append((event, "new"))
    counts = events_publish(new_events, now=now)
    return [
        Ingested(
            event=event,
            delivery_count=event.deliveries.count() if origin == "old" else counts[event.id],
            created=origin == "new",
        )
        for event, origin in resolved
    ]


def operational_events_publish(
    *, events: Sequence[tuple[str, dict[str, Any]]], now: datetime
) -> list[Event]:
    """Store Herald's own events and fan them out, in the caller's transaction (see
    events.operational): they commit with the state change they report, or not at all."""
    new_events = [
        Event(event_type=event_type, payload=payload, created_at=now)
        for event_type, payload in events
    ]
    events_publish(new_events, now=now)
    return new_events


def event_receive(
    *, source: Source, event_type: str, payload: dict[str, Any], delivery_id: str = ""
) -> Ingested:
    """Store a verified inbound webhook as an event and fan it out, once per sender's delivery id.

    A redelivery (the same id from the same source) returns the original event and stores nothing.
    Two deliveries of one id racing are settled by the unique constraint: the loser's insert waits
    for the winner's commit, fails, and the retry finds the winner's event.
    """
    try:
        with transaction.atomic():
            return _receive(source, event_type, payload, delivery_id)
    except IntegrityError:
        if not delivery_id:
            raise
    with transaction.atomic():
        return _receive(source, event_type, payload, delivery_id)


def _receive(
    source: Source, event_type: str, payload: dict[str, Any], delivery_id: str
) -> Ingested:
    if delivery_id:
        earlier = Event.objects.filter(source=source, source_delivery_id=delivery_id).first()
        if earlier is not None:
            return Ingested(event=earlier, delivery_count=earlier.deliveries.count(), created=False)
    now = timezone.now()
    event = Event(
        event_type=event_type,
        payload=payload,
        source=source,
        source_delivery_id=delivery_id,
        created_at=now,
    )
    counts = events_publish([event], now=now)
    return Ingested(event=event, delivery_count=counts[event.id], created=True)
