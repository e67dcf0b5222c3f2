"""The once-a-minute safety net for work nothing else would pick up."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from deliveries.models import DUE_STATUSES, Delivery
from deliveries.queue import enqueue_probe
from deliveries.wakeup import wake_dispatchers
from subscribers.models import Subscriber

logger = logging.getLogger(__name__)


def deliveries_sweep(*, now: datetime, batch_size: int = 1000) -> int:
    """Queue held deliveries whose subscriber is sending again, and probe due open circuits.

    Resuming a subscriber or closing its circuit releases its held deliveries through a job; if
    that job was lost (say the database was down when it ran), this puts them back in the queue.
    Deliveries whose worker died need nothing from here: dispatchers reclaim expired leases.
    """
    total = 0
    while True:
        queued = _requeue_batch(now=now, batch_size=batch_size)
        total += queued
        if queued < batch_size:
            break
    probes = _queue_due_probes(now=now)
    if total or probes:
        logger.info("sweeper queued work", extra={"deliveries": total, "probes": probes})
    return total


@transaction.atomic
def _requeue_batch(*, now: datetime, batch_size: int) -> int:
    ids = list(
        Delivery.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            status__in=DUE_STATUSES,
            enqueued_at=None,
            subscriber__is_active=True,
            subscriber__circuit_state=Subscriber.Circuit.CLOSED,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:batch_size]
    )
    if ids:
        Delivery.objects.filter(pk__in=ids).update(enqueued_at=now, updated_at=now)
        wake_dispatchers()
    return len(ids)


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
