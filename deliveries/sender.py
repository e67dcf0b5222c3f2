"""The HTTP part of a delivery: build the signed request, send it, describe the response.

No database here, so it can be tested against a plain HTTP server and reused by any caller.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook
from urllib3 import BaseHTTPResponse, Timeout
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
)

from deliveries.transport import Deadline, pool_for

USER_AGENT = "Herald-Webhooks/1.0"
RETRY_AFTER_STATUSES = frozenset({429, 503})
READ_CHUNK = 8192


@dataclass(frozen=True)
class WebhookRequest:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    duration_ms: int
    response_excerpt: str = ""
    error: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def build_request(
    *,
    url: str,
    message_id: str,
    event_type: str,
    occurred_at: datetime,
    payload: Any,
    secrets: Sequence[str],
    now: datetime,
) -> WebhookRequest:
    """The Standard Webhooks request: one `v1,` signature per secret (several during rotation)."""
    body = json.dumps(
        {"type": event_type, "timestamp": occurred_at.isoformat(), "data": payload},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    signed_at = now.astimezone(UTC)
    signatures = " ".join(
        Webhook(secret).sign(msg_id=message_id, timestamp=signed_at, data=body)
        for secret in secrets
    )
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(signed_at.timestamp())),
        "webhook-signature": signatures,
    }
    return WebhookRequest(url=url, body=body.encode(), headers=headers)


@dataclass(frozen=True)
class Timeouts:
    connect: float  # to establish the connection
    read: float  # for each read from the socket
    total: float  # for the whole request, connect to last byte kept


def send(
    request: WebhookRequest,
    *,
    timeouts: Timeouts,
    excerpt_bytes: int,
    allow_private: bool,
    connections_per_host: int = 16,
) -> SendResult:
    """POST the request; never raises for network trouble, which is reported in `error`.

    Redirects are not followed: a receiver that moved must be updated by its owner, and following
    them would let a receiver point Herald somewhere else. `connections_per_host` is how many
    kept-alive connections to one receiver the process keeps: as many as it sends at once.
    """
    started = time.monotonic()
    with Deadline(timeouts.total) as deadline:
        try:
            pool, target = pool_for(
                request.url, allow_private=allow_private, connections_per_host=connections_per_host
            )
            response = pool.urlopen(
                "POST",
                target,
                body=request.body,
                headers=request.headers,
                timeout=_urllib3_timeout(timeouts),
                redirect=False,
                assert_same_host=False,
                preload_content=False,
            )
        except (HTTPError, OSError) as exc:
            return _failure(started, _describe(exc, deadline=deadline, timeouts=timeouts))
        try:
            excerpt, complete = _read_excerpt(
                response, deadline=started + timeouts.total, limit=excerpt_bytes
            )
        except (HTTPError, OSError) as exc:
            _discard(response)
            return SendResult(
                status_code=response.status,
                duration_ms=_elapsed_ms(started),
                error=_describe(exc, deadline=deadline, timeouts=timeouts, reading=True),
                headers=dict(response.headers),
            )
    if complete:
        response.release_conn()  # read to the end: the connection can carry the next request
    else:
        # A body larger than we keep, or one still trickling in at the deadline: drop the
        # connection rather than wait for the rest.
        _discard(response)
    error = "" if complete or len(excerpt) >= excerpt_bytes else "response body timed out"
    return SendResult(
        status_code=response.status,
        duration_ms=_elapsed_ms(started),
        # PostgreSQL text cannot hold NUL; a receiver's binary body must not stop us recording it.
        response_excerpt=excerpt.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
        error=error,
        headers=dict(response.headers),
    )


@functools.lru_cache(maxsize=8)
def _urllib3_timeout(timeouts: Timeouts) -> Timeout:
    # urllib3 copies it for each request; built once per setting rather than once per send.
    return Timeout(connect=timeouts.connect, read=timeouts.read)


def _discard(response: BaseHTTPResponse) -> None:
    """Close the connection (its state is unknown) and give its slot back to the pool."""
    response.close()
    response.release_conn()


def _read_excerpt(response: BaseHTTPResponse, *, deadline: float, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether it ended within `limit` and the deadline."""
    received = bytearray()
    for chunk in response.stream(READ_CHUNK, decode_content=True):
        received.extend(chunk)
        if len(received) > limit or time.monotonic() > deadline:
            return bytes(received[:limit]), False
    return bytes(received), True


def _describe(
    exc: Exception, *, deadline: Deadline, timeouts: Timeouts, reading: bool = False
) -> str:
    if deadline.expired:
        return f"timeout: no complete response within {timeouts.total:g}s"
    # urllib3 makes a refused or unresolvable connection a kind of connect timeout; it is not one.
    if isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError):
        return f"timeout: no connection within {timeouts.connect:g}s"
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return f"timeout: nothing received for {timeouts.read:g}s"
    return f"{'error reading the response' if reading else 'connection error'}: {exc}"


def _failure(started: float, error: str) -> SendResult:
    return SendResult(status_code=None, duration_ms=_elapsed_ms(started), error=error)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
