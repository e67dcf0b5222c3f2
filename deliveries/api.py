"""The deliveries endpoints (read-only): status of every event-subscriber pair and its attempts."""

from __future__ import annotations

import django_filters
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.filters import CreatedRangeFilterSet, EventTypeFilter, StrictChoiceFilter
from config.api.routing import UUID_PATTERN
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.selectors import deliveries_list, delivery_with_attempts, subscriber_health
from subscribers.models import Subscriber

DELIVERY_EXAMPLE = {
    "id": "6d0f6a4e-7c2b-4f3a-9a51-0b8e3c2d1f47",
    "event_id": "9b2e7c1a-5d3f-4e8b-a6c4-1f0d2e3b4a59",
    "subscriber_id": "3f1c2b9e-8d4a-4c1e-9b7a-2d6f0e5a1c33",
    "status": "retrying",
    "held": False,
    "attempt_count": 2,
    "next_attempt_at": "2026-11-24T09:02:35Z",
    "last_status_code": 503,
    "last_error": "HTTP 503",
    "delivered_at": None,
    "created_at": "2026-11-24T09:00:00Z",
}
ATTEMPT_EXAMPLE = {
    "number": 1,
    "started_at": "2026-11-24T09:00:00Z",
    "finished_at": "2026-11-24T09:00:00.184Z",
    "duration_ms": 184,
    "status_code": 503,
    "response_excerpt": "upstream unavailable",
    "error": "",
}


@extend_schema_serializer(examples=[OpenApiExample("A delivery being retried", DELIVERY_EXAMPLE)])
class DeliverySerializer(serializers.ModelSerializer):
    held = serializers.BooleanField(
        read_only=True,
        help_text="Waiting for its subscriber (paused, or its circuit open): sent once the "
        "subscriber is resumed or the circuit closes, whatever `next_attempt_at` says.",
    )

    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "subscriber_id",
            "status",
            "held",
            "attempt_count",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
        ]
        extra_kwargs = {
            "attempt_count": {
                "help_text": "Attempts in the current set: a replay or retry starts a new set "
                "at 0. The delivery's `attempts` list every attempt ever made."
            }
        }


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "number",
            "started_at",
            "finished_at",
            "duration_ms",
            "status_code",
            "response_excerpt",
            "error",
        ]


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A delivery and its attempts",
            {**DELIVERY_EXAMPLE, "attempts": [ATTEMPT_EXAMPLE, {**ATTEMPT_EXAMPLE, "number": 2}]},
        )
    ]
)
class DeliveryDetailSerializer(DeliverySerializer):
    attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "attempts"]


class DeliveryFilter(CreatedRangeFilterSet):
    event_id = django_filters.UUIDFilter(help_text="Only the deliveries of this event.")
    subscriber_id = django_filters.UUIDFilter(help_text="Only the deliveries to this subscriber.")
    event_type = EventTypeFilter(field_name="event__event_type")
    status = StrictChoiceFilter(
        choices=Delivery.Status.choices, help_text="Only deliveries in this status."
    )

    class Meta:
        model = Delivery
        fields = [
            "event_id",
            "subscriber_id",
            "event_type",
            "status",
            "created_after",
            "created_before",
        ]


@extend_schema_view(
    list=extend_schema(summary="List deliveries"),
    retrieve=extend_schema(summary="Get a delivery with its attempts"),
)
class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    filterset_class = DeliveryFilter
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        return delivery_with_attempts() if self.action == "retrieve" else deliveries_list()

    def get_serializer_class(self):
        return DeliveryDetailSerializer if self.action == "retrieve" else DeliverySerializer


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "An open circuit",
            {
                "subscriber_id": "3f1c2b9e-8d4a-4c1e-9b7a-2d6f0e5a1c33",
                "is_active": True,
                "circuit_state": "open",
                "circuit_opened_manually": False,
                "circuit_reason": "HTTP 503",
                "consecutive_failures": 5,
                "opened_at": "2026-11-24T09:00:00Z",
                "next_probe_at": "2026-11-24T09:00:30Z",
                "backoff_until": None,
                "held_deliveries": 120,
                "recent_attempts": 37,
                "recent_success_rate": 0.8649,
            },
        )
    ]
)
class SubscriberHealthSerializer(serializers.Serializer):
    subscriber_id = serializers.UUIDField()
    is_active = serializers.BooleanField()
    circuit_state = serializers.ChoiceField(choices=Subscriber.Circuit.choices)
    circuit_opened_manually = serializers.BooleanField()
    circuit_reason = serializers.CharField()
    consecutive_failures = serializers.IntegerField()
    opened_at = serializers.DateTimeField(allow_null=True)
    next_probe_at = serializers.DateTimeField(allow_null=True)
    backoff_until = serializers.DateTimeField(allow_null=True)
    held_deliveries = serializers.IntegerField(help_text="Due deliveries waiting for the circuit.")
    recent_attempts = serializers.IntegerField(help_text="Attempts in the last hour (at most 500).")
    recent_success_rate = serializers.FloatField(allow_null=True)


class SubscriberHealthView(APIView):
    """A receiver's protection state: circuit, back-off, held deliveries, recent success rate."""

    @extend_schema(summary="A subscriber's health", responses={200: SubscriberHealthSerializer})
    def get(self, request: Request, pk) -> Response:
        subscriber = get_object_or_404(Subscriber, pk=pk)
        health = subscriber_health(subscriber=subscriber, now=timezone.now())
        return Response(SubscriberHealthSerializer(health).data)
