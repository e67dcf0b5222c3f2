"""GET /api/v1/metrics (JSON) and GET /metrics (Prometheus text): the numbers of config.metrics."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from rest_framework import renderers, serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.permissions import HasScope
from config.metrics import HeraldCollector, metrics_snapshot
from config.scopes import Scope

METRICS_SCOPES = (Scope.METRICS, Scope.READ)


class QueueMetricsSerializer(serializers.Serializer):
    depth = serializers.IntegerField(help_text="Deliveries queued and due now.")
    oldest_age_seconds = serializers.FloatField(help_text="Longest wait of a due delivery.")
    retrying = serializers.IntegerField(help_text="Deliveries waiting to be retried.")
    held = serializers.IntegerField(help_text="Held for a paused subscriber or open circuit.")
    jobs = serializers.IntegerField(help_text="django-q2 jobs due and not yet taken.")
    oldest_job_age_seconds = serializers.FloatField(help_text="Longest wait of a due job.")


class AttemptMetricsSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Attempts ever started (a counter).")
    window_seconds = serializers.FloatField()
    recent = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Attempts started in the window, by outcome: succeeded, http_error, "
        "network_error, in_flight.",
    )


class LatencyMetricsSerializer(serializers.Serializer):
    window_seconds = serializers.FloatField()
    buckets = serializers.DictField(
        child=serializers.IntegerField(),
        help_text="Attempts finished in the window that took at most this many seconds.",
    )
    count = serializers.IntegerField()
    sum = serializers.FloatField(help_text="Seconds, summed.")


class WorkerMetricsSerializer(serializers.Serializer):
    alive = serializers.IntegerField(help_text="Workers seen within the last minute.")
    last_heartbeat_age_seconds = serializers.FloatField(allow_null=True)


class MetricsSerializer(serializers.Serializer):
    generated_at = serializers.DateTimeField()
    events_ingested_total = serializers.IntegerField(help_text="Events ever stored (a counter).")
    deliveries = serializers.DictField(
        child=serializers.IntegerField(), help_text="Deliveries by status."
    )
    estimated = serializers.ListField(
        child=serializers.CharField(),
        help_text="Which counts are estimates: past 10,000 rows a count is the planner's.",
    )
    queue = QueueMetricsSerializer()
    dead_letters_unresolved = serializers.IntegerField()
    circuits = serializers.DictField(
        child=serializers.IntegerField(), help_text="Circuits open and half-open."
    )
    subscribers = serializers.DictField(
        child=serializers.IntegerField(), help_text="Subscribers active and inactive."
    )
    attempts = AttemptMetricsSerializer()
    latency_seconds = LatencyMetricsSerializer()
    workers = WorkerMetricsSerializer()
    scrape_seconds = serializers.FloatField(help_text="Time taken to compute this.")


METRICS_EXAMPLE = {
    "generated_at": "2026-11-24T09:00:00Z",
    "events_ingested_total": 1204331,
    "deliveries": {
        "pending": 12,
        "in_flight": 40,
        "retrying": 7,
        "delivered": 2408112,
        "failed": 31,
    },
    "estimated": ["deliveries.delivered"],
    "queue": {
        "depth": 12,
        "oldest_age_seconds": 0.2,
        "retrying": 7,
        "held": 0,
        "jobs": 0,
        "oldest_job_age_seconds": 0.0,
    },
    "dead_letters_unresolved": 3,
    "circuits": {"open": 1, "half_open": 0},
    "subscribers": {"active": 14, "inactive": 1},
    "attempts": {
        "total": 2411230,
        "window_seconds": 300.0,
        "recent": {"succeeded": 8812, "http_error": 41, "network_error": 3, "in_flight": 40},
    },
    "latency_seconds": {
        "window_seconds": 300.0,
        "buckets": {
            "0.05": 6120,
            "0.1": 8011,
            "0.25": 8790,
            "0.5": 8840,
            "1.0": 8850,
            "2.5": 8853,
            "5.0": 8855,
            "10.0": 8856,
        },
        "count": 8856,
        "sum": 512.4,
    },
    "workers": {"alive": 2, "last_heartbeat_age_seconds": 3.1},
    "scrape_seconds": 0.012,
}


class MetricsView(APIView):
    """Counts, queue depth and lag, attempt outcomes and latency, workers: see the README."""

    read_scopes = METRICS_SCOPES

    @extend_schema(
        summary="Metrics (JSON)",
        responses={
            200: OpenApiResponse(
                MetricsSerializer, examples=[OpenApiExample("Metrics", METRICS_EXAMPLE)]
            )
        },
    )
    def get(self, request: Request) -> Response:
        return Response(MetricsSerializer(metrics_snapshot()).data)


class PrometheusRenderer(renderers.BaseRenderer):
    media_type = "text/plain"
    format = "prometheus"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        return data


class PrometheusMetricsView(APIView):
    """The same metrics in Prometheus's text format, computed when scraped.

    Needs an API key with the `metrics` (or `read`) scope, unless HERALD_METRICS_PUBLIC is on.
    """

    read_scopes = METRICS_SCOPES
    renderer_classes = [PrometheusRenderer]

    def get_authenticators(self):
        return [] if settings.HERALD_METRICS_PUBLIC else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if settings.HERALD_METRICS_PUBLIC else [HasScope()]

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            # Errors keep the API's one JSON shape, whatever the scraper asked for.
            response.accepted_renderer = renderers.JSONRenderer()
            response.accepted_media_type = "application/json"
            response.content_type = None
        return response

    @extend_schema(
        summary="Metrics (Prometheus text format)",
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR,
                description="Prometheus text exposition format 0.0.4.",
                examples=[
                    OpenApiExample(
                        "Metrics",
                        "# HELP herald_queue_depth Deliveries queued and due now.\n"
                        "# TYPE herald_queue_depth gauge\nherald_queue_depth 12.0\n",
                        media_type="text/plain",
                    )
                ],
            )
        },
    )
    def get(self, request: Request) -> Response:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(HeraldCollector())
        # The exact content type Prometheus expects (negotiation matched plain `text/plain`).
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_PLAIN_0_0_4)
