"""Inbound webhooks over HTTP: POST /ingest/<slug> for senders, and /sources to manage them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db.models import ProtectedError
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    extend_schema_view,
)
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.exceptions import Conflict, FieldConflict, validate
from config.api.fields import (
    KnownFieldsOnly,
    StrictBooleanField,
    StrictCharField,
    StrictModelSerializer,
)
from config.api.filters import CreatedRangeFilterSet, StrictBooleanFilter, StrictChoiceFilter
from config.api.parsers import parse_json, read_bounded
from config.api.routing import UUID_PATTERN
from config.api.schema import error_response
from config.scopes import Scope
from events.inbound import InboundInvalid, inbound_ingest, inbound_verify
from events.models import SOURCE_SECRET_MAX_LENGTH, SOURCE_SECRET_MIN_LENGTH, Event, Source
from events.selectors import active_source
from events.sources import (
    InvalidSecret,
    SlugTaken,
    source_create,
    source_rotate_secret,
    source_secret_for,
    source_update,
)
from events.verification import SignatureError

# A validator, not a check in validate(): the schema then shows the pattern to clients.
FIELD_PATH = RegexValidator(
    # Whitespace spelled out: Python's \s and JavaScript's (the schema's) differ.
    r"^[^. \t\n\r\f\v]+(\.[^. \t\n\r\f\v]+)*\Z",
    "A body field name, with dots to reach into objects, e.g. 'event.name'.",
)


class InvalidSignature(exceptions.APIException):
    # Not DRF's AuthenticationFailed: with no authentication class DRF would turn that into 403.
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_signature"
    default_detail = "The request is not signed by this source."


INBOUND_ACCEPTED_EXAMPLE = OpenApiExample(
    "Accepted",
    {
        "id": "0e7d1c2b-4a5f-4e6d-9c8b-7a6f5e4d3c2b",
        "event_type": "github.issues.opened",
        "created_at": "2026-11-24T09:00:00Z",
        "delivery_count": 1,
    },
    response_only=True,
    status_codes=["200", "202"],
)


class InboundAcceptedSerializer(serializers.ModelSerializer):
    delivery_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Event
        fields = ["id", "event_type", "created_at", "delivery_count"]


class InboundWebhookView(APIView):
    """A third party's webhook: verified over the raw bytes, stored, answered at once.

    No API key: the signature is the credential, and CSRF does not apply (APIView exempts it).
    No parser either: the body must be verified before anything reads it as JSON.
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = []

    @extend_schema(
        summary="Receive a third party's webhook",
        description=(
            "Point the provider at this URL. The request is verified with the source's scheme "
            "(`github`: X-Hub-Signature-256; `stripe`: Stripe-Signature; `standard`: "
            "webhook-id/webhook-timestamp/webhook-signature; `hmac`: X-Signature and "
            "X-Timestamp), stored as the event `<slug>.<provider type>` and fanned out to "
            "matching subscribers. The sender's delivery id makes a redelivery return the "
            "original event with 200."
        ),
        parameters=[
            OpenApiParameter(
                "slug",
                location=OpenApiParameter.PATH,
                description="The source's slug, as in its `ingest_url`.",
            )
        ],
        request={"application/json": OpenApiTypes.OBJECT},
        examples=[
            OpenApiExample(
                "A GitHub issue opened",
                {"action": "opened", "issue": {"number": 1347, "title": "Found a bug"}},
                request_only=True,
            ),
            INBOUND_ACCEPTED_EXAMPLE,
        ],
        responses={
            202: OpenApiResponse(
                InboundAcceptedSerializer, description="Verified, stored and fanned out."
            ),
            200: OpenApiResponse(
                InboundAcceptedSerializer, description="A redelivery: the original event."
            ),
            400: error_response(
                "400",
                "Not JSON, or no event type.",
                message="body: Must be a JSON object.",
            ),
            401: error_response(
                "401",
                "Missing or bad signature.",
                error_code="invalid_signature",
                message="X-Hub-Signature-256 does not match the body.",
            ),
            404: error_response(
                "404", "No active source with this slug.", message="No active source 'gh'."
            ),
            413: error_response("413", "Over HERALD_MAX_PAYLOAD_BYTES."),
        },
        auth=[],
    )
    def post(self, request: Request, slug: str) -> Response:
        source = active_source(slug=slug)
        if source is None:
            raise exceptions.NotFound(f"No active source {slug!r}.")
        body = read_bounded(
            request.stream,
            declared=request.META.get("CONTENT_LENGTH"),
            limit=settings.HERALD_MAX_PAYLOAD_BYTES,
        )
        try:
            inbound_verify(source=source, body=body, headers=request.headers, now=timezone.now())
        except SignatureError as exc:
            raise InvalidSignature(exc.reason) from exc
        payload = parse_json(body)
        try:
            ingested = inbound_ingest(source=source, payload=payload, headers=request.headers)
        except InboundInvalid as exc:
            raise serializers.ValidationError({exc.field: [exc.message]}) from exc
        ingested.event.delivery_count = ingested.delivery_count
        return Response(
            InboundAcceptedSerializer(ingested.event).data,
            status=status.HTTP_202_ACCEPTED if ingested.created else status.HTTP_200_OK,
        )


