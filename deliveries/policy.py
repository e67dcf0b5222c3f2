"""Delivery settings gathered in one place, read from Django settings when used (tests may vary)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from deliveries.retry import RetryPolicy
from deliveries.sender import Timeouts


def retry_policy() -> RetryPolicy:
    return RetryPolicy(delays=tuple(settings.HERALD_RETRY_SCHEDULE))


def lease() -> timedelta:
    return timedelta(seconds=settings.HERALD_LEASE_SECONDS)


def send_options() -> dict:
    """Keyword arguments for `deliveries.sender.send`, from settings."""
    return {
        "timeouts": Timeouts(
            connect=settings.HERALD_CONNECT_TIMEOUT,
            read=settings.HERALD_READ_TIMEOUT,
            total=settings.HERALD_DELIVERY_TIMEOUT,
        ),
        "excerpt_bytes": settings.HERALD_RESPONSE_EXCERPT_BYTES,
        "allow_private": settings.HERALD_ALLOW_PRIVATE_TARGETS,
        "connections_per_host": settings.HERALD_DELIVERY_CONCURRENCY,
    }
