"""django-q2 entry points of the events app."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from events.retention import history_prune


def prune_history() -> str:
    """The daily schedule: delete finished history older than HERALD_RETENTION_DAYS."""
    result = history_prune(
        older_than=timezone.now() - timedelta(days=settings.HERALD_RETENTION_DAYS)
    )
    return str(result)
