from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from config.api.exceptions import PayloadTooLarge

# A small body can nest thousands deep; past Python's recursion limit, encoding it again (for the
# database, the fingerprint, the response) would crash with a 500. Ruby's parser stops at 100 too.
MAX_DEPTH = 100


class BoundedJSONParser(BaseParser):
    """JSON bodies only, refused with 413 past their limit before they are parsed.

    The limit is HERALD_MAX_PAYLOAD_BYTES, or the view's own `max_body_bytes` (batch ingest).
    Not a JSONParser subclass on purpose: DRF reads a JSONParser's body through Django's
    `request.body`, which refuses anything over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) with an HTML
    400 of its own, so an 8 MB batch could never arrive and a large declared length got no 413.
    Given the stream itself, this parser enforces the limits it documents.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        view = (parser_context or {}).get("view")
        limit = getattr(view, "max_body_bytes", None) or settings.HERALD_MAX_PAYLOAD_BYTES
        request = (parser_context or {}).get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        return parse_json(read_bounded(stream, declared=declared, limit=limit))


def read_bounded(stream, *, declared: str | None, limit: int) -> bytes:
    """The raw body, or PayloadTooLarge: never reads more than one byte past `limit`.

    `declared` is the Content-Length header: a body announced as too large is refused unread.
    """
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body is {declared} bytes; the limit is {limit} bytes.")
    raw = stream.read(limit + 1) if stream is not None else b""
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body exceeds the limit of {limit} bytes.")
    return raw


def parse_json(raw: bytes) -> Any:
    """Strict JSON (no NaN, bounded depth) from UTF-8 bytes, or ParseError (a 400)."""
    if not raw:
        raise ParseError("Request body is empty; expected a JSON object.")
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"Request body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ParseError(f"Request body nests deeper than {MAX_DEPTH} levels.") from exc
    if _deeper_than(data, MAX_DEPTH):
        raise ParseError(f"Request body nests deeper than {MAX_DEPTH} levels.")
    return data


def storable_in_jsonb(data: Any) -> bool:
    return jsonb_refusal(data) is None


def jsonb_refusal(data: Any) -> str | None:
    """What in parsed JSON PostgreSQL's jsonb would refuse (a 500 if sent), or None.

    "string": JSON allows NUL and lone surrogates in strings, jsonb does not. "number": a number
    too large for a float (1e400) parses as infinity, which is not JSON at all.
    """
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            if "\x00" in value:
                return "string"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return "string"
        elif isinstance(value, float) and not math.isfinite(value):
            return "number"
    return None


def _reject_constant(name: str) -> None:
    # NaN and Infinity are not JSON; accepting them would store payloads receivers cannot parse.
    raise ValueError(f"{name} is not valid JSON")


def _deeper_than(data: Any, limit: int) -> bool:
    """Whether arrays/objects nest more than `limit` levels; iterative, so any depth is safe."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
