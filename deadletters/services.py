"""The dead-letter queue: replay (a fresh set of attempts) and resolve (dismiss) dead letters."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.db.models import QuerySet

from deadletters.models import DeadLetter
from deliveries.models import Delivery
from deliveries.services import deliveries_requeue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    done: int  # dead letters acted on
    skipped: int  # already resolved (or being handled by someone else right now)
    ids: tuple[UUID, ...] = ()  # those acted on, for the admin's log


@transaction.atomic
def dead_letters_replay(*, dead_letters: QuerySet[DeadLetter], now: datetime) -> Outcome:
    """Give each unresolved dead letter's delivery a fresh set of attempts, starting now.

    The webhook-id stays the same, so a receiver that already processed the event can drop it.
    Bulk queries throughout: replaying ten thousand letters is a handful of statements.
    """
    selected = dead_letters.count()
    unresolved = list(
        dead_letters.select_for_update(skip_locked=True, of=("self",))
        .filter(resolved_at=None)
        .values_list("pk", "delivery_id")
    )
    letter_ids = [letter_id for letter_id, _ in unresolved]
    DeadLetter.objects.filter(pk__in=letter_ids).update(
        resolved_at=now, resolution=DeadLetter.Resolution.REPLAYED
    )
    deliveries_requeue(
        deliveries=Delivery.objects.filter(pk__in=[delivery_id for _, delivery_id in unresolved]),
        now=now,
    )
    if letter_ids:
        logger.info("dead letters replayed", extra={"count": len(letter_ids)})
    return Outcome(done=len(letter_ids), skipped=selected - len(letter_ids), ids=tuple(letter_ids))


@transaction.atomic
def dead_letters_resolve(*, dead_letters: QuerySet[DeadLetter], now: datetime) -> Outcome:
    """Mark dead letters as handled without sending anything (the operator dealt with them)."""
    selected = dead_letters.count()
    letter_ids = list(
        dead_letters.select_for_update(skip_locked=True, of=("self",))
        .filter(resolved_at=None)
        .values_list("pk", flat=True)
    )
    DeadLetter.objects.filter(pk__in=letter_ids).update(
        resolved_at=now, resolution=DeadLetter.Resolution.RESOLVED
    )
    return Outcome(done=len(letter_ids), skipped=selected - len(letter_ids), ids=tuple(letter_ids))
