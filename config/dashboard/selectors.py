"""The dashboard's numbers: every query bounded by time or by a cap, along an index.

Rates read the last minute or five along the created_at / started_at indexes; counts of what
waits stop at COUNT_CAP (shown as "10,000+"); the feed and the health table are a page each.
So a refresh costs the same with a thousand deliveries or a hundred million.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When

from deadletters.models import DeadLetter
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.selectors import (
    queued,
    recent_count_display,
    subscribers_with_recent_deliveries,
)
from events.models import Event
from subscribers.models import Subscriber

RATE_WINDOW = timedelta(minutes=1)
QUALITY_WINDOW = timedelta(minutes=5)
# Success rate and latency are computed over at most this many of the latest attempts.
QUALITY_SAMPLE = 5_000
COUNT_CAP = 10_000
FEED_SIZE = 15
HEALTH_ROWS = 20

SUCCESS = Q(status_code__gte=200, status_code__lt=300)


@dataclass(frozen=True)
class Capped:
    """A count that stopped at a cap: `10,000+` rather than a scan of the whole backlog."""

    value: int
    capped: bool

    def __str__(self) -> str:
        return f"{self.value:,}+" if self.capped else f"{self.value:,}"


@dataclass(frozen=True)
class Cards:
    events_per_minute: int
    deliveries_per_minute: int  # successful attempts in the last minute
    attempts_per_minute: int
    success_rate: float | None  # of the attempts finished in the last five minutes
    latency_p50_ms: int | None  # request round trip of those attempts
    latency_p95_ms: int | None
    sample_size: int
    queue_depth: Capped  # queued deliveries due now: the dispatchers' backlog (held ones excluded)
    retrying: Capped
    dead_letters_unresolved: Capped
    open_circuits: int  # open or half-open
    paused_subscribers: int

    @property
    def success_percent(self) -> str:
        return "—" if self.success_rate is None else f"{self.success_rate:.1%}"


def capped_count(queryset: QuerySet, cap: int = COUNT_CAP) -> Capped:
    counted = queryset.order_by()[: cap + 1].count()
    return Capped(value=min(counted, cap), capped=counted > cap)


def percentile(sorted_values: list[int], fraction: float) -> int | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def dashboard_cards(*, now: datetime) -> Cards:
    last_minute = DeliveryAttempt.objects.filter(started_at__gte=now - RATE_WINDOW).aggregate(
        attempts=Count("pk"), succeeded=Count("pk", filter=SUCCESS)
    )
    finished = list(
        DeliveryAttempt.objects.filter(
            started_at__gte=now - QUALITY_WINDOW, finished_at__isnull=False
        )
        .order_by("-started_at")
        .values_list("status_code", "duration_ms")[:QUALITY_SAMPLE]
    )
    succeeded = sum(1 for code, _ in finished if code is not None and 200 <= code < 300)
    durations = sorted(duration for _, duration in finished if duration is not None)
    circuits = Subscriber.objects.aggregate(
        open=Count("pk", filter=~Q(circuit_state=Subscriber.Circuit.CLOSED)),
        paused=Count("pk", filter=Q(is_active=False)),
    )
    return Cards(
        events_per_minute=Event.objects.filter(created_at__gte=now - RATE_WINDOW).count(),
        deliveries_per_minute=last_minute["succeeded"],
        attempts_per_minute=last_minute["attempts"],
        success_rate=succeeded / len(finished) if finished else None,
        latency_p50_ms=percentile(durations, 0.50),
        latency_p95_ms=percentile(durations, 0.95),
        sample_size=len(finished),
        queue_depth=capped_count(queued(now)),
        retrying=capped_count(Delivery.objects.filter(status=Delivery.Status.RETRYING)),
        dead_letters_unresolved=capped_count(DeadLetter.objects.filter(resolved_at=None)),
        open_circuits=circuits["open"],
        paused_subscribers=circuits["paused"],
    )


def latest_attempts(*, limit: int = FEED_SIZE) -> list[DeliveryAttempt]:
    """The newest attempts with their delivery, event and subscriber, in one query."""
    return list(
        DeliveryAttempt.objects.select_related("delivery__event", "delivery__subscriber")
        .defer("delivery__event__payload", "request_headers", "response_excerpt")
        .order_by("-started_at")[:limit]
    )


def subscriber_health(*, now: datetime, limit: int = HEALTH_ROWS) -> list[Subscriber]:
    """Subscribers in trouble first (circuit not closed, then paused), then by name."""
    trouble = Case(
        When(~Q(circuit_state=Subscriber.Circuit.CLOSED), then=Value(0)),
        When(is_active=False, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    subscribers = Subscriber.objects.only(
        "id",
        "name",
        "endpoint_url",
        "is_active",
        "circuit_state",
        "circuit_manual",
        "circuit_reason",
        "consecutive_failures",
        "deactivated_reason",
    )
    rows = list(
        subscribers_with_recent_deliveries(subscribers, now=now).order_by(trouble, "name")[:limit]
    )
    for row in rows:
        row.delivered_display = recent_count_display(row.delivered_last_hour)
        row.failing_display = recent_count_display(row.failing_last_hour)
    return rows
