"""Reads of subscribers."""

from __future__ import annotations

from collections.abc import Sequence

from subscribers.matching import matches_any
from subscribers.models import Subscriber


def active_subscribers() -> list[Subscriber]:
    """Every active subscriber with what fan-out needs: one query per ingest request, not per event.

    Matching is done in Python: patterns are few per subscriber, and prefix wildcards do not map
    onto an index portably.
    """
    return list(
        Subscriber.objects.filter(is_active=True).only(
            "id", "event_types", "circuit_state", "rate_limit_per_second"
        )
    )


def subscribers_matching(
    *, event_type: str, among: Sequence[Subscriber] | None = None
) -> list[Subscriber]:
    """The active subscribers (or those `among` them) with a pattern matching `event_type`."""
    candidates = active_subscribers() if among is None else among
    return [s for s in candidates if matches_any(s.event_types, event_type)]
