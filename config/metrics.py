"""Herald's metrics, computed at scrape time from cheap queries on the shared database.

Every process (web, workers, on any machine) writes to the same PostgreSQL, so reading the
numbers from it gives one consistent view wherever the scrape lands, with no per-process state
to aggregate. Each query is bounded: counts read at most COUNT_CAP index entries (estimated past
that), attempt outcomes and latency read only the last few minutes, and the two totals come from
PostgreSQL's own table statistics. See the README's Observability section for the list.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from time import monotonic
from typing import Any

from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from config.db import rows_ever_inserted
from deadletters.selectors import unresolved_dead_letters_count
from deliveries.heartbeat import cluster_status
from deliveries.models import DeliveryAttempt
from deliveries.selectors import (
    COUNT_CAP,
    deliveries_by_status,
    queue_stats,
    recent_attempts,
)
from events.selectors import events_ingested_total
from subscribers.selectors import circuits_not_closed, subscribers_by_activity


def _age(now: datetime, at: datetime | None) -> float:
    return round(max(0.0, (now - at).total_seconds()), 3) if at else 0.0


def metrics_snapshot(*, now: datetime | None = None) -> dict[str, Any]:
    """Every metric, as the JSON of GET /api/v1/metrics; the Prometheus collector reads it too."""
    started, now = monotonic(), now or timezone.now()
    by_status = deliveries_by_status()
    queue = queue_stats(now=now)
    attempts = recent_attempts(now=now)
    dead_letters, dead_letters_exact = unresolved_dead_letters_count(cap=COUNT_CAP)
    cluster = cluster_status(now=now)
    return {
        "generated_at": now,
        "events_ingested_total": events_ingested_total(),
        "deliveries": {status: counted.count for status, counted in by_status.items()},
        "estimated": sorted(
            [f"deliveries.{status}" for status, counted in by_status.items() if not counted.exact]
            + [
                name
                for name, counted in (("queue.depth", queue.queued_due), ("queue.held", queue.held))
                if not counted.exact
            ]
            + ([] if dead_letters_exact else ["dead_letters_unresolved"])
        ),
        "queue": {
            "depth": queue.queued_due.count,
            "oldest_age_seconds": _age(now, queue.oldest_due_at),
            "retrying": by_status["retrying"].count,
            "held": queue.held.count,
            "jobs": queue.jobs_due.count,
            "oldest_job_age_seconds": _age(now, queue.oldest_job_due_at),
        },
        "dead_letters_unresolved": dead_letters,
        "circuits": circuits_not_closed(),
        "subscribers": subscribers_by_activity(),
        "attempts": {
            "total": rows_ever_inserted(DeliveryAttempt),
            "window_seconds": attempts.window_seconds,
            "recent": attempts.by_outcome,
        },
        "latency_seconds": {
            "window_seconds": attempts.window_seconds,
            "buckets": {str(bound): count for bound, count in attempts.latency_buckets.items()},
            "count": attempts.latency_count,
            "sum": round(attempts.latency_sum_seconds, 3),
        },
        "workers": {
            "alive": cluster.workers_alive,
            "last_heartbeat_age_seconds": (
                round(cluster.last_seen_age(now), 3) if cluster.last_seen_at else None
            ),
        },
        "scrape_seconds": round(monotonic() - started, 4),
    }


class HeraldCollector(Collector):
    """The snapshot as Prometheus metric families, computed when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        snapshot = metrics_snapshot()
        yield CounterMetricFamily(
            "herald_events_ingested",
            "Events stored since the database's statistics were reset.",
            value=snapshot["events_ingested_total"],
        )
        deliveries = GaugeMetricFamily(
            "herald_deliveries",
            f"Deliveries by status (exact up to {COUNT_CAP}, estimated beyond).",
            labels=["status"],
        )
        for status, count in snapshot["deliveries"].items():
            deliveries.add_metric([status], count)
        yield deliveries
        queue = snapshot["queue"]
        yield GaugeMetricFamily(
            "herald_queue_depth", "Deliveries queued and due now.", value=queue["depth"]
        )
        yield GaugeMetricFamily(
            "herald_queue_oldest_age_seconds",
            "How long the longest-waiting due delivery has waited.",
            value=queue["oldest_age_seconds"],
        )
        yield GaugeMetricFamily(
            "herald_deliveries_retrying",
            "Deliveries in status retrying, held ones included.",
            value=queue["retrying"],
        )
        yield GaugeMetricFamily(
            "herald_deliveries_held",
            "Deliveries held for a paused subscriber or an open circuit.",
            value=queue["held"],
        )
        yield GaugeMetricFamily(
            "herald_jobs_queued",
            "django-q2 jobs (probes, releases, sweeps, prunes) due and not yet taken.",
            value=queue["jobs"],
        )
        yield GaugeMetricFamily(
            "herald_jobs_oldest_age_seconds",
            "How long the longest-waiting due job has waited.",
            value=queue["oldest_job_age_seconds"],
        )
        yield GaugeMetricFamily(
            "herald_dead_letters_unresolved",
            "Dead letters waiting for an operator.",
            value=snapshot["dead_letters_unresolved"],
        )
        circuits = GaugeMetricFamily(
            "herald_circuits", "Subscribers whose circuit is not closed.", labels=["state"]
        )
        for state, count in snapshot["circuits"].items():
            circuits.add_metric([state], count)
        yield circuits
        subscribers = GaugeMetricFamily(
            "herald_subscribers", "Subscribers, active or not.", labels=["state"]
        )
        for state, count in snapshot["subscribers"].items():
            subscribers.add_metric([state], count)
        yield subscribers
        attempts = snapshot["attempts"]
        yield CounterMetricFamily(
            "herald_delivery_attempts",
            "Delivery attempts started since the database's statistics were reset.",
            value=attempts["total"],
        )
        recent = GaugeMetricFamily(
            "herald_delivery_attempts_recent",
            f"Attempts started in the last {attempts['window_seconds']:.0f} s, by outcome.",
            labels=["outcome"],
        )
        for outcome, count in attempts["recent"].items():
            recent.add_metric([outcome], count)
        yield recent
        latency = snapshot["latency_seconds"]
        buckets = [(bound, count) for bound, count in latency["buckets"].items()]
        yield GaugeHistogramMetricFamily(
            "herald_delivery_duration_seconds",
            f"Durations of the attempts finished in the last {latency['window_seconds']:.0f} s.",
            buckets=[*buckets, ("+Inf", latency["count"])],
            gsum_value=latency["sum"],
        )
        workers = snapshot["workers"]
        yield GaugeMetricFamily(
            "herald_workers_alive",
            "Delivery workers that checked in within the last minute.",
            value=workers["alive"],
        )
        if workers["last_heartbeat_age_seconds"] is not None:
            yield GaugeMetricFamily(
                "herald_worker_heartbeat_age_seconds",
                "Seconds since the most recent worker heartbeat.",
                value=workers["last_heartbeat_age_seconds"],
            )
        yield GaugeMetricFamily(
            "herald_metrics_scrape_seconds",
            "Time taken to compute these metrics.",
            value=snapshot["scrape_seconds"],
        )
