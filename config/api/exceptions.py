"""One error shape for the whole API: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, TooManyFieldsSent
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from config.dberrors import is_connection_lost, is_deadlock

logger = logging.getLogger(__name__)


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"
    default_detail = "The request conflicts with the current state of the resource."


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "Request body too large."


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"
    default_detail = (
        "The database is unavailable; retry shortly. A retry with the same Idempotency-Key "
        "cannot store an event twice."
    )


DATABASE_RETRY_AFTER_SECONDS = 5


class RaceLost(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "retry"
    default_detail = (
        "A concurrent request held what this one needed, and the database aborted this one; "
        "nothing of it was stored. Retry."
    )


class FieldConflict(exceptions.ValidationError):
    """A value that must be unique is taken: 409, with the field named like any invalid input."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


def validate(serializer) -> None:
    """`serializer.is_valid(raise_exception=True)`, except that when the only problem is a
    value already taken (a unique slug), the answer is 409 Conflict rather than 400."""
    if serializer.is_valid():
        return
    codes = serializer.errors and _codes(serializer.errors)
    if codes and codes <= {"unique"}:
        raise FieldConflict(serializer.errors)
    raise exceptions.ValidationError(serializer.errors)


def _codes(errors: Any) -> set[str]:
    if isinstance(errors, dict):
        return set().union(*(_codes(value) for value in errors.values()))
    if isinstance(errors, list):
        return set().union(*(_codes(value) for value in errors))
    return {getattr(errors, "code", "invalid")}


def error_body(*, code: str, message: str, fields: dict[str, Any] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    retry_after = None
    if is_connection_lost(exc):
        # An outage, not a bug: one line per request rather than a traceback, and an answer
        # that tells the client to retry.
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning("database unavailable: %s", first_line)
        exc, retry_after = DatabaseUnavailable(), DATABASE_RETRY_AFTER_SECONDS
    elif is_deadlock(exc):
        logger.warning("request aborted by the database to break a deadlock; answered 503")
        exc, retry_after = RaceLost(), 1
    elif isinstance(exc, Http404) or _vanished(exc, context.get("view")):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: let Django log it and answer 500
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
        response._has_been_logged = True  # logged above; Django would add an ERROR line
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        first = _first_message(fields)
        response.data = error_body(
            code="conflict" if isinstance(exc, FieldConflict) else "invalid",
            message=first or "Invalid input.",
            fields=fields,
        )
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = error_body(
            code=codes if isinstance(codes, str) else "error",
            message=str(getattr(exc, "detail", exc)),
        )
    return response


def _vanished(exc: Exception, view) -> bool:
    """The row the view found was deleted by another request before the view was done with it.

    Only the view's own model: any other DoesNotExist is a bug, and answers 500."""
    if not isinstance(exc, ObjectDoesNotExist):
        return False
    model = getattr(getattr(view, "queryset", None), "model", None)
    return model is not None and isinstance(exc, model.DoesNotExist)


def _first_message(fields: Any, path: str = "") -> str:
    """`payload: Expected a JSON object.` — the first problem, named by its field path."""
    if isinstance(fields, dict):
        for key, value in fields.items():
            if isinstance(key, int) or str(key).isdigit():
                name = f"{path}[{key}]"  # an item of a list, e.g. events[3]
            else:
                name = f"{path}.{key}" if path else str(key)
            if key == "non_field_errors":
                name = path
            found = _first_message(value, name)
            if found:
                return found
    elif isinstance(fields, list):
        for index, value in enumerate(fields):
            name = f"{path}[{index}]" if isinstance(value, (dict, list)) else path
            found = _first_message(value, name)
            if found:
                return found
    elif fields:
        return f"{path}: {fields}" if path else str(fields)
    return ""


API_PREFIX = "/api/"  # Django's error pages answer everything outside it


def json_not_found(request, exception=None):
    """JSON 404s for the API (e.g. a malformed id in the URL); Django's page for everything else."""
    if not request.path.startswith(API_PREFIX):
        return defaults.page_not_found(request, exception)
    return JsonResponse(
        error_body(code="not_found", message=f"No such resource: {request.path}"), status=404
    )


def json_bad_request(request, exception=None):
    """JSON 400s for requests Django itself refuses before any view runs, e.g. a query string
    of more than DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000) parameters; Django's page elsewhere."""
    if not request.path.startswith(API_PREFIX):
        return defaults.bad_request(request, exception)
    if isinstance(exception, TooManyFieldsSent):
        message = (
            f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} query parameters; "
            "send fewer (they repeat a filter?)."
        )
    else:
        # Other refusals (a forbidden Host, say) are security checks: say no more than Django.
        message = "Bad request."
    return JsonResponse(error_body(code="bad_request", message=message), status=400)


def json_server_error(request):
    if not request.path.startswith(API_PREFIX):
        return defaults.server_error(request)
    return JsonResponse(
        error_body(code="server_error", message="Internal server error; it has been logged."),
        status=500,
    )
