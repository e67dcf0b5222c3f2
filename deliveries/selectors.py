"""Reads of deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Sum,
)
from django.db.models.expressions import RawSQL
from django_q.conf import Conf
from django_q.models import OrmQ

from config.db import bounded_count
from deliveries.models import DUE_STATUSES, Delivery, DeliveryAttempt
from subscribers.models import Subscriber

# "Recent" success rate: the last hour, at most this many attempts, so it stays cheap.
RECENT = timedelta(hours=1)
RECENT_ATTEMPTS = 500
# The console's per-subscriber counts of the last hour stop here (shown as "10,000+"), so a
# receiver flooded with deliveries costs a bounded read.
RECENT_COUNT_CAP = 10_000


def queued(now: datetime | None = None) -> QuerySet[Delivery]:
    """What the dispatchers will take: pending or retrying and not held (`delivery_ready_idx`),
    only what is due by `now` if given."""
    waiting = Delivery.objects.filter(status__in=DUE_STATUSES, enqueued_at__isnull=False)
    return waiting if now is None else waiting.filter(next_attempt_at__lte=now)


def subscribers_with_recent_deliveries(
    subscribers: QuerySet[Subscriber], *, now: datetime
) -> QuerySet[Subscriber]:
    """Each subscriber with its deliveries of the last hour (delivered / failing) and last success.

    `delivered_last_hour` and `failing_last_hour` (retrying or failed) count the deliveries
    created in the last hour, up to RECENT_COUNT_CAP + 1 (see `recent_count_display`);
    `last_success_at` is when the latest one was delivered. Correlated subqueries, computed only
    for the rows a page shows, each a bounded range of one index: cheap however big the table is.
    The counts name the subscribers table in raw SQL: use the result as the outer query (a list,
    a page), not inside another query's filter.
    """
    since = now - RECENT
    last_success = (
        Delivery.objects.filter(subscriber=OuterRef("pk"), delivered_at__isnull=False)
        .order_by("-delivered_at")
        .values("delivered_at")[:1]
    )
    return subscribers.annotate(
        delivered_last_hour=_recent_count([Delivery.Status.DELIVERED], since=since),
        failing_last_hour=_recent_count(
            [Delivery.Status.RETRYING, Delivery.Status.FAILED], since=since
        ),
        last_success_at=Subquery(last_success),
    )


def recent_count_display(count: int) -> str:
    return f"{RECENT_COUNT_CAP:,}+" if count > RECENT_COUNT_CAP else f"{count:,}"


def _recent_count(statuses: list[str], *, since: datetime) -> RawSQL:
    """The subscriber's deliveries since `since` in these statuses, counted up to the cap + 1.

    Raw SQL for one reason: the ORDER BY ... LIMIT, which the ORM cannot put under a COUNT. It
    makes the plan walk the (subscriber, created_at) index from the newest row and stop at the
    cap; a plain COUNT let PostgreSQL pick the created_at index instead and read every
    subscriber's last hour once per row shown.
    """
    quote = connection.ops.quote_name
    column = {
        name: quote(Delivery._meta.get_field(name).column)
        for name in ("subscriber", "created_at", "status")
    }
    subscriber_pk = f"{quote(Subscriber._meta.db_table)}.{quote(Subscriber._meta.pk.column)}"
    return RawSQL(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM {quote(Delivery._meta.db_table)} recent "
        f"WHERE recent.{column['subscriber']} = {subscriber_pk} "
        f"AND recent.{column['created_at']} >= %s "
        f"AND recent.{column['status']} IN ({', '.join(['%s'] * len(statuses))}) "
        f"ORDER BY recent.{column['created_at']} DESC LIMIT %s) capped",
        [since, *statuses, RECENT_COUNT_CAP + 1],
        output_field=IntegerField(),
    )


def deliveries_list() -> QuerySet[Delivery]:
    return _with_held(Delivery.objects.all())


def _with_held(deliveries: QuerySet[Delivery]) -> QuerySet[Delivery]:
    """Each delivery's `held`: due, but waiting for its subscriber (paused, or its circuit not
    closed). A dispatcher sets such a delivery aside when it comes to it; until then it is
    still queued, and waits all the same."""
    return deliveries.annotate(
        held=ExpressionWrapper(
            Q(status__in=DUE_STATUSES)
            & (
                Q(enqueued_at=None)
                | Q(subscriber__is_active=False)
                | ~Q(subscriber__circuit_state=Subscriber.Circuit.CLOSED)
            ),
            output_field=BooleanField(),
        )
    )


def deliveries_count_by_status(deliveries: QuerySet[Delivery]) -> dict[str, int]:
    """How many of these deliveries are in each status (only statuses present), in one query."""
    return dict(
        deliveries.order_by()
        .values("status")
        .annotate(count=Count("*"))
        .values_list("status", "count")
    )


def deliveries_held_by_subscriber(ids: list) -> int:
    """How many of these deliveries a dispatcher will set aside rather than send: their
    subscriber is paused or its circuit is not closed."""
    return (
        Delivery.objects.filter(pk__in=ids)
        .filter(
            Q(subscriber__is_active=False) | ~Q(subscriber__circuit_state=Subscriber.Circuit.CLOSED)
        )
        .count()
    )


def delivery_with_attempts() -> QuerySet[Delivery]:
    return _with_held(Delivery.objects.all()).prefetch_related(
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
    ready = queued(now)
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
