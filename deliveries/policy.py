"""Delivery settings gathered in one place, read from Django settings when used (tests may vary)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from deliveries.retry import RetryPolicy


def retry_policy() -> RetryPolicy:
    return RetryPolicy(delays=tuple(settings.HERALD_RETRY_SCHEDULE))


def lease() -> timedelta:
    return timedelta(seconds=settings.HERALD_LEASE_SECONDS)


def enqueue_horizon() -> timedelta:
    return timedelta(seconds=settings.HERALD_ENQUEUE_HORIZON)


def lost_job_grace() -> timedelta:
    """How late a queued job may be before the sweeper presumes it lost and queues another.

    Longer than django-q2's own redelivery of a job that was taken but never finished, so the
    sweeper only steps in when that has not helped either (e.g. the job failed on a database
    that was down).
    """
    return timedelta(seconds=settings.Q_CLUSTER["retry"] + 60)
