"""The deliveries endpoints (read-only): status of every event-subscriber pair and its attempts."""

from __future__ import annotations

import django_filters
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.filters import CreatedRangeFilterSet
from config.api.routing import UUID_PATTERN
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.selectors import deliveries_list, delivery_with_attempts, subscriber_health
from subscribers.models import Subscriber


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "event_id",
            "subscriber_id",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "delivered_at",
            "created_at",
        ]


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


class DeliveryDetailSerializer(DeliverySerializer):
    attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "attempts"]


class DeliveryFilter(CreatedRangeFilterSet):
    event_id = django_filters.UUIDFilter()
    subscriber_id = django_filters.UUIDFilter()
    status = django_filters.ChoiceFilter(choices=Delivery.Status.choices)

    class Meta:
        model = Delivery
        fields = ["event_id", "subscriber_id", "status", "created_after", "created_before"]


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    filterset_class = DeliveryFilter
    lookup_value_regex = UUID_PATTERN

    def get_queryset(self):
        return delivery_with_attempts() if self.action == "retrieve" else deliveries_list()

    def get_serializer_class(self):
        return DeliveryDetailSerializer if self.action == "retrieve" else DeliverySerializer


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

    @extend_schema(responses={200: SubscriberHealthSerializer})
    def get(self, request: Request, pk) -> Response:
        subscriber = get_object_or_404(Subscriber, pk=pk)
        health = subscriber_health(subscriber=subscriber, now=timezone.now())
        return Response(SubscriberHealthSerializer(health).data)
