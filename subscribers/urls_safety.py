"""Which endpoint URLs Herald will deliver to."""

from __future__ import annotations

from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")


class UnsafeEndpoint(ValueError):
    """The URL is not one Herald delivers to; the message says why."""


def check_endpoint_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ALLOWED_SCHEMES:
        raise UnsafeEndpoint(f"Only http and https endpoints are supported, not {parts.scheme!r}.")
    if not parts.hostname:
        raise UnsafeEndpoint("The endpoint URL has no host.")
