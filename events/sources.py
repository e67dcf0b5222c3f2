"""Writes to inbound sources: create (secret generated or pasted), update, rotate, reject."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from events.models import SOURCE_SECRET_MAX_LENGTH, SOURCE_SECRET_MIN_LENGTH, Source
from subscribers.secrets import SECRET_PREFIX, generate_secret, is_valid_secret

Scheme = Source.Scheme

UPDATABLE_FIELDS = ("slug", "name", "event_type_field", "is_active")


class InvalidSecret(ValueError):
    """A pasted secret the scheme cannot use; the message says what it should look like."""


class SlugTaken(ValueError):
    """Another source took the slug between the caller's check and this write."""


@contextmanager
def _slug_unique(slug: str | None, *, pk: Any = None) -> Iterator[None]:
    # The API checks the slug first; this catches the request that took it in between, so the
    # caller answers 409 rather than 500.
    try:
        with transaction.atomic():
            yield
    except IntegrityError:
        if slug is not None and Source.objects.filter(slug=slug).exclude(pk=pk).exists():
            raise SlugTaken(f"source with this slug already exists: {slug!r}") from None
        raise


def source_secret_generate(*, scheme: str) -> str:
    """A secret to give the sender; InvalidSecret for Stripe, which makes its own."""
    if scheme == Scheme.STRIPE:
        raise InvalidSecret(
            f"Required for Stripe, which chooses the signing secret: paste the {SECRET_PREFIX}... "
            "from the webhook endpoint's page in the Stripe Dashboard."
        )
    # Standard Webhooks secrets are "whsec_" + base64; GitHub and plain HMAC senders take any
    # string, and hex survives every copy and paste.
    if scheme == Scheme.STANDARD:
        return generate_secret()
    return secrets.token_hex(32)


def source_secret_for(*, scheme: str, secret: str | None) -> str:
    """The secret a source of `scheme` is to use: `secret` if it can sign for the scheme, else
    InvalidSecret; generated when None or empty (InvalidSecret for Stripe)."""
    if not secret:
        return source_secret_generate(scheme=scheme)
    source_secret_check(scheme=scheme, secret=secret)
    return secret


def source_secret_check(*, scheme: str, secret: str) -> None:
    """Raise InvalidSecret unless `secret` can sign requests of `scheme`."""
    if not secret:
        raise InvalidSecret("Must not be empty.")
    if len(secret) > SOURCE_SECRET_MAX_LENGTH:
        raise InvalidSecret(f"At most {SOURCE_SECRET_MAX_LENGTH} characters.")
    if any(ord(char) < 32 or ord(char) == 127 for char in secret):
        raise InvalidSecret("Must not contain control characters.")
    if scheme == Scheme.STANDARD and not is_valid_secret(secret):
        raise InvalidSecret(
            f"Standard Webhooks secrets look like {SECRET_PREFIX}<base64 of 24 to 64 bytes>."
        )
    if scheme == Scheme.STRIPE and not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(
            f"Stripe signing secrets start with {SECRET_PREFIX}: copy it from the webhook "
            "endpoint's page in the Stripe Dashboard (not an API key)."
        )
    # Anyone who guesses it can sign requests; generated ones are 64 hex characters. Checked
    # after the schemes' own formats, whose messages say more.
    if len(secret) < SOURCE_SECRET_MIN_LENGTH:
        raise InvalidSecret(
            f"At least {SOURCE_SECRET_MIN_LENGTH} characters; leave it out to have one generated."
        )


def source_create(
    *,
    slug: str,
    name: str,
    scheme: str,
    secret: str | None = None,
    event_type_field: str = "type",
    is_active: bool = True,
) -> Source:
    """A new source; without a secret one is generated, to be given to the sender."""
    secret = source_secret_for(scheme=scheme, secret=secret)
    with _slug_unique(slug):
        return Source.objects.create(
            slug=slug,
            name=name,
            scheme=scheme,
            secret=secret,
            event_type_field=event_type_field,
            is_active=is_active,
        )


def source_update(*, source: Source, changes: dict[str, Any]) -> Source:
    for field in changes:
        if field not in UPDATABLE_FIELDS:
            raise ValueError(f"{field} cannot be changed")
    with _slug_unique(changes.get("slug"), pk=source.pk):
        # Read again under a lock: a deletion meanwhile raises Source.DoesNotExist, and the
        # rejection counters written since the caller read the row are returned as they are.
        current = Source.objects.select_for_update().get(pk=source.pk)
        for field, value in changes.items():
            setattr(current, field, value)
        current.save(update_fields=[*changes, "updated_at"])
    return current


def source_rotate_secret(
    *, source: Source, now: datetime, secret: str | None = None, keep_previous: bool = True
) -> Source:
    """Make `secret` (or a generated one) current.

    The old secret stays valid for HERALD_SOURCE_ROTATION_HOURS, so requests the sender signed
    before it switched, and its retries, still verify. `keep_previous=False` stops accepting it at
    once, for a secret that leaked. One UPDATE moves the current secret to `previous_secret`, so
    two rotations at once cannot drop the secret the first one handed out.
    """
    new_secret = source_secret_for(scheme=source.scheme, secret=secret)
    grace = timedelta(hours=settings.HERALD_SOURCE_ROTATION_HOURS)
    Source.objects.filter(pk=source.pk).update(
        previous_secret=F("secret") if keep_previous else "",
        previous_secret_expires_at=now + grace if keep_previous else None,
        secret=new_secret,
        updated_at=now,
    )
    source.refresh_from_db()
    return source


def source_record_rejection(*, source: Source, reason: str, now: datetime) -> None:
    """Count a request refused for its signature; one UPDATE, so concurrent counts all land.

    The update takes no lock that ingestion's foreign-key check waits for, so a flood of forged
    requests does not slow the genuine ones down on this row.
    """
    Source.objects.filter(pk=source.pk).update(
        rejected_count=F("rejected_count") + 1,
        last_rejected_at=now,
        last_rejection_reason=reason[:200],
    )
