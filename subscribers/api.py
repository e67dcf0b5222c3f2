"""The subscribers endpoints: thin views over subscribers.services."""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.filters import StrictBooleanFilter
from config.api.routing import UUID_PATTERN
from config.scopes import Scope
from subscribers.circuit import circuits_open, circuits_reset
from subscribers.matching import is_valid_pattern
from subscribers.models import Subscriber
from subscribers.services import subscriber_create, subscriber_update
from subscribers.urls_safety import UnsafeEndpoint, check_endpoint_url

MAX_PATTERNS = 100


class SubscriberSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=202),
        allow_empty=False,
        max_length=MAX_PATTERNS,
        help_text="Exact types ('invoice.paid'), prefixes ('order.*') or '*' for everything.",
    )
    rate_limit_per_second = serializers.FloatField(
        required=False, allow_null=True, min_value=0.001, max_value=100_000
    )

    class Meta:
        model = Subscriber
        fields = [
            "id",
            "name",
            "endpoint_url",
            "event_types",
            "rate_limit_per_second",
            "is_active",
            "deactivated_reason",
            "circuit_state",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "deactivated_reason",
            "circuit_state",
            "created_at",
            "updated_at",
        ]

    def validate_endpoint_url(self, value: str) -> str:
        try:
            check_endpoint_url(value, allow_private=settings.HERALD_ALLOW_PRIVATE_TARGETS)
        except UnsafeEndpoint as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate_event_types(self, value: list[str]) -> list[str]:
        invalid = [pattern for pattern in value if not is_valid_pattern(pattern)]
        if invalid:
            raise serializers.ValidationError(
                f"Invalid pattern(s) {invalid}: use exact types like 'invoice.paid', "
                "prefixes like 'order.*', or '*'."
            )
        return list(dict.fromkeys(value))


class SubscriberCreatedSerializer(SubscriberSerializer):
    """The only response that carries the signing secret: it is shown once, on creation."""

    class Meta(SubscriberSerializer.Meta):
        fields = [*SubscriberSerializer.Meta.fields, "secret"]
        read_only_fields = [*SubscriberSerializer.Meta.read_only_fields, "secret"]


class SubscriberFilter(django_filters.FilterSet):
    is_active = StrictBooleanFilter()

    class Meta:
        model = Subscriber
        fields = ["is_active"]


class OpenCircuitSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, default="opened by an operator")


class SubscriberViewSet(viewsets.ModelViewSet):
    write_scope = Scope.SUBSCRIBERS_MANAGE
    queryset = Subscriber.objects.all()
    serializer_class = SubscriberSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_PATTERN
    filterset_class = SubscriberFilter

    def create(self, request: Request) -> Response:
        serializer = SubscriberSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subscriber = subscriber_create(
            name=data["name"],
            endpoint_url=data["endpoint_url"],
            event_types=data["event_types"],
            rate_limit_per_second=data.get("rate_limit_per_second"),
        )
        return Response(
            SubscriberCreatedSerializer(subscriber).data, status=status.HTTP_201_CREATED
        )

    def partial_update(self, request: Request, pk=None) -> Response:
        subscriber = self.get_object()
        serializer = SubscriberSerializer(subscriber, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        subscriber = subscriber_update(subscriber=subscriber, changes=serializer.validated_data)
        return Response(SubscriberSerializer(subscriber).data)

    @extend_schema(request=OpenCircuitSerializer, responses={200: SubscriberSerializer})
    @action(detail=True, methods=["post"], url_path="open-circuit")
    def open_circuit(self, request: Request, pk=None) -> Response:
        """Hold every delivery to this subscriber, with no probes, until the circuit is reset."""
        subscriber = self.get_object()
        serializer = OpenCircuitSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        circuits_open(
            subscribers=Subscriber.objects.filter(pk=subscriber.pk),
            reason=serializer.validated_data["reason"],
            now=timezone.now(),
        )
        subscriber.refresh_from_db()
        return Response(SubscriberSerializer(subscriber).data)

    @extend_schema(request=None, responses={200: SubscriberSerializer})
    @action(detail=True, methods=["post"], url_path="reset-circuit")
    def reset_circuit(self, request: Request, pk=None) -> Response:
        """Close the circuit and send the held deliveries now, at the subscriber's rate limit."""
        subscriber = self.get_object()
        circuits_reset(subscribers=Subscriber.objects.filter(pk=subscriber.pk), now=timezone.now())
        subscriber.refresh_from_db()
        return Response(SubscriberSerializer(subscriber).data)
