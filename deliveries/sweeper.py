"""The once-a-minute safety net that queues work the job queue does not hold."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from deliveries import policy
from deliveries.models import DUE_STATUSES, Delivery
from deliveries.queue import enqueue_delivery_jobs, enqueue_probe
from subscribers.models import Subscriber

logger = logging.getLogger(__name__)


def deliveries_sweep(*, now: datetime, batch_size: int = 1000) -> int:
    """Queue jobs for retries coming due, lost jobs, deliveries whose worker died, and probes.

    Runs every minute from any cluster. Claims are idempotent, so an extra job is harmless; the
    enqueued_at marks only keep the sweeper from adding one every minute. Deliveries held by an
    open circuit or a paused subscriber are left alone: they cost nothing while they wait.
    """
    grace = policy.lost_job_grace()
    sending = Q(subscriber__is_active=True, subscriber__circuit_state=Subscriber.Circuit.CLOSED)
    coming_due = Q(
        status__in=DUE_STATUSES,
        enqueued_at=None,
        next_attempt_at__lte=now + policy.enqueue_horizon(),
    )
    lost_job = Q(
        status__in=DUE_STATUSES,
        next_attempt_at__lte=now - grace,
        enqueued_at__lte=now - grace,
    )
    lease_expired = Q(status=Delivery.Status.IN_FLIGHT, lease_until__lt=now) & (
        Q(enqueued_at=None) | Q(enqueued_at__lte=now - grace)
    )
    total = 0
    for condition in (sending & coming_due, sending & lost_job, lease_expired):
        while True:
            queued = _sweep_batch(condition, now=now, batch_size=batch_size)
            total += queued
            if queued < batch_size:
                break
    probes = _queue_due_probes(now=now)
    if total or probes:
        logger.info("sweeper queued deliveries=%s probes=%s", total, probes)
    return total


@transaction.atomic
def _sweep_batch(condition: Q, *, now: datetime, batch_size: int) -> int:
    rows = list(
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(condition)
        .order_by("next_attempt_at")
        .values_list("pk", "next_attempt_at")[:batch_size]
    )
    if not rows:
        return 0
    Delivery.objects.filter(pk__in=[pk for pk, _ in rows]).update(enqueued_at=now)
    enqueue_delivery_jobs((pk, max(due_at or now, now)) for pk, due_at in rows)
    return len(rows)


@transaction.atomic
def _queue_due_probes(*, now: datetime) -> int:
    """Open circuits whose cooldown is over (or whose probe was lost) get a probe job.

    Each circuit already got one at its exact time when it opened; this catches the case where
    that job found nothing to send, or was lost.
    """
    due = list(
        Subscriber.objects.filter(
            is_active=True,
            circuit_manual=False,
            circuit_state__in=(Subscriber.Circuit.OPEN, Subscriber.Circuit.HALF_OPEN),
            circuit_next_probe_at__lte=now,
        ).values_list("pk", flat=True)
    )
    for subscriber_id in due:
        enqueue_probe(subscriber_id, eta=now)
    return len(due)
