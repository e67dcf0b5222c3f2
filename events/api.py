"""The events endpoints: thin views over events.services and events.selectors."""

from __future__ import annotations

import json

import django_filters
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.exceptions import Conflict
from config.api.filters import CreatedRangeFilterSet
from config.api.parsers import storable_in_jsonb
from config.api.routing import UUID_PATTERN
from config.scopes import Scope
from deliveries.models import Delivery
from events.models import Event
from events.selectors import event_with_deliveries, events_list
from events.services import EventInput, IdempotencyConflict, event_create, events_create
from subscribers.matching import EVENT_TYPE_MAX_LENGTH, is_valid_event_type

IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_KEY_MAX_LENGTH = 255


class EventTypeField(serializers.CharField):
    default_error_messages = {
        "invalid_event_type": (
            "Must be lowercase words (letters, digits, '_' or '-') joined by dots, "
            "e.g. 'order.created'."
        ),
    }

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", EVENT_TYPE_MAX_LENGTH)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not is_valid_event_type(value):
            self.fail("invalid_event_type")
        return value


class JSONObjectField(serializers.JSONField):
    # Doubled braces: DRF formats error messages with str.format.
    default_error_messages = {
        "not_object": 'Must be a JSON object, e.g. {{"order_id": 42}}.',
        "unstorable": "Strings must not contain NUL (\\u0000) or unpaired surrogate characters.",
    }

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            self.fail("not_object")
        if not storable_in_jsonb(data):
            self.fail("unstorable")
        return super().to_internal_value(data)


class EventInputSerializer(serializers.Serializer):
    event_type = EventTypeField()
    payload = JSONObjectField()


class BatchEventInputSerializer(EventInputSerializer):
    idempotency_key = serializers.CharField(
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        required=False,
        help_text="Per event, like the Idempotency-Key header of a single event.",
    )

    def validate_idempotency_key(self, value: str) -> str:
        if "\x00" in value:
            raise serializers.ValidationError("Must not contain NUL.")
        return value

    def validate_payload(self, value: dict) -> dict:
        # The request as a whole has its own (larger) limit; each event keeps the single one.
        size = len(json.dumps(value, separators=(",", ":")).encode())
        if size > settings.HERALD_MAX_PAYLOAD_BYTES:
            raise serializers.ValidationError(
                f"Payload is {size} bytes; the limit is {settings.HERALD_MAX_PAYLOAD_BYTES}."
            )
        return value


class BatchInputSerializer(serializers.Serializer):
    events = BatchEventInputSerializer(many=True, allow_empty=False)

    def validate_events(self, value: list) -> list:
        if len(value) > settings.HERALD_MAX_BATCH_EVENTS:
            raise serializers.ValidationError(
                f"At most {settings.HERALD_MAX_BATCH_EVENTS} events per batch, not {len(value)}."
            )
        return value


class EventSerializer(serializers.ModelSerializer):
    delivery_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Event
        fields = ["id", "event_type", "payload", "created_at", "delivery_count"]


class BatchResultSerializer(serializers.Serializer):
    events = EventSerializer(many=True, help_text="In the order they were sent.")


class EventDeliverySerializer(serializers.ModelSerializer):
    subscriber_name = serializers.CharField(source="subscriber.name", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "subscriber_id",
            "subscriber_name",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_status_code",
            "delivered_at",
        ]


class EventDetailSerializer(EventSerializer):
    deliveries = EventDeliverySerializer(many=True, read_only=True)
    source = serializers.SlugRelatedField(
        slug_field="slug",
        read_only=True,
        help_text="The inbound source that sent it (null for events posted through the API).",
    )

    class Meta(EventSerializer.Meta):
        fields = [*EventSerializer.Meta.fields, "source", "source_delivery_id", "deliveries"]


class EventFilter(CreatedRangeFilterSet):
    event_type = django_filters.CharFilter()

    class Meta:
        model = Event
        fields = ["event_type", "created_after", "created_before"]


class EventViewSet(viewsets.ReadOnlyModelViewSet):
    write_scope = Scope.EVENTS_PUBLISH
    filterset_class = EventFilter
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        return event_with_deliveries() if self.action == "retrieve" else events_list()

    def get_serializer_class(self):
        return EventDetailSerializer if self.action == "retrieve" else EventSerializer

    @extend_schema(
        request=EventInputSerializer,
        responses={202: EventSerializer, 200: EventSerializer},
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                location=OpenApiParameter.HEADER,
                required=False,
                description="Retry-safe creation: the same key and body return the original "
                "event (200); the same key with a different body is a 409.",
            )
        ],
    )
    def create(self, request: Request) -> Response:
        idempotency_key = request.headers.get(IDEMPOTENCY_HEADER, "").strip() or None
        if idempotency_key and len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise serializers.ValidationError(
                {IDEMPOTENCY_HEADER: [f"At most {IDEMPOTENCY_KEY_MAX_LENGTH} characters."]}
            )
        if idempotency_key and "\x00" in idempotency_key:
            # PostgreSQL refuses NUL in text; looking the key up would be a 500.
            raise serializers.ValidationError({IDEMPOTENCY_HEADER: ["Must not contain NUL."]})
        serializer = EventInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            ingested = event_create(
                event_type=serializer.validated_data["event_type"],
                payload=serializer.validated_data["payload"],
                api_key=request.auth,
                idempotency_key=idempotency_key,
            )
        except IdempotencyConflict as exc:
            raise Conflict(str(exc)) from exc
        ingested.event.delivery_count = ingested.delivery_count
        return Response(
            EventSerializer(ingested.event).data,
            status=status.HTTP_202_ACCEPTED if ingested.created else status.HTTP_200_OK,
        )

    @property
    def max_body_bytes(self) -> int:
        if self.action == "batch":
            return settings.HERALD_MAX_BATCH_BYTES
        return settings.HERALD_MAX_PAYLOAD_BYTES

    @extend_schema(
        request=BatchInputSerializer,
        responses={202: BatchResultSerializer, 200: BatchResultSerializer},
    )
    @action(detail=False, methods=["post"])
    def batch(self, request: Request) -> Response:
        """Up to HERALD_MAX_BATCH_EVENTS events in one transaction: all are stored or none.

        Each event is validated (errors name its index); each may carry an idempotency_key. 202
        if any event was new, 200 if every one repeated an earlier request.
        """
        serializer = BatchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        inputs = [
            EventInput(
                event_type=item["event_type"],
                payload=item["payload"],
                idempotency_key=item.get("idempotency_key", ""),
            )
            for item in serializer.validated_data["events"]
        ]
        try:
            ingested = events_create(inputs=inputs, api_key=request.auth)
        except IdempotencyConflict as exc:
            raise Conflict(str(exc)) from exc
        for item in ingested:
            item.event.delivery_count = item.delivery_count
        return Response(
            {"events": EventSerializer([item.event for item in ingested], many=True).data},
            status=(
                status.HTTP_202_ACCEPTED
                if any(item.created for item in ingested)
                else status.HTTP_200_OK
            ),
        )
