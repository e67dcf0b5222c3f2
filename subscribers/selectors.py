"""Reads of subscribers."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Count

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


def circuits_not_closed() -> dict[str, int]:
    """Open and half-open circuits (the `subscriber_circuit_idx` partial index)."""
    counts = dict(
        Subscriber.objects.exclude(circuit_state=Subscriber.Circuit.CLOSED)
        .order_by()
        .values_list("circuit_state")
        .annotate(count=Count("pk"))
    )
    return {
        state: counts.get(state, 0)
        for state in (Subscriber.Circuit.OPEN, Subscriber.Circuit.HALF_OPEN)
    }


def subscribers_by_activity() -> dict[str, int]:
    counts = dict(
        Subscriber.objects.order_by().values_list("is_active").annotate(count=Count("pk"))
    )
    return {"active": counts.get(True, 0), "inactive": counts.get(False, 0)}
