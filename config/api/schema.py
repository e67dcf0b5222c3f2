"""What the OpenAPI schema says beyond what drf-spectacular reads from the views.

Every operation gets the error responses it can give, all in the one error shape with an
example; its description says which scope it needs; and the bearer API key is declared so
Swagger UI offers to send one.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import get_view_model
from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from config.api.permissions import HasScope, required_scopes


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "config.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `manage.py create_api_key NAME` or the admin.",
        }


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: `invalid`, `not_found`, ...")
    message = serializers.CharField(help_text="For people; names the first problem's field.")
    fields = serializers.DictField(
        help_text="Per field (dotted into nested objects, indexed into lists), its problems; "
        "empty unless the input was invalid."
    )


class ErrorSerializer(serializers.Serializer):
    """Every error the API answers has this shape."""

    error = ErrorDetailSerializer()


def _error(code: str, message: str, fields: dict | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


ERRORS: dict[str, tuple[str, dict[str, Any]]] = {
    "400": (
        "Invalid input; `message` names the first problem and `fields` lists them all.",
        _error(
            "invalid",
            "event_type: This field is required.",
            {"event_type": ["This field is required."]},
        ),
    ),
    "401": (
        "No API key, or a malformed, unknown or revoked one.",
        _error("not_authenticated", "Authentication credentials were not provided."),
    ),
    "403": (
        "The API key lacks the scope this operation needs.",
        _error(
            "insufficient_scope",
            "This API key lacks the scope for GET /api/v1/events: it needs 'read', and has "
            "'events:publish'.",
        ),
    ),
    "404": ("No such resource.", _error("not_found", "No Subscriber matches the given query.")),
    "409": (
        "The request conflicts with the resource's state.",
        _error(
            "conflict",
            "Idempotency-Key 'order-42-created' was already used for a different request "
            "(event 9b2e7c1a-5d3f-4e8b-a6c4-1f0d2e3b4a59).",
        ),
    ),
    "413": (
        "The request body is larger than the limit (HERALD_MAX_PAYLOAD_BYTES).",
        _error("payload_too_large", "Request body exceeds the limit of 262144 bytes."),
    ),
    "415": (
        "The request body is not JSON; send `Content-Type: application/json`.",
        _error("unsupported_media_type", 'Unsupported media type "text/plain" in request.'),
    ),
}


SUCCESS_DESCRIPTIONS = {
    "200": "OK.",
    "201": "Created.",
    "202": "Accepted: stored, and delivery happens in the workers.",
    "204": "Deleted.",
}


def error_response(
    code: str, description: str | None = None, *, error_code: str = "", message: str = ""
) -> OpenApiResponse:
    """An error response for the schema; `error_code` and `message` tailor its example."""
    default_description, example = ERRORS.get(code, ("", _error("error", "")))
    if error_code or message:
        detail = example["error"]
        example = _error(error_code or detail["code"], message or detail["message"])
    return OpenApiResponse(
        ErrorSerializer,
        description=description or default_description,
        examples=[OpenApiExample(f"{code} error", value=example)],
    )


class HeraldAutoSchema(AutoSchema):
    def _access_note(self) -> str:
        if not self.view.get_authenticators():
            return "No API key needed."
        if self._scoped():
            scopes = required_scopes(self.view, self.method)
            return f"Needs an API key with the scope {' or '.join(f'`{s}`' for s in scopes)}."
        return ""

    def get_tags(self) -> list[str]:
        # /api/v1/subscribers/{id}/health -> "subscribers": Swagger UI groups by resource.
        parts = self.path.removeprefix("/api/v1/").split("/")
        return [parts[0] or "api"]

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        # Here rather than in get_description, which @extend_schema(description=...) replaces.
        description = "\n\n".join(
            part for part in (operation.get("description", ""), self._access_note()) if part
        )
        if description:
            operation["description"] = description
        filters = getattr(getattr(self.view, "filterset_class", None), "base_filters", {})
        for parameter in operation.get("parameters", []):
            if parameter.get("description"):
                continue
            if parameter["name"] == "id":
                parameter["description"] = f"The {self._noun()}'s id (a UUID)."
            elif parameter["name"] in filters:
                # Filters whose schema is given by hand lose their help text on the way.
                parameter["description"] = filters[parameter["name"]].extra.get("help_text", "")
        for parameter in operation.get("parameters", []):
            schema = parameter.get("schema", {})
            if parameter["name"] in filters and schema.get("type") == "string":
                schema.setdefault(
                    "minLength", 1
                )  # an empty filter is a 400 (CreatedRangeFilterSet)
        responses = operation["responses"]
        for code, response in responses.items():
            if not response.get("description"):
                response["description"] = SUCCESS_DESCRIPTIONS.get(code, "")
        for code in self._error_codes(operation):
            if code not in responses:
                # Errors are JSON whatever the operation's own media type (GET /metrics).
                responses[code] = self._get_response_for_code(
                    error_response(code), code, media_types=["application/json"]
                )
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _noun(self) -> str:
        model = get_view_model(self.view, emit_warnings=False)
        return str(model._meta.verbose_name) if model is not None else "resource"

    def _scoped(self) -> bool:
        return any(isinstance(p, HasScope) for p in self.view.get_permissions())

    def _error_codes(self, operation: dict) -> list[str]:
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        codes = []
        if has_body or any(p["in"] == "query" for p in parameters):
            codes.append("400")
        if self.view.get_authenticators():
            codes.append("401")
        if self._scoped():
            codes.append("403")
        if any(p["in"] == "path" for p in parameters):
            codes.append("404")
        if has_body:
            codes.append("413")
            if self.view.parser_classes:
                codes.append("415")
        return codes


def forbid_unknown_request_fields(result: dict, generator, request, public) -> dict:
    """Request bodies take only the fields they document (config.api.fields.KnownFieldsOnly)."""
    for name, component in result.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") and component.get("type") == "object":
            component["additionalProperties"] = False
    return result
