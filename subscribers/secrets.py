"""Signing secrets in the Standard Webhooks format, which every Standard Webhooks library reads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from django.conf import settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def is_valid_secret(value: str) -> bool:
    if not value.startswith(SECRET_PREFIX):
        return False
    try:
        decoded = base64.b64decode(value[len(SECRET_PREFIX) :], validate=True)
    except ValueError:
        return False
    return 24 <= len(decoded) <= 64


def demo_secret() -> str:
    """The signing secret of the demo subscribers, which the demo receiver verifies with.

    HERALD_DEMO_SECRET if set; otherwise derived from SECRET_KEY, so `manage.py demo` and
    `manage.py demo_receiver` agree with no configuration (they share the settings), the receiver
    needs no access to Herald's database, and no secret is written in the code for anyone to use.
    It is only ever given to the demo subscribers.
    """
    if settings.HERALD_DEMO_SECRET:
        return settings.HERALD_DEMO_SECRET
    digest = hmac.new(
        settings.SECRET_KEY.encode(), b"herald demo webhook secret", hashlib.sha256
    ).digest()
    return SECRET_PREFIX + base64.b64encode(digest[:SECRET_BYTES]).decode()
