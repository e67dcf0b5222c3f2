"""The subscribers endpoints: thin views over subscribers.services."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.exceptions import Conflict
from config.api.fields import (
    KnownFieldsOnly,
    StrictCharField,
    StrictFloatField,
    StrictModelSerializer,
)
from config.api.filters import CreatedRangeFilterSet, StrictBooleanFilter
from config.api.routing import UUID_PATTERN
from config.api.schema import error_response
from config.scopes import Scope
from subscribers.circuit import circuits_open, circuits_reset
from subscribers.matching import (
    EVENT_TYPE_MAX_LENGTH,
    PATTERN_REGEX,
    is_valid_pattern,
    schema_pattern,
)
from subscribers.models import Subscriber
from subscribers.services import (
    SubscriberBusy,
    subscriber_create,
    subscriber_delete,
    subscriber_update,
    subscribers_rotate_secret,
)
from subscribers.urls_safety import UnsafeEndpoint, check_endpoint_url

MAX_PATTERNS = 100

SUBSCRIBER_EXAMPLE = {
    "id": "3f1c2b9e-8d4a-4c1e-9b7a-2d6f0e5a1c33",
    "name": "billing",
    "endpoint_url": "https://billing.example.com/webhooks/herald",
    "event_types": ["order.*", "invoice.paid"],
    "rate_limit_per_second": 50.0,
    "is_active": True,
    "deactivated_reason": "",
    "circuit_state": "closed",
    "created_at": "2026-11-24T09:00:00Z",
    "updated_at": "2026-11-24T09:00:00Z",
}


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Subscribe to orders and paid invoices",
            value={
                "name": "billing",
                "endpoint_url": "https://billing.example.com/webhooks/herald",
                "event_types": ["order.*", "invoice.paid"],
                "rate_limit_per_second": 50,
            },
            request_only=True,
        ),
        OpenApiExample("A subscriber", value=SUBSCRIBER_EXAMPLE, response_only=True),
    ]
)
class SubscriberSerializer(StrictModelSerializer):
    event_types = serializers.ListField(
        child=StrictCharField(
            max_length=EVENT_TYPE_MAX_LENGTH,
            validators=[
                RegexValidator(
                    schema_pattern(PATTERN_REGEX),
                    "Use exact types like 'invoice.paid', prefixes like 'order.*', or '*'.",
                )
            ],
        ),
        allow_empty=False,
        min_length=1,
        max_length=MAX_PATTERNS,
        help_text="Exact types ('invoice.paid'), prefixes ('order.*') or '*' for everything.",
    )
    rate_limit_per_second = StrictFloatField(
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
            "previous_secret_expires_at",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {
            "endpoint_url": {
                "error_messages": {
                    "invalid": "Enter a valid http or https URL, e.g. https://example.com/webhooks."
                }
            }
        }
        read_only_fields = [
            "id",
            "deactivated_reason",
            "circuit_state",
            "previous_secret_expires_at",
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


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Created, with its signing secret",
            value={**SUBSCRIBER_EXAMPLE, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
            response_only=True,
            status_codes=["201"],
        ),
        OpenApiExample(
            "Rotated: the new signing secret",
            value={**SUBSCRIBER_EXAMPLE, "secret": "whsec_Qm9yZWFsaXNTdGlsbFNlY3JldDEyMzQ1Njc4"},
            response_only=True,
            status_codes=["200"],
        ),
    ]
)
class SubscriberCreatedSerializer(SubscriberSerializer):
    """The only responses that carry the signing secret: creation and rotation."""

    class Meta(SubscriberSerializer.Meta):
        fields = [*SubscriberSerializer.Meta.fields, "secret"]
        read_only_fields = [*SubscriberSerializer.Meta.read_only_fields, "secret"]


class SubscriberFilter(CreatedRangeFilterSet):
    is_active = StrictBooleanFilter(help_text="`true`: sending; `false`: paused or deactivated.")

    class Meta:
        model = Subscriber
        fields = ["is_active", "created_after", "created_before"]


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "Receiver maintenance", value={"reason": "receiver maintenance until 10:00 UTC"}
        )
    ]
)
class OpenCircuitSerializer(KnownFieldsOnly, serializers.Serializer):
    reason = StrictCharField(
        max_length=500,
        required=False,
        default="opened by an operator",
        help_text="Shown on the subscriber until the circuit is reset.",
    )


@extend_schema_view(
    list=extend_schema(summary="List subscribers"),
    retrieve=extend_schema(summary="Get a subscriber"),
    partial_update=extend_schema(
        summary="Change a subscriber",
        description="Change any of `name`, `endpoint_url`, `event_types`, "
        "`rate_limit_per_second`, `is_active`. `is_active: false` pauses it: events published "
        "meanwhile are not for it, and deliveries already made wait; `true` resumes it and "
        "sends them.",
        examples=[
            OpenApiExample("Pause", value={"is_active": False}, request_only=True),
            OpenApiExample(
                "Paused",
                value={
                    **SUBSCRIBER_EXAMPLE,
                    "is_active": False,
                    "deactivated_reason": "paused through the API",
                },
                response_only=True,
            ),
        ],
    ),
    destroy=extend_schema(
        summary="Delete a subscriber",
        description="Its deliveries and their history go too.",
        responses={
            204: None,
            409: error_response(
                "409",
                "Deliveries kept being created for it during the deletion: pause it, then delete.",
            ),
        },
    ),
)
class SubscriberViewSet(viewsets.ModelViewSet):
    write_scope = Scope.SUBSCRIBERS_MANAGE
    queryset = Subscriber.objects.all()
    serializer_class = SubscriberSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_PATTERN
    filterset_class = SubscriberFilter

    def perform_destroy(self, instance: Subscriber) -> None:
        try:
            subscriber_delete(subscriber=instance)
        except SubscriberBusy as exc:
            raise Conflict(str(exc)) from exc

    @extend_schema(
        summary="Create a subscriber",
        description="The response is the only one that shows the signing `secret`.",
        request=SubscriberSerializer,
        responses={201: SubscriberCreatedSerializer},
    )
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

    @extend_schema(
        summary="Open a subscriber's circuit",
        request=OpenCircuitSerializer,
        responses={200: SubscriberSerializer},
    )
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

    @extend_schema(
        summary="Reset a subscriber's circuit", request=None, responses={200: SubscriberSerializer}
    )
    @action(detail=True, methods=["post"], url_path="reset-circuit")
    def reset_circuit(self, request: Request, pk=None) -> Response:
        """Close the circuit and send the held deliveries now, at the subscriber's rate limit."""
        subscriber = self.get_object()
        circuits_reset(subscribers=Subscriber.objects.filter(pk=subscriber.pk), now=timezone.now())
        subscriber.refresh_from_db()
        return Response(SubscriberSerializer(subscriber).data)

    @extend_schema(
        summary="Rotate a subscriber's signing secret",
        request=None,
        responses={200: SubscriberCreatedSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk=None) -> Response:
        """Give the subscriber a new signing secret, returned here and nowhere else.

        Until `previous_secret_expires_at` (HERALD_SECRET_ROTATION_HOURS from now) every request
        carries two signatures, one per secret, so the receiver may switch at any time.
        """
        subscriber = self.get_object()
        subscribers_rotate_secret(
            subscribers=Subscriber.objects.filter(pk=subscriber.pk), now=timezone.now()
        )
        subscriber.refresh_from_db()
        return Response(SubscriberCreatedSerializer(subscriber).data)
