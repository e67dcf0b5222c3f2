"""The dead-letter endpoints: inspect, replay and resolve."""

from __future__ import annotations

import django_filters
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
from config.api.filters import CreatedRangeFilterSet, EventTypeFilter, StrictBooleanFilter
from config.api.routing import UUID_PATTERN
from config.api.schema import error_response
from config.scopes import Scope
from deadletters.models import DeadLetter
from deadletters.selectors import dead_letters_list
from deadletters.services import dead_letters_replay, dead_letters_resolve

DEAD_LETTER_EXAMPLE = {
    "id": "c5a1e0b2-3d4f-4a6b-8c9d-0e1f2a3b4c5d",
    "delivery_id": "6d0f6a4e-7c2b-4f3a-9a51-0b8e3c2d1f47",
    "event_id": "9b2e7c1a-5d3f-4e8b-a6c4-1f0d2e3b4a59",
    "event_type": "order.created",
    "subscriber_id": "3f1c2b9e-8d4a-4c1e-9b7a-2d6f0e5a1c33",
    "reason": "all 12 attempts failed; last: HTTP 503",
    "last_status_code": 503,
    "last_error": "HTTP 503",
    "attempt_count": 12,
    "created_at": "2026-11-25T21:14:03Z",
    "resolved": False,
    "resolved_at": None,
    "resolution": "",
}


@extend_schema_serializer(
    examples=[
        OpenApiExample("An unresolved dead letter", DEAD_LETTER_EXAMPLE, status_codes=["200"]),
        OpenApiExample(
            "Replayed",
            {
                **DEAD_LETTER_EXAMPLE,
                "resolved": True,
                "resolved_at": "2026-11-26T08:00:00Z",
                "resolution": "replayed",
            },
            status_codes=["202"],
        ),
    ]
)
class DeadLetterSerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="delivery.event_id", read_only=True)
    event_type = serializers.CharField(source="delivery.event.event_type", read_only=True)
    subscriber_id = serializers.UUIDField(source="delivery.subscriber_id", read_only=True)
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
        extra_kwargs = {
            "attempt_count": {"help_text": "Attempts the delivery had made when it died."},
            "last_error": {"help_text": "Its last error when it died; a replay leaves it."},
        }


class DeadLetterFilter(CreatedRangeFilterSet):
    subscriber_id = django_filters.UUIDFilter(
        field_name="delivery__subscriber_id", help_text="Only the dead letters of this subscriber."
    )
    event_type = EventTypeFilter(field_name="delivery__event__event_type")
    resolved = StrictBooleanFilter(
        field_name="resolved_at",
        lookup_expr="isnull",
        exclude=True,
        help_text="`false`: waiting for an operator; `true`: replayed or resolved.",
    )

    class Meta:
        model = DeadLetter
        fields = ["subscriber_id", "event_type", "resolved", "created_after", "created_before"]


@extend_schema_view(
    list=extend_schema(summary="List dead letters"),
    retrieve=extend_schema(summary="Get a dead letter"),
)
class DeadLetterViewSet(viewsets.ReadOnlyModelViewSet):
    write_scope = Scope.DEADLETTERS_MANAGE
    queryset = dead_letters_list()
    serializer_class = DeadLetterSerializer
    filterset_class = DeadLetterFilter
    lookup_value_regex = UUID_PATTERN

    @extend_schema(
        summary="Replay a dead letter",
        request=None,
        responses={
            202: DeadLetterSerializer,
            409: error_response(
                "409",
                "The dead letter was already replayed or resolved.",
                message="Dead letter c5a1e0b2-3d4f-4a6b-8c9d-0e1f2a3b4c5d is already resolved "
                "(replayed).",
            ),
        },
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk=None) -> Response:
        """Send the delivery again with a fresh set of attempts and the same webhook-id."""
        return self._act(dead_letters_replay, accepted=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Resolve a dead letter without sending",
        request=None,
        responses={
            200: DeadLetterSerializer,
            409: error_response(
                "409",
                "The dead letter was already replayed or resolved.",
                message="Dead letter c5a1e0b2-3d4f-4a6b-8c9d-0e1f2a3b4c5d is already resolved "
                "(replayed).",
            ),
        },
    )
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
