"""Reads of subscribers."""

from __future__ import annotations

from subscribers.matching import matches_any
from subscribers.models import Subscriber


def subscribers_matching(*, event_type: str) -> list[Subscriber]:
    """Active subscribers with a pattern matching `event_type`.

    One query for all active subscribers, matched in Python: patterns are few per subscriber and
    prefix wildcards do not map onto an index portably.
    """
    active = Subscriber.objects.filter(is_active=True).only(
        "id", "event_types", "circuit_state", "rate_limit_per_second"
    )
    return [subscriber for subscriber in active if matches_any(subscriber.event_types, event_type)]
