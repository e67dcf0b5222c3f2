"""One delivery attempt's writes: the claim before sending and the outcome after it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Max, Q

from deadletters.models import DeadLetter
from deliveries import policy
from deliveries.admission import Verdict, admission_decide
from deliveries.models import DUE_STATUSES, Delivery, DeliveryAttempt
from deliveries.queue import enqueue_deliveries, enqueue_probe
from deliveries.retry import parse_retry_after
from deliveries.sender import RETRY_AFTER_STATUSES, SendResult, WebhookRequest, build_request
from subscribers.circuit import (
    BreakerSettings,
    circuit_record_failure,
    circuit_record_success,
    release_held,
)
from subscribers.models import Subscriber
from subscribers.services import subscriber_back_off, subscriber_deactivate

logger = logging.getLogger(__name__)

GONE = 410
LOST_WORKER_ERROR = "worker stopped before recording the outcome (outcome unknown)"


@dataclass(frozen=True)
class Claim:
    """A delivery this worker owns until `lease_until`, with the request it is about to send."""

    delivery: Delivery
    attempt: DeliveryAttempt
    request: WebhookRequest
    probe: bool = False  # the one delivery testing an open circuit


@transaction.atomic
def delivery_claim(*, delivery_id, now: datetime) -> Claim | None:
    """Take a due delivery for one attempt, or None if it is not ours to send.

    None means another worker holds it, it is not due yet, it is finished, or the receiver's
    protection turned it away (see deliveries.admission): then it is held or postponed without
    spending an attempt. The attempt row is written before anything is sent, so a worker killed
    mid-request leaves a trace.
    """
    delivery = (
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("event", "subscriber")
        .filter(pk=delivery_id)
        .filter(
            Q(status__in=DUE_STATUSES, next_attempt_at__lte=now)
            | Q(status=Delivery.Status.IN_FLIGHT, lease_until__lt=now)
        )
        .first()
    )
    if delivery is None:
        return None
    if delivery.status == Delivery.Status.IN_FLIGHT and not _settle_lost_attempt(delivery, now=now):
        return None
    admission = admission_decide(delivery=delivery, now=now)
    if admission.verdict is Verdict.HOLD:
        _set_aside(delivery, now=now, next_attempt_at=delivery.next_attempt_at, enqueued_at=None)
        return None
    if admission.verdict is Verdict.LATER:
        queue_now = admission.at <= now + policy.enqueue_horizon()
        _set_aside(
            delivery,
            now=now,
            next_attempt_at=admission.at,
            rate_slot_at=admission.rate_slot,
            enqueued_at=now if queue_now else None,
        )
        if queue_now:
            enqueue_deliveries([delivery.pk], eta=admission.at)
        return None

    request = build_request(
        url=delivery.subscriber.endpoint_url,
        message_id=str(delivery.event_id),
        event_type=delivery.event.event_type,
        occurred_at=delivery.event.created_at,
        payload=delivery.event.payload,
        secrets=delivery.subscriber.signing_secrets(now),
        now=now,
    )
    delivery.attempt_count += 1
    delivery.status = Delivery.Status.IN_FLIGHT
    delivery.lease_until = now + policy.lease()
    delivery.enqueued_at = None
    delivery.rate_slot_at = None
    delivery.save(
        update_fields=[
            "attempt_count",
            "status",
            "lease_until",
            "enqueued_at",
            "rate_slot_at",
            "last_error",
            "last_status_code",
            "updated_at",
        ]
    )
    # Numbers run on across replays (which restart attempt_count), so history reads in order.
    last_number = delivery.attempts.aggregate(last=Max("number"))["last"] or 0
    attempt = DeliveryAttempt.objects.create(
        delivery=delivery,
        number=last_number + 1,
        started_at=now,
        request_headers=request.headers,
    )
    return Claim(delivery=delivery, attempt=attempt, request=request, probe=admission.probe)


def _set_aside(delivery: Delivery, *, now: datetime, **fields) -> None:
    """Not sent now: keep its status (a lost attempt may have made it retrying), no lease."""
    _update(
        delivery,
        now=now,
        status=delivery.status,
        lease_until=None,
        last_error=delivery.last_error,
        last_status_code=delivery.last_status_code,
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
        _fail(delivery, reason=reason, status_code=None, error=LOST_WORKER_ERROR, now=now)
        return False
    delivery.status = Delivery.Status.RETRYING
    delivery.last_error = LOST_WORKER_ERROR
    delivery.last_status_code = None
    return True


@transaction.atomic
def delivery_record_outcome(*, claim: Claim, result: SendResult, now: datetime) -> str:
    """Store what the receiver said and decide what happens next: done, retry, or dead letter.

    Only the worker whose lease is still current may move the delivery on; a worker that was
    presumed dead and replaced only records its attempt.
    """
    attempt = claim.attempt
    DeliveryAttempt.objects.filter(pk=attempt.pk).update(
        finished_at=now,
        duration_ms=result.duration_ms,
        status_code=result.status_code,
        response_excerpt=result.response_excerpt,
        error=result.error,
    )
    delivery = (
        Delivery.objects.select_for_update()
        .filter(
            pk=claim.delivery.pk,
            status=Delivery.Status.IN_FLIGHT,
            attempt_count=claim.delivery.attempt_count,
        )
        .first()
    )
    if delivery is None:
        logger.warning(
            "outcome of a superseded attempt ignored delivery_id=%s attempt=%s",
            claim.delivery.pk,
            attempt.number,
        )
        return "superseded"
    error = _describe_failure(result)
    if result.succeeded:
        _update(
            delivery,
            now=now,
            status=Delivery.Status.DELIVERED,
            delivered_at=now,
            next_attempt_at=None,
            lease_until=None,
            last_status_code=result.status_code,
            last_error="",
        )
        subscriber = claim.delivery.subscriber
        # A closed circuit with no failures (as the claim saw it) has nothing to reset: skip the
        # write, which would otherwise cost every successful delivery two UPDATEs.
        nothing_to_reset = (
            subscriber.circuit_state == Subscriber.Circuit.CLOSED
            and subscriber.consecutive_failures == 0
        )
        if not nothing_to_reset and circuit_record_success(
            subscriber_id=delivery.subscriber_id, now=now
        ):
            release_held([delivery.subscriber_id])
        return "delivered"
    if result.status_code == GONE:
        reason = "receiver answered 410 Gone; subscriber deactivated"
        subscriber_deactivate(
            subscriber_id=delivery.subscriber_id,
            reason=f"410 Gone from {claim.request.url} at {now.isoformat()}",
            now=now,
        )
        _fail(delivery, reason=reason, status_code=result.status_code, error=error, now=now)
        return "gone"
    retry_after = _retry_after(result, now=now)
    _protect_receiver(delivery, retry_after=retry_after, error=error, now=now)
    delay = policy.retry_policy().delay_after(delivery.attempt_count, retry_after=retry_after)
    if delay is None:
        reason = f"all {delivery.attempt_count} attempts failed; last: {error}"
        _fail(delivery, reason=reason, status_code=result.status_code, error=error, now=now)
        return "exhausted"
    _schedule_retry(
        delivery,
        at=now + timedelta(seconds=delay),
        status_code=result.status_code,
        error=error,
        now=now,
    )
    return "retrying"


def _protect_receiver(
    delivery: Delivery, *, retry_after: float | None, error: str, now: datetime
) -> None:
    """Back off the whole subscriber on Retry-After; count the failure towards its circuit."""
    if retry_after is not None:
        capped = min(retry_after, policy.retry_policy().retry_after_cap(delivery.attempt_count))
        subscriber_back_off(
            subscriber_id=delivery.subscriber_id, until=now + timedelta(seconds=capped)
        )
    probe_at = circuit_record_failure(
        subscriber_id=delivery.subscriber_id,
        now=now,
        reason=error,
        breaker=BreakerSettings.from_settings(),
    )
    if probe_at is not None:
        enqueue_probe(delivery.subscriber_id, eta=probe_at)


def _describe_failure(result: SendResult) -> str:
    if result.succeeded:
        return ""
    if result.status_code is None:
        return result.error
    described = f"HTTP {result.status_code}"
    return f"{described}: {result.error}" if result.error else described


def _retry_after(result: SendResult, *, now: datetime) -> float | None:
    if result.status_code not in RETRY_AFTER_STATUSES:
        return None
    headers = {name.lower(): value for name, value in result.headers.items()}
    return parse_retry_after(headers.get("retry-after"), now=now)


def _schedule_retry(
    delivery: Delivery, *, at: datetime, status_code: int | None, error: str, now: datetime
) -> None:
    """A retry due soon gets its job now, at its exact time; a later one waits for the sweeper."""
    queue_now = at <= now + policy.enqueue_horizon()
    _update(
        delivery,
        now=now,
        status=Delivery.Status.RETRYING,
        next_attempt_at=at,
        lease_until=None,
        enqueued_at=now if queue_now else None,
        last_status_code=status_code,
        last_error=error,
    )
    if queue_now:
        enqueue_deliveries([delivery.pk], eta=at)


def _fail(
    delivery: Delivery, *, reason: str, status_code: int | None, error: str, now: datetime
) -> None:
    _update(
        delivery,
        now=now,
        status=Delivery.Status.FAILED,
        next_attempt_at=None,
        lease_until=None,
        enqueued_at=None,
        last_status_code=status_code,
        last_error=error,
    )
    DeadLetter.objects.create(delivery_id=delivery.pk, reason=reason, last_status_code=status_code)
    logger.warning(
        "delivery dead-lettered delivery_id=%s event_id=%s subscriber_id=%s reason=%s",
        delivery.pk,
        delivery.event_id,
        delivery.subscriber_id,
        reason,
    )


def _update(delivery: Delivery, *, now: datetime, **fields) -> None:
    Delivery.objects.filter(pk=delivery.pk).update(updated_at=now, **fields)
    for name, value in fields.items():
        setattr(delivery, name, value)
