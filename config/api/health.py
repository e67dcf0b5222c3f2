"""Liveness for load balancers and operators; needs no API key."""

from __future__ import annotations

from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response


@extend_schema(
    responses={
        200: inline_serializer(
            "Health", {"status": serializers.CharField(), "database": serializers.CharField()}
        ),
        503: inline_serializer(
            "Unhealthy", {"status": serializers.CharField(), "database": serializers.CharField()}
        ),
    }
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([])
def health(request: Request) -> Response:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return Response({"status": "unavailable", "database": f"error: {exc}"}, status=503)
    return Response({"status": "ok", "database": "ok"})
