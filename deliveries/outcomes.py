"""Recording what receivers said and deciding what happens next: done, retry, or dead letter."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction

from config.db import update_rows
from deadletters.models import DeadLetter
from deliveries import policy
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.queue import enqueue_probe
from deliveries.retry import parse_retry_after
from deliveries.sender import RETRY_AFTER_STATUSES, SendResult
from deliveries.signals import delivery_dead_lettered
from subscribers.circuit import (
    BreakerSettings,
    circuit_record_failure,
    circuit_record_success,
    release_held,
)
from subscribers.models import Subscriber
from subscribers.services import subscriber_back_off, subscriber_deactivate

if TYPE_CHECKING:
    from deliveries.claims import Claim

logger = logging.getLogger(__name__)

GONE = 410
LOST_WORKER_ERROR = "worker stopped before recording the outcome (outcome unknown)"


@dataclass(frozen=True)
class Sent:
    """A claim and what came back when it was sent."""

    claim: Claim
    result: SendResult


@transaction.atomic
def deliveries_record_outcomes(outcomes: Sequence[Sent], *, now: datetime) -> list[str]:
    """Record a batch of sends in one transaction; returns each one's outcome, in order.

    Successes, the common case, are written with one statement per table. Only the
    worker whose lease is still current moves a delivery on; a worker that was presumed dead and
    replaced only records its attempt. The lease is told by `attempts_made`, which every claim
    raises and nothing lowers: `attempt_count` restarts on a requeue, so a stale worker could
    match a later claim's count.
    """
    update_rows(
        DeliveryAttempt,
        set_fields=("finished_at", "duration_ms", "status_code", "response_excerpt", "error"),
        where_fields=("id",),
        rows=[
            (
                now,
                sent.result.duration_ms,
                sent.result.status_code,
                sent.result.response_excerpt,
                sent.result.error,
                sent.claim.attempt.pk,
            )
            for sent in outcomes
        ],
    )
    succeeded = [sent for sent in outcomes if sent.result.succeeded]
    superseded = _record_successes(succeeded, now=now) if succeeded else set()
    labels = {
        id(sent): "superseded" if id(sent) in superseded else "delivered" for sent in succeeded
    }
    # Failures lock their subscriber's row; one global order keeps concurrent workers deadlock-free.
    failed = sorted(
        (sent for sent in outcomes if not sent.result.succeeded),
        key=lambda sent: str(sent.claim.delivery.subscriber_id),
    )
    for sent in failed:
        labels[id(sent)] = _record_failure(sent, now=now)
    return [labels[id(sent)] for sent in outcomes]


def delivery_record_outcome(*, claim: Claim, result: SendResult, now: datetime) -> str:
    """Record one send; see `deliveries_record_outcomes`."""
    return deliveries_record_outcomes([Sent(claim, result)], now=now)[0]


def _record_successes(succeeded: list[Sent], *, now: datetime) -> set[int]:
    """Mark delivered; returns the `id()`s of sends whose lease had been taken over meanwhile.

    One conditional UPDATE: a delivery moves on only if it is still in flight under this claim.
    """
    matched = update_rows(
        Delivery,
        set_fields=(
            "status",
            "delivered_at",
            "next_attempt_at",
            "lease_until",
            "last_status_code",
            "last_error",
            "updated_at",
        ),
        where_fields=("id", "status", "attempts_made"),
        rows=[
            (
                Delivery.Status.DELIVERED,
                now,
                None,
                None,
                sent.result.status_code,
                "",
                now,
                sent.claim.delivery.pk,
                Delivery.Status.IN_FLIGHT,
                sent.claim.delivery.attempts_made,
            )
            for sent in succeeded
        ],
    )
    current = [succeeded[position] for position in matched]
    # A closed circuit with no failures (as the claim saw it) has nothing to reset: skip the
    # write, which would otherwise cost every successful delivery an UPDATE of its subscriber.
    to_reset = sorted(
        {
            sent.claim.delivery.subscriber_id
            for sent in current
            if sent.claim.delivery.subscriber.circuit_state != Subscriber.Circuit.CLOSED
            or sent.claim.delivery.subscriber.consecutive_failures
            or sent.claim.probe
        },
        key=str,
    )
    closed = [
        subscriber_id
        for subscriber_id in to_reset
        if circuit_record_success(subscriber_id=subscriber_id, now=now)
    ]
    if closed:
        release_held(closed)
    superseded = {id(sent) for sent in succeeded} - {id(sent) for sent in current}
    for sent in succeeded:
        if id(sent) in superseded:
            _log_superseded(sent.claim)
    return superseded


def _record_failure(sent: Sent, *, now: datetime) -> str:
    claim, result = sent.claim, sent.result
    delivery = (
        Delivery.objects.select_for_update()
        .filter(
            pk=claim.delivery.pk,
            status=Delivery.Status.IN_FLIGHT,
            attempts_made=claim.delivery.attempts_made,
        )
        .first()
    )
    if delivery is None:
        _log_superseded(claim)
        return "superseded"
    error = _describe_failure(result)
    if result.status_code == GONE:
        reason = "receiver answered 410 Gone; subscriber deactivated"
        subscriber_deactivate(
            subscriber_id=delivery.subscriber_id,
            reason=f"410 Gone from {claim.request.url} at {now.isoformat()}",
            now=now,
        )
        dead_letter(delivery, reason=reason, status_code=result.status_code, error=error, now=now)
        return "gone"
    retry_after = _retry_after(result, now=now)
    _protect_receiver(delivery, retry_after=retry_after, error=error, now=now)
    delay = policy.retry_policy().delay_after(delivery.attempt_count, retry_after=retry_after)
    if delay is None:
        reason = f"all {delivery.attempt_count} attempts failed; last: {error}"
        dead_letter(delivery, reason=reason, status_code=result.status_code, error=error, now=now)
        return "exhausted"
    # The retry stays queued: the dispatcher takes it when next_attempt_at comes.
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.RETRYING,
        next_attempt_at=now + timedelta(seconds=delay),
        lease_until=None,
        enqueued_at=now,
        last_status_code=result.status_code,
        last_error=error,
        updated_at=now,
    )
    return "retrying"


def _log_superseded(claim: Claim) -> None:
    logger.warning(
        "outcome of a superseded attempt ignored",
        extra={"delivery_id": str(claim.delivery.pk), "attempt": claim.attempt.number},
    )


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
    if result.status_code is None:
        return result.error
    described = f"HTTP {result.status_code}"
    return f"{described}: {result.error}" if result.error else described


def _retry_after(result: SendResult, *, now: datetime) -> float | None:
    if result.status_code not in RETRY_AFTER_STATUSES:
        return None
    headers = {name.lower(): value for name, value in result.headers.items()}
    return parse_retry_after(headers.get("retry-after"), now=now)


def dead_letter(
    delivery: Delivery, *, reason: str, status_code: int | None, error: str, now: datetime
) -> None:
    """The delivery has failed for good: park it where an operator can see and replay it."""
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.FAILED,
        next_attempt_at=None,
        lease_until=None,
        enqueued_at=None,
        last_status_code=status_code,
        last_error=error,
        updated_at=now,
    )
    delivery.status = Delivery.Status.FAILED
    letter = DeadLetter.objects.create(
        delivery_id=delivery.pk,
        reason=reason,
        last_status_code=status_code,
        last_error=error,
        attempt_count=delivery.attempt_count,
    )
    delivery_dead_lettered.send(sender=Delivery, delivery=delivery, dead_letter=letter, now=now)
    logger.warning(
        "delivery dead-lettered",
        extra={
            "event_id": str(delivery.event_id),
            "delivery_id": str(delivery.pk),
            "subscriber_id": str(delivery.subscriber_id),
            "status": "failed",
            "status_code": status_code,
            "reason": reason,
        },
    )
