"""Taking due deliveries for an attempt: lock, pass the receiver-protection gate, write the attempt.

A claim moves a delivery to in flight under a lease and writes its attempt row before anything is
sent, so a worker killed mid-request leaves a trace and its deliveries are reclaimed when the
lease runs out. Many deliveries are claimed in one transaction with a handful of statements.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from config.db import column_converters, converted, hot_cursor
from deliveries import policy
from deliveries.admission import Verdict, admission_decide
from deliveries.locked import lock_deliveries
from deliveries.models import DUE_STATUSES, Delivery, DeliveryAttempt
from deliveries.outcomes import LOST_WORKER_ERROR, dead_letter
from deliveries.sender import WebhookRequest, build_request

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    """A delivery this worker owns until its lease ends, with the request it is about to send."""

    delivery: Delivery
    attempt: DeliveryAttempt
    request: WebhookRequest
    probe: bool = False  # the one delivery testing an open circuit


def _status_literal(*statuses: str) -> str:
    """Statuses written into the SQL, not passed as parameters.

    These statements are prepared and may run on a generic plan, which knows nothing of parameter
    values: with the statuses as parameters the planner cannot tell that the partial indexes
    (`delivery_ready_idx`, `delivery_lease_idx`) cover the rows, and scans every pending delivery
    held or not. The statuses are the model's own constants.
    """
    assert all(status.isidentifier() for status in statuses)  # nothing to quote
    return ", ".join(f"'{status}'" for status in statuses)


def _queued_condition() -> str:
    """deliveries.selectors.queued in SQL on `d`: the rows `delivery_ready_idx` covers."""
    quote = connection.ops.quote_name
    return (
        f"d.{quote('status')} IN ({_status_literal(*DUE_STATUSES)}) "
        f"AND d.{quote('enqueued_at')} IS NOT NULL"
    )


def _lock_ready_due(now: datetime, limit: int) -> list[Delivery]:
    """Queued deliveries whose time has come (the `delivery_ready_idx` scan), oldest first."""
    quote = connection.ops.quote_name
    return lock_deliveries(
        condition=f"{_queued_condition()} AND d.{quote('next_attempt_at')} <= %s",
        order_by=f"d.{quote('next_attempt_at')}",
        params=[_db_time(now)],
        limit=limit,
    )


def next_due_at() -> datetime | None:
    """When the earliest queued delivery comes due (None: nothing is queued).

    An idle dispatcher asks after every claim that came back short, so this is written out: the
    ORM's aggregate cost more CPU to compile than the index lookup it runs.
    """
    quote = connection.ops.quote_name
    field = Delivery._meta.get_field("next_attempt_at")
    sql = (
        f"SELECT d.{quote(field.column)} FROM {quote(Delivery._meta.db_table)} d "
        f"WHERE {_queued_condition()} AND d.{quote(field.column)} IS NOT NULL "
        f"ORDER BY d.{quote(field.column)} LIMIT 1"
    )
    with hot_cursor(connection) as cursor:
        cursor.execute(sql, [])
        row = cursor.fetchone()
    if row is None:
        return None
    (value,) = converted(row, column_converters([field.get_col("d")], connection), connection)
    return value


def _lease_expired_condition() -> str:
    """In flight with a lease that ended before the time that follows (the `delivery_lease_idx`
    rows)."""
    quote = connection.ops.quote_name
    return (
        f"d.{quote('status')} = {_status_literal(Delivery.Status.IN_FLIGHT)} "
        f"AND d.{quote('lease_until')} <"
    )


def _lock_lease_expired(now: datetime, limit: int) -> list[Delivery]:
    """Deliveries in flight whose worker has not reported back within its lease."""
    quote = connection.ops.quote_name
    return lock_deliveries(
        condition=f"{_lease_expired_condition()} %s",
        order_by=f"d.{quote('lease_until')}",
        params=[_db_time(now)],
        limit=limit,
    )


def _db_time(moment: datetime):
    """A datetime as the backend stores it (SQLite keeps naive UTC text)."""
    return Delivery._meta.get_field("next_attempt_at").get_db_prep_value(moment, connection)


@transaction.atomic
def deliveries_claim(*, limit: int, now: datetime, reclaim_expired: bool = True) -> list[Claim]:
    """Claim up to `limit` due deliveries, oldest first, then ones whose worker died."""
    rows = _lock_ready_due(now, limit)
    if reclaim_expired and len(rows) < limit:
        rows += _lock_lease_expired(now, limit - len(rows))
    return _claim_rows(rows, now=now)


@transaction.atomic
def delivery_claim(*, delivery_id, now: datetime) -> Claim | None:
    """Claim one delivery if it is due, whether queued or held (a probe sends a held one)."""
    quote = connection.ops.quote_name
    status, due_at, lease_until = (
        f"d.{quote(column)}" for column in ("status", "next_attempt_at", "lease_until")
    )
    rows = lock_deliveries(
        condition=(
            f"d.{quote('id')} = %s AND ({status} IN ({_status_literal(*DUE_STATUSES)}) "
            f"AND {due_at} <= %s "
            f"OR {status} = {_status_literal(Delivery.Status.IN_FLIGHT)} AND {lease_until} < %s)"
        ),
        order_by=due_at,
        params=[
            Delivery._meta.pk.get_db_prep_value(delivery_id, connection),
            _db_time(now),
            _db_time(now),
        ],
        limit=1,
    )
    claims = _claim_rows(rows, now=now)
    return claims[0] if claims else None


def _claim_rows(rows: list[Delivery], *, now: datetime) -> list[Claim]:
    # Admission may lock subscriber rows (rate limit, probe); taking them in one global order
    # keeps concurrent claims, fan-outs and outcomes from deadlocking.
    rows.sort(key=lambda delivery: str(delivery.subscriber_id))
    sending: list[tuple[Delivery, bool]] = []
    for delivery in rows:
        if delivery.status == Delivery.Status.IN_FLIGHT and not _settle_lost_attempt(
            delivery, now=now
        ):
            continue
        admission = admission_decide(delivery=delivery, now=now)
        if admission.verdict is Verdict.HOLD:
            _set_aside(delivery, now=now, enqueued_at=None)
        elif admission.verdict is Verdict.LATER:
            _set_aside(
                delivery,
                now=now,
                next_attempt_at=admission.at,
                rate_slot_at=admission.rate_slot,
                enqueued_at=now,
            )
        else:
            sending.append((delivery, admission.probe))
    if not sending:
        return []
    lease_until = now + policy.lease()
    _mark_in_flight([delivery.pk for delivery, _ in sending], lease_until=lease_until, now=now)
    claims = []
    for delivery, probe in sending:
        delivery.status = Delivery.Status.IN_FLIGHT
        delivery.attempt_count += 1
        delivery.attempts_made += 1
        delivery.lease_until = lease_until
        delivery.enqueued_at = delivery.rate_slot_at = None
        delivery.updated_at = now
        request = _request_for(delivery, now=now)
        attempt = DeliveryAttempt(
            delivery=delivery,
            number=delivery.attempts_made,
            started_at=now,
            request_headers=request.headers,
        )
        claims.append(Claim(delivery=delivery, attempt=attempt, request=request, probe=probe))
    _attempts_create([claim.attempt for claim in claims], started_at=now)
    return claims


def _mark_in_flight(ids: list, *, lease_until: datetime, now: datetime) -> None:
    """In flight under a new lease, one more attempt made. Hand-written: the ORM's compile of
    this UPDATE (its F() expressions, the id list) cost more than the statement. On PostgreSQL
    the ids are one array parameter, so the statement is the same, and prepared, for any batch."""
    quote = connection.ops.quote_name
    status, attempt_count, attempts_made = (
        quote(column) for column in ("status", "attempt_count", "attempts_made")
    )
    pk = Delivery._meta.pk
    ids = [pk.get_db_prep_value(id_, connection) for id_ in ids]
    if connection.vendor == "postgresql":
        matching, id_params = "= ANY(%s)", [ids]
    else:
        matching, id_params = f"IN ({', '.join(['%s'] * len(ids))})", ids
    sql = (
        f"UPDATE {quote(Delivery._meta.db_table)} SET {status} = %s, "
        f"{attempt_count} = {attempt_count} + 1, {attempts_made} = {attempts_made} + 1, "
        f"{quote('lease_until')} = %s, {quote('enqueued_at')} = NULL, "
        f"{quote('rate_slot_at')} = NULL, {quote('updated_at')} = %s "
        f"WHERE {quote('id')} {matching}"
    )
    with hot_cursor(connection) as cursor:
        cursor.execute(
            sql, [Delivery.Status.IN_FLIGHT, _db_time(lease_until), _db_time(now), *id_params]
        )


def _attempts_create(attempts: list[DeliveryAttempt], *, started_at: datetime) -> None:
    """Write the attempts, before anything is sent, and give each its id.

    On PostgreSQL the rows travel as one JSON document that jsonb_to_recordset expands:
    bulk_create spent about 55 us a row preparing and escaping arrays (each request's headers
    as JSON inside a jsonb[] literal), this about 6, and the server less too.

    A number already in the history is passed over. Code from before `attempts_made` existed,
    still running while the migration that added it is released, numbers its attempts without
    counting them; reusing such a number would fail every claim of the batch, again and again.
    """
    if connection.vendor != "postgresql":
        DeliveryAttempt.objects.bulk_create(attempts)
        return
    quote = connection.ops.quote_name
    table = quote(DeliveryAttempt._meta.db_table)
    delivery_id, number = quote("delivery_id"), quote("number")
    rows = json.dumps(
        [
            {"delivery": str(a.delivery_id), "number": a.number, "headers": a.request_headers}
            for a in attempts
        ],
        ensure_ascii=False,
    )
    columns = (
        "delivery_id",
        "number",
        "started_at",
        "request_headers",
        "response_excerpt",
        "error",
    )
    sql = (
        f"INSERT INTO {table} ({', '.join(map(quote, columns))}) "
        "SELECT attempt.delivery, "
        f"GREATEST(attempt.number, (SELECT MAX(h.{number}) + 1 FROM {table} h "
        f"WHERE h.{delivery_id} = attempt.delivery)), "
        "%s, attempt.headers, '', '' FROM jsonb_to_recordset(%s::jsonb) "
        "AS attempt(delivery uuid, number integer, headers jsonb) "
        f"RETURNING {delivery_id}, {quote('id')}, {number}"
    )
    with hot_cursor(connection) as cursor:
        cursor.execute(sql, [started_at, rows])
        written = {row[0]: row[1:] for row in cursor.fetchall()}  # one attempt per delivery
    for attempt in attempts:
        attempt.pk, attempt.number = written[attempt.delivery_id]
        attempt._state.adding = False
        attempt._state.db = connection.alias


def _request_for(delivery: Delivery, *, now: datetime) -> WebhookRequest:
    return build_request(
        url=delivery.subscriber.endpoint_url,
        message_id=str(delivery.event_id),
        event_type=delivery.event.event_type,
        occurred_at=delivery.event.created_at,
        payload=delivery.event.payload,
        secrets=delivery.subscriber.signing_secrets(now),
        now=now,
    )


def _set_aside(delivery: Delivery, *, now: datetime, **fields) -> None:
    """Not sent now: keep its status (a lost attempt may have made it retrying), no lease."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status=delivery.status,
        lease_until=None,
        last_error=delivery.last_error,
        last_status_code=delivery.last_status_code,
        updated_at=now,
        **fields,
    )


