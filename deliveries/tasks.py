"""django-q2 entry points. Jobs carry only ids and re-read everything: duplicates are harmless."""

from __future__ import annotations

from django.utils import timezone

from deliveries.engine import delivery_attempt
from deliveries.services import held_deliveries_release, probe_candidate
from deliveries.sweeper import deliveries_sweep


def probe(subscriber_id: str) -> str:
    """Send one held delivery of an open circuit; the claim decides whether it may be the probe."""
    delivery_id = probe_candidate(subscriber_id=subscriber_id, now=timezone.now())
    if delivery_id is None:
        return "nothing to probe with"
    return delivery_attempt(delivery_id=str(delivery_id))


def release_held(subscriber_id: str) -> int:
    return held_deliveries_release(subscriber_id=subscriber_id, now=timezone.now())


def sweep() -> int:
    return deliveries_sweep(now=timezone.now())
