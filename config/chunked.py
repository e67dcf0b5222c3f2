"""Request bodies sent without a Content-Length (`Transfer-Encoding: chunked`), given one.

Django reads exactly CONTENT_LENGTH bytes of a request and takes a missing length for an empty
body, so a chunked event arrived as `{}` and was refused as "event_type: This field is
required", and a correctly signed chunked webhook failed its signature check. `requests` sends
a generator body chunked, as do many HTTP clients streaming a body of unknown size. When the
server marks the input as ending with the body (`wsgi.input_terminated`, as granian does), the
body is read here, never more than one byte past the largest limit any endpoint has, and the
request goes on with its length known: each endpoint then applies its own limit as usual.
"""

from __future__ import annotations

import io
import json

from django.conf import settings

from config.api.exceptions import error_body

_READ_SIZE = 64 * 1024


def largest_body_bytes() -> int:
    return max(
        settings.HERALD_MAX_PAYLOAD_BYTES,
        settings.HERALD_MAX_BATCH_BYTES,
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0,
    )


def with_body_length(application):
    """WSGI middleware: a chunked body is buffered and given its CONTENT_LENGTH, or 413."""

    def buffered(environ, start_response):
        if (
            "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            and not environ.get("CONTENT_LENGTH")
            and environ.get("wsgi.input_terminated")
        ):
            limit = largest_body_bytes()
            body = _read_at_most(environ["wsgi.input"], limit + 1)
            if len(body) > limit:
                return _too_large(start_response, limit)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input"] = io.BytesIO(body)
        return application(environ, start_response)

    return buffered


def _read_at_most(stream, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = stream.read(min(_READ_SIZE, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _too_large(start_response, limit: int) -> list[bytes]:
    body = json.dumps(
        error_body(
            code="payload_too_large",
            message=f"Request body exceeds the limit of {limit} bytes.",
        )
    ).encode()
    start_response(
        "413 Request Entity Too Large",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