def _settle_lost_attempt(delivery: Delivery, *, now: datetime) -> bool:
    """A lease ran out: the worker died mid-attempt. That attempt counts, as a failure.

    Returns whether the delivery may be attempted again now (the lease was the wait).
    """
    unfinished = DeliveryAttempt.objects.filter(delivery=delivery, finished_at=None)
    for number in unfinished.values_list("number", flat=True):
        # The worker that made it never logged it; every attempt gets its line.
        logger.warning(
            "delivery attempt",
            extra={
                "event_id": str(delivery.event_id),
                "delivery_id": str(delivery.pk),
                "subscriber_id": str(delivery.subscriber_id),
                "attempt": number,
                "status": "lost",
                "status_code": None,
                "duration_ms": None,
                "error": LOST_WORKER_ERROR,
            },
        )
    unfinished.update(finished_at=now, error=LOST_WORKER_ERROR)
    if policy.retry_policy().delay_after(delivery.attempt_count) is None:
        reason = f"all {delivery.attempt_count} attempts failed; last: {LOST_WORKER_ERROR}"
        dead_letter(delivery, reason=reason, status_code=None, error=LOST_WORKER_ERROR, now=now)
        return False
    delivery.status = Delivery.Status.RETRYING
    delivery.last_error = LOST_WORKER_ERROR
    delivery.last_status_code = None
    return True
