"""Sign requests the way each provider does, for the inbound webhook tests. No Herald code here."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook


def hex_hmac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def github_headers(secret: str, body: bytes, *, event: str = "issues", delivery: str = "gh-1"):
    """As GitHub signs: sha256= + hex HMAC of the body, keyed with the secret's bytes."""
    return {
        "X-Hub-Signature-256": "sha256=" + hex_hmac(secret, body),
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
    }


def stripe_headers(secret: str, body: bytes, *, at: int | None = None, also: tuple = ()):
    """As Stripe signs: t=<unix>, then a v1 per secret it signs with (here: `also` first)."""
    at = int(time.time()) if at is None else at
    signed = f"{at}.".encode() + body
    v1s = [hex_hmac(other, signed) for other in also] + [hex_hmac(secret, signed)]
    return {"Stripe-Signature": ",".join([f"t={at}", *(f"v1={v}" for v in v1s), "v0=00ff"])}


def standard_headers(secret: str, body: bytes, *, msg_id: str = "msg_1", at: int | None = None):
    """With the reference Standard Webhooks library, as any Standard Webhooks sender does."""
    at = int(time.time()) if at is None else at
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(at, tz=UTC), body.decode())
    return {"webhook-id": msg_id, "webhook-timestamp": str(at), "webhook-signature": signature}


def hmac_headers(secret: str, body: bytes, *, at: int | None = None, key: str | None = "key-1"):
    at = int(time.time()) if at is None else at
    headers = {"X-Signature": hex_hmac(secret, f"{at}.".encode() + body), "X-Timestamp": str(at)}
    if key is not None:
        headers["X-Idempotency-Key"] = key
    return headers


@dataclass(frozen=True)
class Case:
    """One provider: a body it sends, how it signs, and the event Herald should make of it."""

    scheme: str
    slug: str
    body: dict[str, Any]
    event_type: str
    delivery_id: str
    source_fields: dict[str, Any] = field(default_factory=dict)
    timestamped: bool = True

    @property
    def raw(self) -> bytes:
        return json.dumps(self.body).encode()

    def sign(self, secret: str, body: bytes | None = None, **options) -> dict[str, str]:
        body = self.raw if body is None else body
        if self.scheme == "github":
            return github_headers(secret, body, **{"delivery": self.delivery_id, **options})
        if self.scheme == "stripe":
            return stripe_headers(secret, body, **options)
        if self.scheme == "standard":
            return standard_headers(secret, body, **{"msg_id": self.delivery_id, **options})
        return hmac_headers(secret, body, **{"key": self.delivery_id, **options})


CASES = [
    Case(
        scheme="github",
        slug="github",
        body={"action": "opened", "issue": {"number": 7, "title": "Webhooks"}},
        event_type="github.issues.opened",
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        timestamped=False,
    ),
    Case(
        scheme="stripe",
        slug="stripe",
        body={"id": "evt_1NG8Du2eZvKYlo2C", "type": "payment_intent.succeeded", "data": {}},
        event_type="stripe.payment_intent.succeeded",
        delivery_id="evt_1NG8Du2eZvKYlo2C",
        # Stripe chooses the secret; the source is given the one from its Dashboard.
        source_fields={"secret": "whsec_stripeDashboardSecretForTests0123"},
    ),
    Case(
        scheme="standard",
        slug="acme",
        body={"type": "Invoice.Paid", "timestamp": "2026-11-24T12:00:00Z", "data": {"id": 3}},
        event_type="acme.invoice.paid",
        delivery_id="msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
    ),
    Case(
        scheme="hmac",
        slug="shop",
        body={"event": {"name": "order.created"}, "order": {"id": 42}},
        event_type="shop.order.created",
        delivery_id="order-42-created",
        source_fields={"event_type_field": "event.name"},
    ),
]
