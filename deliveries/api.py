"""The deliveries endpoints (read-only): status of every event-subscriber pair and its attempts."""

from __future__ import annotations

import django_filters
from rest_framework import serializers, viewsets

from config.api.routing import UUID_PATTERN
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.selectors import deliveries_list, delivery_with_attempts


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


class DeliveryFilter(django_filters.FilterSet):
    event_id = django_filters.UUIDFilter()
    subscriber_id = django_filters.UUIDFilter()
    status = django_filters.ChoiceFilter(choices=Delivery.Status.choices)
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

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
