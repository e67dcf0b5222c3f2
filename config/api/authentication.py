from __future__ import annotations

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from config.apikeys import api_key_authenticate
from config.models import ApiKey


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>`; the key is the client, there is no Django user behind it."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiClient, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme.lower() != self.keyword.lower() or not key.strip():
            raise exceptions.AuthenticationFailed(
                "Malformed Authorization header: expected 'Bearer <api key>'."
            )
        # No issued key contains NUL, and PostgreSQL refuses it in a query (a 500): reject it here.
        api_key = None if "\x00" in key else api_key_authenticate(plaintext=key.strip())
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        # DRF wants a user; the key itself answers is_authenticated through this wrapper.
        return (ApiClient(api_key), api_key)

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiClient:
    """The authenticated caller as DRF's `request.user`."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        self.pk = api_key.pk

    def __str__(self) -> str:
        return self.api_key.name
