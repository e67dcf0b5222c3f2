from django.contrib import admin
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from config.api.exceptions import json_not_found
from config.api.health import health
from config.api.metrics import MetricsView, PrometheusMetricsView
from config.dashboard.views import dashboard, dashboard_demo, dashboard_live
from deadletters.api import DeadLetterViewSet
from deliveries.api import DeliveryViewSet, SubscriberHealthView
from events.api import EventViewSet
from events.sources_api import InboundWebhookView, SourceViewSet
from subscribers.api import SubscriberViewSet

router = DefaultRouter(trailing_slash=False)
router.include_root_view = False
router.register("subscribers", SubscriberViewSet, basename="subscriber")
router.register("events", EventViewSet, basename="event")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("dead-letters", DeadLetterViewSet, basename="deadletter")
router.register("sources", SourceViewSet, basename="source")

urlpatterns = [
    path("api/v1/health", health, name="health"),
    path("api/v1/metrics", MetricsView.as_view(), name="metrics"),
    # Where Prometheus looks by default.
    path("metrics", PrometheusMetricsView.as_view(), name="prometheus-metrics"),
    path(
        "api/v1/subscribers/<uuid:pk>/health",
        SubscriberHealthView.as_view(),
        name="subscriber-health",
    ),
    # Third parties' webhooks: no API key, the signature is the credential.
    path("api/v1/ingest/<slug:slug>", InboundWebhookView.as_view(), name="ingest"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("admin/", admin.site.urls),
    path("dashboard/", dashboard, name="dashboard"),
    path("dashboard/live/", dashboard_live, name="dashboard-live"),
    path("dashboard/demo/", dashboard_demo, name="dashboard-demo"),
    # Anything else under /api/ (a malformed id, a typo) is a JSON 404, in DEBUG too, and for any
    # method: API clients carry no CSRF token, so a POST must not meet Django's 403 page instead.
    re_path(r"^api/", csrf_exempt(json_not_found)),
]

handler400 = "config.api.exceptions.json_bad_request"
handler404 = "config.api.exceptions.json_not_found"
handler500 = "config.api.exceptions.json_server_error"
