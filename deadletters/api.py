"""The dead-letter endpoints: inspect, replay and resolve."""

from __future__ import annotations

import django_filters
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.exceptions import Conflict
from config.api.filters import CreatedRangeFilterSet, StrictBooleanFilter
from config.api.routing import UUID_PATTERN
from config.scopes import Scope
from deadletters.models import DeadLetter
from deadletters.selectors import dead_letters_list
from deadletters.services import dead_letters_replay, dead_letters_resolve


class DeadLetterSerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="delivery.event_id", read_only=True)
    event_type = serializers.CharField(source="delivery.event.event_type", read_only=True)
    subscriber_id = serializers.UUIDField(source="delivery.subscriber_id", read_only=True)
    attempt_count = serializers.IntegerField(source="delivery.attempt_count", read_only=True)
    last_error = serializers.CharField(source="delivery.last_error", read_only=True)
    resolved = serializers.BooleanField(source="is_resolved", read_only=True)

    class Meta:
        model = DeadLetter
        fields = [
            "id",
            "delivery_id",
            "event_id",
            "event_type",
            "subscriber_id",
            "reason",
            "last_status_code",
            "last_error",
            "attempt_count",
            "created_at",
            "resolved",
            "resolved_at",
            "resolution",
        ]


class DeadLetterFilter(CreatedRangeFilterSet):
    subscriber_id = django_filters.UUIDFilter(field_name="delivery__subscriber_id")
    resolved = StrictBooleanFilter(field_name="resolved_at", lookup_expr="isnull", exclude=True)

    class Meta:
        model = DeadLetter
        fields = ["subscriber_id", "resolved", "created_after", "created_before"]


class DeadLetterViewSet(viewsets.ReadOnlyModelViewSet):
    write_scope = Scope.DEADLETTERS_MANAGE
    queryset = dead_letters_list()
    serializer_class = DeadLetterSerializer
    filterset_class = DeadLetterFilter
    lookup_value_regex = UUID_PATTERN

    @extend_schema(request=None, responses={202: DeadLetterSerializer})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk=None) -> Response:
        """Send the delivery again with a fresh set of attempts and the same webhook-id."""
        return self._act(dead_letters_replay, accepted=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={200: DeadLetterSerializer})
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk=None) -> Response:
        """Dismiss the dead letter without sending anything."""
        return self._act(dead_letters_resolve, accepted=status.HTTP_200_OK)

    def _act(self, service, *, accepted: int) -> Response:
        letter = self.get_object()
        outcome = service(dead_letters=DeadLetter.objects.filter(pk=letter.pk), now=timezone.now())
        if not outcome.done:
            raise Conflict(f"Dead letter {letter.pk} is already resolved ({letter.resolution}).")
        letter.refresh_from_db()
        return Response(DeadLetterSerializer(letter).data, status=accepted)
