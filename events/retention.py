"""Deleting old, finished history in small batches, so no lock is held for long.

An event older than the cutoff goes, with its deliveries, their attempts and their resolved dead
letters, once nothing about it is still in play: every delivery delivered or failed, and no dead
letter waiting for an operator. Undelivered work and unresolved dead letters are kept whole
(event, deliveries, attempts), however old, so nothing an operator may still replay is lost.

Finished is final here: the only way back from `delivered` or `failed` is replaying an
unresolved dead letter, and events with one are not touched, so a batch needs no row locks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from deliveries.models import Delivery, DeliveryAttempt
from events.models import Event

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
UNFINISHED = (Delivery.Status.PENDING, Delivery.Status.IN_FLIGHT, Delivery.Status.RETRYING)


@dataclass(frozen=True)
class Pruned:
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    dead_letters: int = 0
    kept: int = 0  # old events kept: work still pending, or a dead letter unresolved

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )

    def __str__(self) -> str:
        return " ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))


def history_prune(
    *, older_than: datetime, batch_size: int = BATCH_SIZE, dry_run: bool = False
) -> Pruned:
    """Delete finished events created before `older_than`, `batch_size` events per transaction.

    Events are walked once, oldest first, by (created_at, id): each batch looks at the next
    `batch_size` old events, so kept ones are never scanned twice and every transaction is small.
    """
    total, after = Pruned(), None
    while True:
        pruned, scanned, after = _prune_batch(
            older_than=older_than, after=after, batch_size=batch_size, dry_run=dry_run
        )
        total += pruned
        if scanned < batch_size:
            break
    logger.info(
        "history pruned" if not dry_run else "history prune (dry run)",
        extra={"older_than": older_than.isoformat(), **vars(total)},
    )
    return total


@transaction.atomic
def _prune_batch(
    *, older_than: datetime, after: tuple | None, batch_size: int, dry_run: bool
) -> tuple[Pruned, int, tuple | None]:
    old = Event.objects.filter(created_at__lt=older_than)
    if after is not None:
        created_at, pk = after
        old = old.filter(Q(created_at__gt=created_at) | Q(created_at=created_at, pk__gt=pk))
    rows = list(old.order_by("created_at", "pk").values_list("created_at", "pk")[:batch_size])
    if not rows:
        return Pruned(), 0, after
    scanned_ids = [pk for _, pk in rows]
    in_play = set(
        Delivery.objects.filter(event_id__in=scanned_ids)
        .filter(
            Q(status__in=UNFINISHED)
            | Q(dead_letters__isnull=False, dead_letters__resolved_at__isnull=True)
        )
        .values_list("event_id", flat=True)
    )
    ids = [pk for pk in scanned_ids if pk not in in_play]
    if dry_run:
        pruned = Pruned(
            events=len(ids),
            deliveries=Delivery.objects.filter(event_id__in=ids).count(),
            attempts=DeliveryAttempt.objects.filter(delivery__event_id__in=ids).count(),
            dead_letters=Delivery.objects.filter(
                event_id__in=ids, dead_letters__isnull=False
            ).count(),
            kept=len(in_play),
        )
    else:
        # Django cascades: each delivery's attempts and dead letters, then the deliveries.
        _, deleted = Event.objects.filter(pk__in=ids).delete()
        pruned = Pruned(
            events=deleted.get("events.Event", 0),
            deliveries=deleted.get("deliveries.Delivery", 0),
            attempts=deleted.get("deliveries.DeliveryAttempt", 0),
            dead_letters=deleted.get("deadletters.DeadLetter", 0),
            kept=len(in_play),
        )
    return pruned, len(rows), rows[-1]
