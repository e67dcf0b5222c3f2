"""Reads of the dead-letter queue."""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet

from config.db import bounded_count
from deadletters.models import DeadLetter


def dead_letters_list() -> QuerySet[DeadLetter]:
    return DeadLetter.objects.select_related("delivery", "delivery__event")


def dead_letter_event_types(*, sample: int = 1_000) -> list[str]:
    """The event types of the latest `sample` dead letters, sorted (for the admin's filter).

    Read backwards along the created_at index and made distinct here: a DISTINCT in SQL would
    read every dead letter.
    """
    latest = DeadLetter.objects.order_by("-created_at").values_list(
        "delivery__event__event_type", flat=True
    )
    return sorted(set(latest[:sample]))


def dead_letters_matching(
    *,
    ids: list[str] | None = None,
    subscriber_id: str | None = None,
    event_type_pattern: str | None = None,
    since: datetime | None = None,
    unresolved_only: bool = True,
) -> QuerySet[DeadLetter]:
    """The dead letters an operator selected by id, subscriber, event-type pattern and age."""
    letters = DeadLetter.objects.all()
    if unresolved_only:
        letters = letters.filter(resolved_at=None)
    if ids:
        letters = letters.filter(pk__in=ids)
    if subscriber_id:
        letters = letters.filter(delivery__subscriber_id=subscriber_id)
    if since:
        letters = letters.filter(created_at__gte=since)
    if event_type_pattern and event_type_pattern != "*":
        if event_type_pattern.endswith(".*"):
            letters = letters.filter(
                delivery__event__event_type__startswith=event_type_pattern[:-1]
            )
        else:
            letters = letters.filter(delivery__event__event_type=event_type_pattern)
    return letters.order_by("created_at")


def unresolved_dead_letters_count(*, cap: int) -> tuple[int, bool]:
    """Through the `deadletter_unresolved_idx` partial index: exact up to `cap`."""
    return bounded_count(DeadLetter.objects.filter(resolved_at=None), cap=cap)
