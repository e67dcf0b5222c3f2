"""What the dispatchers would take: the deliveries queue, seen from tests."""

from __future__ import annotations

from datetime import datetime

from deliveries import selectors


def queued() -> list[tuple[str, datetime]]:
    """(delivery id, due time) of every delivery queued for the dispatchers."""
    return [
        (str(pk), due_at) for pk, due_at in selectors.queued().values_list("pk", "next_attempt_at")
    ]
