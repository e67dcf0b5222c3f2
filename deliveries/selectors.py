"""Reads of deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Prefetch, Q, QuerySet, Sum
from django_q.conf import Conf
from django_q.models import OrmQ

from config.db import bounded_count
from deliveries.claims import ready_due
from deliveries.models import DUE_STATUSES, Delivery, DeliveryAttempt
from subscribers.models import Subscriber

# "Recent" success rate: the last hour, at most this many attempts, so it stays cheap.
RECENT = timedelta(hours=1)
RECENT_ATTEMPTS = 500


def deliveries_list() -> QuerySet[Delivery]:
    return Delivery.objects.all()


def delivery_with_attempts() -> QuerySet[Delivery]:
    return Delivery.objects.prefetch_related(
        Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("number"))
    )


def subscriber_health(*, subscriber: Subscriber, now: datetime) -> dict:
    """What an operator asks of a receiver: is its circuit open, what waits, does it succeed?"""
    recent = list(
        DeliveryAttempt.objects.filter(
            delivery__subscriber=subscriber,
            started_at__gte=now - RECENT,
            finished_at__isnull=False,
        )
        .order_by("-started_at")
        .values_list("status_code", flat=True)[:RECENT_ATTEMPTS]
    )
    succeeded = sum(1 for code in recent if code is not None and 200 <= code < 300)
    waiting = Delivery.objects.filter(
        subscriber=subscriber, status__in=DUE_STATUSES, next_attempt_at__lte=now
    )
    return {
        "subscriber_id": subscriber.pk,
        "is_active": subscriber.is_active,
        "circuit_state": subscriber.circuit_state,
        "circuit_opened_manually": subscriber.circuit_manual,
        "circuit_reason": subscriber.circuit_reason,
        "consecutive_failures": subscriber.consecutive_failures,
        "opened_at": subscriber.circuit_opened_at,
        "next_probe_at": subscriber.circuit_next_probe_at,
        "backoff_until": subscriber.backoff_until,
        "held_deliveries": waiting.filter(enqueued_at=None).count(),
        "recent_attempts": len(recent),
        "recent_success_rate": round(succeeded / len(recent), 4) if recent else None,
    }


# --- what the metrics and the health check read ----------------------------------------------

# Counts of each status are exact up to this many rows, estimated beyond (config.db.bounded_count).
COUNT_CAP = 10_000
# Attempt outcomes and latency: attempts started in the last RECENT_WINDOW, at most the
# RECENT_WINDOW_CAP most recent, read through the started_at index: the cost follows the
# traffic of the last minutes, never the size of the history.
RECENT_WINDOW = timedelta(minutes=5)
RECENT_WINDOW_CAP = 50_000
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds, upper bounds
ATTEMPT_OUTCOMES = ("succeeded", "http_error", "network_error", "in_flight")


@dataclass(frozen=True)
class Counted:
    count: int
    exact: bool


@dataclass(frozen=True)
class QueueStats:
    queued_due: Counted  # queued for the dispatchers and due now
    oldest_due_at: datetime | None  # the longest-waiting of them
    held: Counted  # waiting for a paused subscriber or an open circuit
    jobs_due: Counted  # django-q2 jobs (probes, releases, the sweeper) waiting for a worker
    oldest_job_due_at: datetime | None

    def lag_seconds(self, now: datetime) -> float:
        """How long the longest-waiting due delivery or job has waited: 0 when none waits."""
        oldest = [at for at in (self.oldest_due_at, self.oldest_job_due_at) if at is not None]
        return max(0.0, (now - min(oldest)).total_seconds()) if oldest else 0.0


@dataclass(frozen=True)
class AttemptStats:
    window_seconds: float
    by_outcome: dict[str, int]
    # Finished attempts' durations: cumulative counts per upper bound (seconds), sum and count.
    latency_buckets: dict[float, int]
    latency_sum_seconds: float
    latency_count: int


def deliveries_by_status(*, cap: int = COUNT_CAP) -> dict[str, Counted]:
    """Each status's count through the (status, created_at) index: exact up to `cap`."""
    return {
        status: Counted(*bounded_count(Delivery.objects.filter(status=status), cap=cap))
        for status in Delivery.Status.values
    }


def queue_stats(*, now: datetime, cap: int = COUNT_CAP) -> QueueStats:
    """The dispatchers' queue (`delivery_ready_idx`), held work (`delivery_held_idx`), jobs."""
    ready = ready_due(now)
    held = Delivery.objects.filter(status__in=DUE_STATUSES, enqueued_at__isnull=True)
    jobs = OrmQ.objects.filter(key=Conf.CLUSTER_NAME, lock__lte=now)
    return QueueStats(
        queued_due=Counted(*bounded_count(ready, cap=cap)),
        oldest_due_at=ready.order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first(),
        held=Counted(*bounded_count(held, cap=cap)),
        jobs_due=Counted(*bounded_count(jobs, cap=cap)),
        oldest_job_due_at=jobs.order_by("lock").values_list("lock", flat=True).first(),
    )


def recent_attempts(
    *, now: datetime, window: timedelta = RECENT_WINDOW, cap: int = RECENT_WINDOW_CAP
) -> AttemptStats:
    succeeded = Q(status_code__gte=200, status_code__lt=300)
    finished = Q(finished_at__isnull=False, duration_ms__isnull=False)
    aggregates = {
        "succeeded": Count("pk", filter=succeeded),
        "http_error": Count("pk", filter=Q(status_code__isnull=False) & ~succeeded),
        "network_error": Count("pk", filter=Q(status_code__isnull=True, finished_at__isnull=False)),
        "in_flight": Count("pk", filter=Q(finished_at__isnull=True)),
        "latency_sum_ms": Sum("duration_ms", filter=finished),
        "latency_count": Count("pk", filter=finished),
        **{
            f"le_{index}": Count("pk", filter=finished & Q(duration_ms__lte=bound * 1000))
            for index, bound in enumerate(LATENCY_BUCKETS)
        },
    }
    # Slicing first makes Django aggregate over a subquery of the most recent `cap` attempts.
    row = (
        DeliveryAttempt.objects.filter(started_at__gte=now - window)
        .order_by("-started_at")[:cap]
        .aggregate(**aggregates)
    )
    return AttemptStats(
        window_seconds=window.total_seconds(),
        by_outcome={outcome: row[outcome] for outcome in ATTEMPT_OUTCOMES},
        latency_buckets={bound: row[f"le_{index}"] for index, bound in enumerate(LATENCY_BUCKETS)},
        latency_sum_seconds=(row["latency_sum_ms"] or 0) / 1000,
        latency_count=row["latency_count"],
    )
