"""Inserting new events with their queued deliveries: one statement on PostgreSQL, else the ORM.

Ingest is the hot path of the API. Through the ORM, one event costs an insert, a subscriber query,
an insert of its deliveries and a NOTIFY, each compiled in Python. On PostgreSQL one hand-written
statement does all four in a single round trip: it inserts the events, matches them against the
active subscribers' patterns, inserts the deliveries and wakes the dispatchers. Only deliveries to
a rate-limited subscriber whose circuit is closed come back to Python, because their slots are
reserved under that subscriber's row lock (deliveries.admission.reserve_slots).

Both paths run in the caller's transaction and match with the same rules as
subscribers.matching; a test runs every rule through both. A single event on PostgreSQL can skip
the transaction altogether (event_publish_alone): one statement is atomic by itself.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection

from config.db import hot_cursor
from deliveries.models import Delivery
from deliveries.services import fan_out
from deliveries.wakeup import CHANNEL
from events.models import Event
from subscribers.matching import OPERATIONAL_PREFIX, PREFIX_SUFFIX, WILDCARD
from subscribers.models import Subscriber
from subscribers.selectors import active_subscribers, subscribers_matching

logger = logging.getLogger(__name__)


def events_publish(new_events: list[Event], *, now: datetime) -> dict[Any, int]:
    """Insert unsaved events and queue their deliveries; returns each event's delivery count.

    Call inside a transaction: the events and their deliveries commit together or not at all.
    """
    if not new_events:
        return {}
    if connection.vendor == "postgresql":
        counts = _publish_in_one_statement(new_events, now=now)
    else:
        counts = _publish_with_orm(new_events, now=now)
    _log_accepted(new_events, sum(counts.values()))
    return counts


def event_publish_alone(event: Event, *, now: datetime) -> int | None:
    """Store one event with its deliveries in a single statement that needs no transaction
    around it; returns its delivery count, or None if nothing was stored (PostgreSQL only).

    A single event is most of what the API receives, and BEGIN and COMMIT were two of its five
    round trips. The statement stores all or nothing, so it declines, storing nothing, when
    the event needs more than it can do alone: its idempotency key is already taken (the caller
    looks up the original) or a matching subscriber needs a rate-limit slot (reserved in Python
    under that subscriber's row lock). The caller then takes the transactional path.
    """
    with hot_cursor(connection) as cursor:
        cursor.execute(_statement(alone=True), _params([event], now=now))
        stored, count, _woken = cursor.fetchone()
    if not stored:
        return None
    _log_accepted([event], count)
    return count


def _log_accepted(new_events: list[Event], deliveries: int) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    # A batch logs one line: its first event's id and how many came with it.
    logger.info(
        "events accepted",
        extra={
            "event_id": str(new_events[0].id),
            "event_type": new_events[0].event_type,
            "count": len(new_events),
            "deliveries": deliveries,
        },
    )


def _publish_with_orm(new_events: list[Event], *, now: datetime) -> dict[Any, int]:
    Event.objects.bulk_create(new_events)
    subscribers = active_subscribers()
    targets = [
        (event.id, subscribers_matching(event_type=event.event_type, among=subscribers))
        for event in new_events
    ]
    fan_out(targets=targets, now=now)
    return {event_id: len(matched) for event_id, matched in targets}


def _publish_in_one_statement(new_events: list[Event], *, now: datetime) -> dict[Any, int]:
    with hot_cursor(connection) as cursor:
        cursor.execute(_statement(alone=False), _params(new_events, now=now))
        matches = cursor.fetchall()
    counts = dict.fromkeys((event.id for event in new_events), 0)
    needing_slots: dict[Any, list[Subscriber]] = {}
    for event_id, subscriber_id, rate_limit, needs_slot, _woken in matches:
        counts[event_id] += 1
        if needs_slot:
            subscriber = Subscriber(
                id=subscriber_id,
                circuit_state=Subscriber.Circuit.CLOSED,
                rate_limit_per_second=rate_limit,
            )
            needing_slots.setdefault(event_id, []).append(subscriber)
    if needing_slots:
        fan_out(targets=list(needing_slots.items()), now=now)
    return counts


def _params(new_events: list[Event], *, now: datetime) -> dict[str, Any]:
    return {
        **_constant_params(),
        # One JSON document carries every event: a single parameter for psycopg to send, however
        # many events, and no per-column arrays to type.
        "events": json.dumps([_event_row(event) for event in new_events], default=_json_default),
        "now": now,
        "default_limited": settings.HERALD_DEFAULT_RATE_LIMIT is not None,
    }


def _event_row(event: Event) -> dict[str, Any]:
    return {field.column: getattr(event, field.attname) for field in Event._meta.concrete_fields}


def _json_default(value: Any) -> str:
    # Full precision: DjangoJSONEncoder would cut datetimes to milliseconds, and the 202 echoes
    # the created_at the row must keep.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@functools.cache
def _statement(*, alone: bool) -> str:
    """The statement's text, built once from the models: the same for every batch.

    In a transaction it stores every event and queues what it can, returning each match. Alone
    (see event_publish_alone) it matches the input before storing anything, so that it can
    decline as a whole.
    """
    quote = connection.ops.quote_name
    event_fields = Event._meta.concrete_fields
    event_columns = ", ".join(quote(field.column) for field in event_fields)
    event_record = ", ".join(
        f"{quote(field.column)} {field.db_type(connection)}" for field in event_fields
    )
    delivery_columns = ", ".join(quote(field.column) for field in Delivery._meta.concrete_fields)
    delivery_values = ", ".join(_delivery_value(field) for field in Delivery._meta.concrete_fields)
    events_table = quote(Event._meta.db_table)
    deliveries_table = quote(Delivery._meta.db_table)

    def matched(events: str) -> str:
        return f"""
            SELECT e.{quote("id")} AS event_id, s.id AS subscriber_id, s.circuit_state,
                   s.rate_limit_per_second,
                   -- Rate-limited as subscribers.ratelimit.effective_rate_limit has it: the
                   -- subscriber's own limit (0 counts as none), else HERALD_DEFAULT_RATE_LIMIT.
                   (%(default_limited)s OR COALESCE(s.rate_limit_per_second, 0) <> 0)
                       AS rate_limited
            FROM {events} e
            JOIN {quote(Subscriber._meta.db_table)} s ON s.is_active AND EXISTS (
                SELECT 1 FROM jsonb_array_elements_text(s.event_types) AS p(pattern)
                WHERE {_PATTERN_MATCHES}
            )
        """

    # Rate-limited subscribers with a closed circuit get their slots in Python.
    needs_slot = "m.circuit_state = %(closed)s AND m.rate_limited"
    # Delivered at commit, and only if something was queued (deliveries.wakeup).
    wake = "(SELECT count(*) FROM (SELECT pg_notify(%(channel)s, '') FROM queued LIMIT 1) AS w)"
    submitted = f"jsonb_to_recordset(%(events)s::jsonb) AS e({event_record})"
    if not alone:
        return f"""
            WITH new_event AS (
                INSERT INTO {events_table} ({event_columns})
                SELECT {event_columns} FROM {submitted}
                RETURNING {quote("id")}, {quote("event_type")}
            ), matched AS ({matched("new_event")}
            ), queued AS (
                INSERT INTO {deliveries_table} ({delivery_columns})
                SELECT {delivery_values} FROM matched m WHERE NOT ({needs_slot})
                RETURNING 1
            )
            SELECT m.event_id, m.subscriber_id, m.rate_limit_per_second, {needs_slot}, {wake}
            FROM matched m
        """
    return f"""
        WITH submitted AS (
            SELECT * FROM {submitted}
        ), matched AS ({matched("submitted")}
        ), new_event AS (
            INSERT INTO {events_table} ({event_columns})
            SELECT {event_columns} FROM submitted
            WHERE NOT EXISTS (SELECT 1 FROM matched m WHERE {needs_slot})
            -- A key already taken stores nothing: the caller finds the original.
            ON CONFLICT ({quote("api_key_id")}, {quote("idempotency_key")})
                WHERE NOT ({quote("idempotency_key")} = '')
                DO NOTHING
            RETURNING {quote("id")}
        ), queued AS (
            INSERT INTO {deliveries_table} ({delivery_columns})
            SELECT {delivery_values} FROM matched m JOIN new_event n ON n.{quote("id")} = m.event_id
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM new_event), (SELECT count(*) FROM queued), {wake}
    """


# subscribers.matching.matches in SQL: `*` takes every published (non-operational) event,
# `order.*` every type starting `order.`, anything else itself. LIKE is safe on the event type:
# valid types contain no `%`, and `_` matching any one character cannot widen `herald.%`.
_PATTERN_MATCHES = """
    CASE
        WHEN p.pattern = %(wildcard)s THEN e.event_type NOT LIKE %(operational)s
        WHEN p.pattern LIKE %(prefix_pattern)s
            THEN starts_with(e.event_type, left(p.pattern, -1))
        ELSE p.pattern = e.event_type
    END
"""

# The delivery columns this statement sets; every other column takes its model default, so a
# field added to Delivery needs no change here.
_DELIVERY_VALUES = {
    "id": "gen_random_uuid()",
    "event_id": "m.event_id",
    "subscriber_id": "m.subscriber_id",
    "next_attempt_at": "%(now)s",
    # Held (not queued) while the circuit is open: no work until it closes.
    "enqueued_at": "CASE WHEN m.circuit_state = %(closed)s THEN %(now)s::timestamptz END",
    "created_at": "%(now)s",
    "updated_at": "%(now)s",
}


def _delivery_value(field) -> str:
    if field.attname in _DELIVERY_VALUES:
        return _DELIVERY_VALUES[field.attname]
    return f"%(default_{field.column})s::{field.db_type(connection)}"


@functools.cache
def _constant_params() -> dict[str, Any]:
    defaults = {
        f"default_{field.column}": field.get_db_prep_save(field.get_default(), connection)
        for field in Delivery._meta.concrete_fields
        if field.attname not in _DELIVERY_VALUES
    }
    return {
        **defaults,
        "closed": Subscriber.Circuit.CLOSED,
        "channel": CHANNEL,
        "wildcard": WILDCARD,
        "operational": f"{OPERATIONAL_PREFIX}%",
        "prefix_pattern": f"%{PREFIX_SUFFIX}",
    }
