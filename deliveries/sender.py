"""The HTTP part of a delivery: build the signed request, send it, describe the response.

No database here, so it can be tested against a plain HTTP server and reused by any caller.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
from standardwebhooks.webhooks import Webhook

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


_local = threading.local()


def _session() -> requests.Session:
    """One keep-alive session per thread: connections to a receiver are reused across deliveries."""
    session = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        # Never read proxy settings or .netrc from the environment: deliveries go where they say.
        session.trust_env = False
        _local.session = session
    return session


def send(
    request: WebhookRequest,
    *,
    connect_timeout: float,
    total_timeout: float,
    excerpt_bytes: int,
) -> SendResult:
    """POST the request; never raises for network trouble, which is reported in `error`.

    Redirects are not followed: a receiver that moved must be updated by its owner, and following
    them would let a receiver point Herald somewhere else.
    """
    started = time.monotonic()
    deadline = started + total_timeout
    try:
        response = _session().post(
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=(connect_timeout, total_timeout),
            allow_redirects=False,
            stream=True,
        )
    except requests.Timeout as exc:
        return _failure(started, f"timeout: {exc}")
    except requests.RequestException as exc:
        return _failure(started, f"connection error: {exc}")
    try:
        excerpt, complete = _read_excerpt(response, deadline=deadline, limit=excerpt_bytes)
    except requests.RequestException as exc:
        response.close()
        return SendResult(
            status_code=response.status_code,
            duration_ms=_elapsed_ms(started),
            error=f"error reading the response: {exc}",
            headers=dict(response.headers),
        )
    if complete:
        response.close()  # returns the connection to the pool
    else:
        # A body larger than we keep, or one still trickling in at the deadline: drop the
        # connection rather than wait for the rest.
        response.raw.close()
    error = "" if complete or len(excerpt) >= excerpt_bytes else "response body timed out"
    return SendResult(
        status_code=response.status_code,
        duration_ms=_elapsed_ms(started),
        response_excerpt=excerpt.decode("utf-8", errors="replace"),
        error=error,
        headers=dict(response.headers),
    )


def _read_excerpt(
    response: requests.Response, *, deadline: float, limit: int
) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether it ended within `limit` and the deadline."""
    received = bytearray()
    for chunk in response.raw.stream(READ_CHUNK, decode_content=True):
        received.extend(chunk)
        if len(received) > limit or time.monotonic() > deadline:
            return bytes(received[:limit]), False
    return bytes(received), True


def _failure(started: float, error: str) -> SendResult:
    return SendResult(status_code=None, duration_ms=_elapsed_ms(started), error=error)


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
