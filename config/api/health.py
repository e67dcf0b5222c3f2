"""GET /api/v1/health: is Herald able to take events and deliver them? Needs no API key.

200 when every check passes, 503 with the reasons when one fails: the database answers, every
migration is applied, a delivery worker checked in within the last minute, and nothing due has
waited in the queue longer than HERALD_HEALTH_MAX_QUEUE_LAG seconds.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from deliveries.heartbeat import ALIVE_WITHIN, cluster_status
from deliveries.selectors import queue_stats


class ClusterHealthSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="`ok`, or why not.")
    workers_alive = serializers.IntegerField(help_text="Workers seen within the last minute.")
    last_heartbeat_at = serializers.DateTimeField(allow_null=True)
    last_heartbeat_age_seconds = serializers.FloatField(allow_null=True)


class QueueHealthSerializer(serializers.Serializer):
    status = serializers.CharField(help_text="`ok`, or why not.")
    depth = serializers.IntegerField(help_text="Deliveries queued and due now (exact to 10,000).")
    oldest_age_seconds = serializers.FloatField(help_text="Longest wait of a due delivery.")
    jobs = serializers.IntegerField(help_text="django-q2 jobs due and not yet taken.")
    oldest_job_age_seconds = serializers.FloatField(help_text="Longest wait of a due job.")
    max_lag_seconds = serializers.FloatField(help_text="HERALD_HEALTH_MAX_QUEUE_LAG.")


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ok", "unavailable"])
    database = serializers.CharField(help_text="`ok`, or the error.")
    migrations = serializers.CharField(required=False, help_text="`ok`, or what is unapplied.")
    cluster = ClusterHealthSerializer(required=False)
    queue = QueueHealthSerializer(required=False)
    reasons = serializers.ListField(
        child=serializers.CharField(), help_text="Why it is unavailable; empty when ok."
    )


HEALTHY = {
    "status": "ok",
    "database": "ok",
    "migrations": "ok",
    "cluster": {
        "status": "ok",
        "workers_alive": 2,
        "last_heartbeat_at": "2026-11-24T09:00:03Z",
        "last_heartbeat_age_seconds": 2.4,
    },
    "queue": {
        "status": "ok",
        "depth": 12,
        "oldest_age_seconds": 0.3,
        "jobs": 0,
        "oldest_job_age_seconds": 0.0,
        "max_lag_seconds": 300.0,
    },
    "reasons": [],
}


class MigrationCheck:
    """Unapplied migrations. Once all are applied the answer is kept: a running process's code,
    and so its migrations, cannot change, and loading the graph on every probe would be waste."""

    def __init__(self) -> None:
        self.all_applied = False

    def unapplied(self) -> list[str]:
        if self.all_applied:
            return []
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        unapplied = [f"{migration.app_label}.{migration.name}" for migration, _ in plan]
        self.all_applied = not unapplied
        return unapplied


migration_check = MigrationCheck()


def _age(now: datetime, at: datetime | None) -> float:
    return round(max(0.0, (now - at).total_seconds()), 3) if at else 0.0


@extend_schema(
    summary="Is Herald healthy?",
    description="200 when the database answers, every migration is applied, a delivery worker "
    "checked in within the last minute and nothing due has waited longer than "
    "HERALD_HEALTH_MAX_QUEUE_LAG; otherwise 503, with the `reasons`.",
    responses={
        200: OpenApiResponse(
            HealthSerializer,
            description="Healthy.",
            examples=[OpenApiExample("Healthy", HEALTHY)],
        ),
        503: OpenApiResponse(
            HealthSerializer,
            description="Something is wrong; `reasons` says what.",
            examples=[
                OpenApiExample(
                    "No worker",
                    {
                        **HEALTHY,
                        "status": "unavailable",
                        "cluster": {
                            "status": "no delivery worker running (none checked in within "
                            "60 s, or the last stopped)",
                            "workers_alive": 0,
                            "last_heartbeat_at": "2026-11-24T08:51:40Z",
                            "last_heartbeat_age_seconds": 502.6,
                        },
                        "reasons": [
                            "cluster: no delivery worker running (none checked in within 60 s, "
                            "or the last stopped)"
                        ],
                    },
                ),
            ],
        ),
    },
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request: Request) -> Response:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return _quiet(
            Response(
                {"status": "unavailable", "database": f"error: {exc}", "reasons": ["database"]},
                status=503,
            )
        )
    now = timezone.now()
    reasons: list[str] = []

    unapplied = migration_check.unapplied()
    migrations = "ok"
    if unapplied:
        migrations = f"{len(unapplied)} unapplied: {', '.join(unapplied)}"
        reasons.append(f"migrations: {migrations}")

    cluster = cluster_status(now=now)
    cluster_state = "ok"
    if not cluster.ok:
        # "Running": a worker that stopped cleanly a moment ago checked in recently, but is gone.
        cluster_state = (
            "no delivery worker running (none checked in within "
            f"{ALIVE_WITHIN.total_seconds():.0f} s, or the last stopped)"
        )
        reasons.append(f"cluster: {cluster_state}")

    queue = queue_stats(now=now)
    max_lag = settings.HERALD_HEALTH_MAX_QUEUE_LAG
    lag = queue.lag_seconds(now)
    queue_state = "ok"
    if lag > max_lag:
        queue_state = f"work due {lag:.0f} s ago is still waiting (limit {max_lag:.0f} s)"
        reasons.append(f"queue: {queue_state}")

    body = {
        "status": "unavailable" if reasons else "ok",
        "database": "ok",
        "migrations": migrations,
        "cluster": {
            "status": cluster_state,
            "workers_alive": cluster.workers_alive,
            "last_heartbeat_at": cluster.last_seen_at,
            "last_heartbeat_age_seconds": cluster.last_seen_age(now),
        },
        "queue": {
            "status": queue_state,
            "depth": queue.queued_due.count,
            "oldest_age_seconds": _age(now, queue.oldest_due_at),
            "jobs": queue.jobs_due.count,
            "oldest_job_age_seconds": _age(now, queue.oldest_job_due_at),
            "max_lag_seconds": max_lag,
        },
        "reasons": reasons,
    }
    return _quiet(Response(HealthSerializer(body).data, status=503 if reasons else 200))


def _quiet(response: Response) -> Response:
    # An unhealthy answer is the probe working, not an error of this request: Django would log
    # every 503 at ERROR, a line per probe for as long as the outage lasts.
    response._has_been_logged = True
    return response