SECRET_TOO_SHORT = "At least {min_length} characters; leave it out to have one generated."


SOURCE_EXAMPLE = {
    "id": "5b4a3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d",
    "slug": "github",
    "name": "GitHub org",
    "scheme": "github",
    "is_active": True,
    "event_type_field": "type",
    "ingest_url": "https://herald.example.com/api/v1/ingest/github",
    "previous_secret_expires_at": None,
    "rejected_count": 0,
    "last_rejected_at": None,
    "last_rejection_reason": "",
    "created_at": "2026-11-24T09:00:00Z",
    "updated_at": "2026-11-24T09:00:00Z",
}


@extend_schema_serializer(
    examples=[
        OpenApiExample("A source", SOURCE_EXAMPLE, response_only=True),
        OpenApiExample("Deactivate", {"is_active": False}, request_only=True),
    ]
)
class SourceSerializer(StrictModelSerializer):
    ingest_url = serializers.SerializerMethodField(
        help_text="Give this URL to the provider as the webhook endpoint."
    )

    class Meta:
        model = Source
        fields = [
            "id",
            "slug",
            "name",
            "scheme",
            "is_active",
            "event_type_field",
            "ingest_url",
            "previous_secret_expires_at",
            "rejected_count",
            "last_rejected_at",
            "last_rejection_reason",
            "created_at",
            "updated_at",
        ]
        extra_kwargs = {"event_type_field": {"validators": [FIELD_PATH]}}
        # The scheme is chosen once, on creation (SourceWithSecretSerializer).
        read_only_fields = [
            "id",
            "scheme",
            "previous_secret_expires_at",
            "rejected_count",
            "last_rejected_at",
            "last_rejection_reason",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(OpenApiTypes.URI)
    def get_ingest_url(self, source: Source) -> str:
        path = reverse("ingest", args=[source.slug])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request is not None else path

    field_messages = {
        "secret": "Cannot be changed here: POST /sources/{id}/rotate-secret.",
        "scheme": "Cannot be changed: the secret and the senders belong to the scheme. "
        "Create a new source instead.",
    }


@extend_schema_serializer(
    examples=[
        OpenApiExample(
            "A GitHub source with a generated secret",
            {"slug": "github", "name": "GitHub org", "scheme": "github"},
            request_only=True,
        ),
        OpenApiExample(
            "Created, with its secret",
            {**SOURCE_EXAMPLE, "secret": "3q2mT0x9b1Yk8rVf6JcW4nZp7HsLdA5e"},
            response_only=True,
        ),
    ]
)
class SourceWithSecretSerializer(SourceSerializer):
    """Creation's input and output: the only response, with rotation's, that shows the secret."""

    secret = StrictCharField(
        required=False,
        min_length=SOURCE_SECRET_MIN_LENGTH,
        max_length=SOURCE_SECRET_MAX_LENGTH,
        error_messages={"min_length": SECRET_TOO_SHORT},
        help_text="The provider's signing secret, to paste one (Stripe's whsec_..., required "
        "for Stripe); generated when absent. Returned only here.",
    )

    class Meta(SourceSerializer.Meta):
        fields = [*SourceSerializer.Meta.fields, "secret"]
        read_only_fields = [f for f in SourceSerializer.Meta.read_only_fields if f != "scheme"]
        extra_kwargs = {
            **SourceSerializer.Meta.extra_kwargs,
            "scheme": {
                "required": True,
                "error_messages": {
                    "invalid_choice": '"{input}" is not a scheme Herald verifies: use one of '
                    + ", ".join(Source.Scheme.values)
                    + "."
                },
            },
        }

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        try:
            attrs["secret"] = source_secret_for(scheme=attrs["scheme"], secret=attrs.get("secret"))
        except InvalidSecret as exc:
            raise serializers.ValidationError({"secret": [str(exc)]}) from exc
        return attrs


@extend_schema_serializer(
    examples=[OpenApiExample("Generate a new secret, keep the old for a while", {})]
)
class RotateSecretSerializer(KnownFieldsOnly, serializers.Serializer):
    secret = StrictCharField(
        required=False,
        min_length=SOURCE_SECRET_MIN_LENGTH,
        max_length=SOURCE_SECRET_MAX_LENGTH,
        error_messages={"min_length": SECRET_TOO_SHORT},
        help_text="The new secret; generated when absent (required for Stripe).",
    )
    keep_previous = StrictBooleanField(
        default=True,
        help_text="Keep accepting the old secret for HERALD_SOURCE_ROTATION_HOURS while the "
        "sender switches (true), or stop at once because it leaked (false).",
    )


class SourceFilter(CreatedRangeFilterSet):
    is_active = StrictBooleanFilter(help_text="`false`: deactivated, its URL answers 404.")
    scheme = StrictChoiceFilter(
        choices=Source.Scheme.choices, help_text="Only sources of this scheme."
    )

    class Meta:
        model = Source
        fields = ["is_active", "scheme", "created_after", "created_before"]


# The words of the slug field's own unique validator, for a slug taken after it ran.
SLUG_TAKEN_MESSAGE = "source with this slug already exists."
SLUG_TAKEN = error_response(
    "409", "Another source has this slug.", message=f"slug: {SLUG_TAKEN_MESSAGE}"
)


@extend_schema_view(
    list=extend_schema(summary="List inbound sources"),
    retrieve=extend_schema(summary="Get an inbound source"),
    partial_update=extend_schema(
        summary="Change an inbound source",
        description="Change `slug`, `name`, `event_type_field` or `is_active`; the secret changes "
        "only through rotate-secret, the scheme never.",
        responses={200: SourceSerializer, 409: SLUG_TAKEN},
    ),
)
class SourceViewSet(viewsets.ModelViewSet):
    write_scope = Scope.SOURCES_MANAGE
    queryset = Source.objects.all()
    serializer_class = SourceSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = UUID_PATTERN
    filterset_class = SourceFilter

    @extend_schema(
        summary="Create an inbound source",
        description="The response is the only one, with rotate-secret's, that shows the `secret`.",
        request=SourceWithSecretSerializer,
        responses={201: SourceWithSecretSerializer, 409: SLUG_TAKEN},
    )
    def create(self, request: Request) -> Response:
        serializer = SourceWithSecretSerializer(data=request.data)
        validate(serializer)
        try:
            source = source_create(**serializer.validated_data)
        except SlugTaken as exc:
            raise FieldConflict({"slug": [SLUG_TAKEN_MESSAGE]}) from exc
        return Response(
            SourceWithSecretSerializer(source, context=self.get_serializer_context()).data,
            status=status.HTTP_201_CREATED,
        )

    def partial_update(self, request: Request, pk=None) -> Response:
        source = self.get_object()
        serializer = SourceSerializer(source, data=request.data, partial=True)
        validate(serializer)
        changes = {k: v for k, v in serializer.validated_data.items() if k != "scheme"}
        try:
            source = source_update(source=source, changes=changes)
        except SlugTaken as exc:
            raise FieldConflict({"slug": [SLUG_TAKEN_MESSAGE]}) from exc
        return Response(SourceSerializer(source, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Delete an inbound source",
        responses={
            204: None,
            409: error_response(
                "409",
                "The source has events: deactivate it instead.",
                message="This source has events, and their delivery ids guard against replays: "
                'deactivate it instead (PATCH {"is_active": false}).',
            ),
        },
    )
    def destroy(self, request: Request, pk=None) -> Response:
        source = self.get_object()
        try:
            source.delete()
        except ProtectedError as exc:
            raise Conflict(
                "This source has events, and their delivery ids guard against replays: "
                'deactivate it instead (PATCH {"is_active": false}).'
            ) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Rotate an inbound source's secret",
        request=RotateSecretSerializer,
        responses={200: SourceWithSecretSerializer},
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk=None) -> Response:
        """A new secret (yours, or generated), shown once; the old one lasts the grace period."""
        source = self.get_object()
        serializer = RotateSecretSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            source = source_rotate_secret(
                source=source, now=timezone.now(), **serializer.validated_data
            )
        except InvalidSecret as exc:
            raise serializers.ValidationError({"secret": [str(exc)]}) from exc
        return Response(
            SourceWithSecretSerializer(source, context=self.get_serializer_context()).data
        )
