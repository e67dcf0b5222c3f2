"""django-q2 entry points. Jobs carry only ids and re-read everything: duplicates are harmless."""

from __future__ import annotations

from django.utils import timezone

from deliveries.engine import delivery_attempt
from deliveries.services import deliveries_sweep


def deliver(delivery_id: str) -> str:
    return delivery_attempt(delivery_id=delivery_id)


def sweep() -> int:
    return deliveries_sweep(now=timezone.now())
