"""Inbound webhook signatures: one check per scheme, over the raw body bytes, constant-time.

Each verifier returns if any of `secrets` signed the request and raises SignatureError otherwise,
with a reason the sender and the operator can act on. Nothing here parses the body.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# A signed timestamp further than this from our clock is a replay or a badly skewed sender.
TOLERANCE_SECONDS = 5 * 60

HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
UNIX_SECONDS = re.compile(r"[0-9]{1,12}")
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class SignatureError(Exception):
    """The request is not signed by the source; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


Verifier = Callable[..., None]


def verify_github(
    *, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float
) -> None:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`; GitHub signs no timestamp."""
    value = _header(headers, "X-Hub-Signature-256")
    digest = value.removeprefix("sha256=")
    if digest == value or not HEX_SHA256.fullmatch(digest):
        raise SignatureError("Malformed X-Hub-Signature-256 header: expected sha256=<64 hex>.")
    _check_hmac(signatures=[bytes.fromhex(digest)], message=body, secrets=secrets)


def verify_stripe(
    *, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float
) -> None:
    """`Stripe-Signature: t=<unix>,v1=<hex HMAC of "t.body">[,v1=...]`; any one v1 may match."""
    value = _header(headers, "Stripe-Signature")
    timestamp, signatures = None, []
    for item in value.split(","):
        key, _, part = item.strip().partition("=")
        if key == "t":
            timestamp = part
        elif key == "v1":
            if not HEX_SHA256.fullmatch(part):
                raise SignatureError("Malformed Stripe-Signature header: a v1 is not 64 hex.")
            signatures.append(bytes.fromhex(part))
    if timestamp is None or not UNIX_SECONDS.fullmatch(timestamp) or not signatures:
        raise SignatureError("Malformed Stripe-Signature header: expected t=<unix>,v1=<hex>.")
    _check_fresh(int(timestamp), now)
    _check_hmac(signatures=signatures, message=f"{timestamp}.".encode() + body, secrets=secrets)


def verify_standard(
    *, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float
) -> None:
    """Standard Webhooks: the signature is checked by the reference library.

    The timestamp is checked here first (the library checks it again, on its own clock), so a
    rejection's reason reads the same as the other schemes'.
    """
    webhook_headers = {name: _header(headers, name) for name in STANDARD_HEADERS}
    timestamp = webhook_headers["webhook-timestamp"]
    if not UNIX_SECONDS.fullmatch(timestamp):
        raise SignatureError("Malformed webhook-timestamp header: expected unix seconds.")
    _check_fresh(int(timestamp), now)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SignatureError("Body is not UTF-8, so its signature cannot be checked.") from exc
    for secret in secrets:
        try:
            Webhook(secret).verify(text, webhook_headers, json_parse=False)
            return
        except WebhookVerificationError:
            continue  # not signed with this secret
        except ValueError as exc:  # the library's own parsing of a malformed signature header
            raise SignatureError(
                "Malformed webhook-signature header: expected 'v1,<base64>' entries."
            ) from exc
    raise SignatureError("Signature does not match.")


def verify_hmac(
    *, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float
) -> None:
    """`X-Signature: <hex HMAC-SHA256 of "timestamp.body">` with `X-Timestamp: <unix>`."""
    signature = _header(headers, "X-Signature")
    timestamp = _header(headers, "X-Timestamp")
    if not UNIX_SECONDS.fullmatch(timestamp):
        raise SignatureError("Malformed X-Timestamp header: expected unix seconds.")
    if not HEX_SHA256.fullmatch(signature):
        raise SignatureError("Malformed X-Signature header: expected 64 hex digits.")
    _check_fresh(int(timestamp), now)
    _check_hmac(
        signatures=[bytes.fromhex(signature)],
        message=f"{timestamp}.".encode() + body,
        secrets=secrets,
    )


VERIFIERS: dict[str, Verifier] = {
    "github": verify_github,
    "stripe": verify_stripe,
    "standard": verify_standard,
    "hmac": verify_hmac,
}


def verify(
    *, scheme: str, body: bytes, headers: Mapping[str, str], secrets: Sequence[str], now: float
) -> None:
    VERIFIERS[scheme](body=body, headers=headers, secrets=secrets, now=now)


def _header(headers: Mapping[str, str], name: str) -> str:
    value = (headers.get(name) or "").strip()
    if not value:
        raise SignatureError(f"Missing {name} header.")
    return value


def _check_fresh(timestamp: int, now: float) -> None:
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureError(
            "Timestamp is more than 5 minutes from our clock: a replay, or a skewed sender clock."
        )


def _check_hmac(*, signatures: Sequence[bytes], message: bytes, secrets: Sequence[str]) -> None:
    for secret in secrets:
        expected = hmac.new(secret.encode(), message, hashlib.sha256).digest()
        # compare_digest: how much of a guess matched must not show in the response time.
        if any(hmac.compare_digest(expected, signature) for signature in signatures):
            return
    raise SignatureError("Signature does not match.")
