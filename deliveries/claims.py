"""Taking due deliveries for an attempt: lock, pass the receiver-protection gate, write the attempt.

A claim moves a delivery to in flight under a lease and writes its attempt row before anything is
sent, so a worker killed mid-request leaves a trace and its deliveries are reclaimed when the
lease runs out. Many deliveries are claimed in one transaction with a handful of statements.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import F, Q

from deliveries import policy
from deliveries.admission import Verdict, admission_decide
from deliveries.models import DUE_STATUSES, Delivery, DeliveryAttempt
from deliveries.outcomes import LOST_WORKER_ERROR, dead_letter
from deliveries.sender import WebhookRequest, build_request


@dataclass(frozen=True)
class Claim:
    """A delivery this worker owns until its lease ends, with the request it is about to send."""

    delivery: Delivery
    attempt: DeliveryAttempt
    request: WebhookRequest
    probe: bool = False  # the one delivery testing an open circuit


def _lock(condition: str, order_by: str, params: list, limit: int) -> list:
    """Ids of up to `limit` matching deliveries no other worker holds, locked until commit.

    Hand-written because it runs on every dispatcher cycle, mostly finding nothing: compiling
    the equivalent ORM query cost more CPU than the database spent answering it.
    """
    quote = connection.ops.quote_name
    lock = (
        " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    )
    sql = (
        f"SELECT {quote('id')} FROM {quote(Delivery._meta.db_table)} WHERE {condition} "
        f"ORDER BY {quote(order_by)} LIMIT %s{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [row[0] for row in cursor.fetchall()]


def _lock_ready_due(now: datetime, limit: int) -> list:
    """Queued deliveries whose time has come (the `delivery_ready_idx` scan), oldest first."""
    quote = connection.ops.quote_name
    condition = (
        f"{quote('status')} IN (%s, %s) AND {quote('enqueued_at')} IS NOT NULL "
        f"AND {quote('next_attempt_at')} <= %s"
    )
    return _lock(condition, "next_attempt_at", [*DUE_STATUSES, _db_time(now)], limit)


def _lock_lease_expired(now: datetime, limit: int) -> list:
    """Deliveries in flight whose worker has not reported back within its lease."""
    quote = connection.ops.quote_name
    condition = f"{quote('status')} = %s AND {quote('lease_until')} < %s"
    return _lock(condition, "lease_until", [Delivery.Status.IN_FLIGHT, _db_time(now)], limit)


def _db_time(moment: datetime):
    """A datetime as the backend stores it (SQLite keeps naive UTC text)."""
    return Delivery._meta.get_field("next_attempt_at").get_db_prep_value(moment, connection)


def _load(ids: list) -> list[Delivery]:
    """The locked deliveries with what sending them needs, oldest due first."""
    if not ids:
        return []
    return list(
        Delivery.objects.filter(pk__in=ids)
        .select_related("event", "subscriber")
        .order_by("next_attempt_at")
    )


@transaction.atomic
def deliveries_claim(*, limit: int, now: datetime, reclaim_expired: bool = True) -> list[Claim]:
    """Claim up to `limit` due deliveries, oldest first, then ones whose worker died."""
    ids = _lock_ready_due(now, limit)
    if reclaim_expired and len(ids) < limit:
        ids += _lock_lease_expired(now, limit - len(ids))
    return _claim_rows(_load(ids), now=now)


@transaction.atomic
def delivery_claim(*, delivery_id, now: datetime) -> Claim | None:
    """Claim one delivery if it is due, whether queued or held (a probe sends a held one)."""
    due = Q(status__in=DUE_STATUSES, next_attempt_at__lte=now) | Q(
        status=Delivery.Status.IN_FLIGHT, lease_until__lt=now
    )
    ids = list(
        Delivery.objects.select_for_update(skip_locked=True)
        .filter(due, pk=delivery_id)
        .values_list("pk", flat=True)
    )
    claims = _claim_rows(_load(ids), now=now)
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
    ids = [delivery.pk for delivery, _ in sending]
    Delivery.objects.filter(pk__in=ids).update(
        status=Delivery.Status.IN_FLIGHT,
        attempt_count=F("attempt_count") + 1,
        attempts_made=F("attempts_made") + 1,
        lease_until=lease_until,
        enqueued_at=None,
        rate_slot_at=None,
        updated_at=now,
    )
    claims = []
    for delivery, probe in sending:
        delivery.status = Delivery.Status.IN_FLIGHT
        delivery.attempt_count += 1
        delivery.attempts_made += 1
        delivery.lease_until = lease_until
        request = _request_for(delivery, now=now)
        attempt = DeliveryAttempt(
            delivery=delivery,
            number=delivery.attempts_made,
            started_at=now,
            request_headers=request.headers,
        )
        claims.append(Claim(delivery=delivery, attempt=attempt, request=request, probe=probe))
    DeliveryAttempt.objects.bulk_create([claim.attempt for claim in claims])
    return claims


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
    DeliveryAttempt.objects.filter(delivery=delivery, finished_at=None).update(
        finished_at=now, error=LOST_WORKER_ERROR
    )
    if policy.retry_policy().delay_after(delivery.attempt_count) is None:
        reason = f"all {delivery.attempt_count} attempts failed; last: {LOST_WORKER_ERROR}"
        dead_letter(delivery, reason=reason, status_code=None, error=LOST_WORKER_ERROR, now=now)
        return False
    delivery.status = Delivery.Status.RETRYING
    delivery.last_error = LOST_WORKER_ERROR
    delivery.last_status_code = None
    return True
