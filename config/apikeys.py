"""Issuing and checking API keys. Keys look like `hrld_<prefix>_<secret>` and are shown once."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from config.db import select_instances
from config.models import ApiKey
from config.scopes import ALL_SCOPES, unknown_scopes

KEY_PREFIX = "hrld"
# last_used_at is informative, not exact: writing it on every request would cost a database
# write per API call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    plaintext: str


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, name: str, scopes: list[str] | tuple[str, ...] = ALL_SCOPES) -> IssuedKey:
    """A new key with these scopes (all of them unless narrowed)."""
    unknown = unknown_scopes(list(scopes))
    if unknown:
        raise ValueError(f"Unknown scope(s) {unknown}; known: {', '.join(ALL_SCOPES)}.")
    return api_key_issue(api_key=ApiKey(name=name, scopes=list(dict.fromkeys(scopes))))


def api_key_issue(*, api_key: ApiKey) -> IssuedKey:
    """Give an unsaved key its secret and save it; the plaintext exists only in the result."""
    secret = secrets.token_urlsafe(32)
    api_key.prefix = secrets.token_hex(4)
    api_key.secret_hash = _digest(secret)
    api_key.save()
    return IssuedKey(api_key=api_key, plaintext=f"{KEY_PREFIX}_{api_key.prefix}_{secret}")


def api_key_authenticate(*, plaintext: str, now: datetime | None = None) -> ApiKey | None:
    """The active key matching `plaintext`, or None. Comparison is constant-time."""
    parts = plaintext.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    _, prefix, secret = parts
    api_key = _active_key(prefix)
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, _digest(secret)):
        return None
    now = now or timezone.now()
    # The row just read tells whether a write is due: most requests need no second round trip.
    if api_key.last_used_at is None or api_key.last_used_at < now - LAST_USED_RESOLUTION:
        ApiKey.objects.filter(pk=api_key.pk).filter(
            Q(last_used_at=None) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        api_key.last_used_at = now  # the cached row too, or every request until it expires writes
    return api_key


# Active keys this process has read, by prefix: (row, monotonic time it stops being trusted).
# Every API request authenticates, and the lookup was a fifth of the web tier's CPU and one of
# the three statements behind a published event. Only keys found active are kept (a miss always
# asks the database, so a new key works at once and made-up prefixes take no memory); a
# revocation or a change of scopes reaches other processes within HERALD_API_KEY_CACHE_SECONDS.
_active_keys: dict[str, tuple[ApiKey, float]] = {}


def _active_key(prefix: str) -> ApiKey | None:
    cached = _active_keys.get(prefix)
    if cached is not None and cached[1] > time.monotonic():
        return cached[0]
    # Written out, the lookup costs a third of the ORM's CPU (config.db).
    found = select_instances(ApiKey, where="prefix = %s AND revoked_at IS NULL", params=[prefix])
    if not found:
        _active_keys.pop(prefix, None)
        return None
    if settings.HERALD_API_KEY_CACHE_SECONDS > 0:
        _active_keys[prefix] = (found[0], time.monotonic() + settings.HERALD_API_KEY_CACHE_SECONDS)
    return found[0]


def _forget(prefixes: Iterable[str]) -> None:
    """Drop these keys from this process's cache: the next request reads them again."""
    for prefix in prefixes:
        _active_keys.pop(prefix, None)


def api_keys_revoke(*, api_keys: QuerySet[ApiKey], now: datetime) -> int:
    """Revoke at once in this process; other processes stop trusting the keys within
    HERALD_API_KEY_CACHE_SECONDS."""
    to_revoke = api_keys.filter(revoked_at=None)
    _forget(to_revoke.values_list("prefix", flat=True))
    return to_revoke.update(revoked_at=now)


@receiver(post_save, sender=ApiKey)
@receiver(post_delete, sender=ApiKey)
def _forget_changed_key(sender, instance: ApiKey, **kwargs) -> None:
    # Scopes edited or the key deleted in the admin: this process sees it with the next request.
    _forget([instance.prefix])
