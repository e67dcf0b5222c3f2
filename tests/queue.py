"""What the dispatchers would take: the deliveries queue, seen from tests."""

from __future__ import annotations

from datetime import datetime

from deliveries.models import DUE_STATUSES, Delivery


def queued() -> list[tuple[str, datetime]]:
    """(delivery id, due time) of every delivery queued for the dispatchers."""
    return [
        (str(pk), due_at)
        for pk, due_at in Delivery.objects.filter(status__in=DUE_STATUSES)
        .exclude(enqueued_at=None)
        .values_list("pk", "next_attempt_at")
    ]
