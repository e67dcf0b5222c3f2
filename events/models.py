from __future__ import annotations

import uuid
from datetime import datetime

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

# A source's slug prefixes its event types ("github.issues.opened") and names its URL, so it is
# one lowercase event-type word.
SOURCE_SLUG_RE = r"^[a-z0-9][a-z0-9_-]*\Z"
SOURCE_SLUG_MAX_LENGTH = 50
SOURCE_SECRET_MAX_LENGTH = 255
SOURCE_SECRET_MIN_LENGTH = 16
# Herald's own operational events are `herald.*`: no sender may publish under that name.
RESERVED_SOURCE_SLUG = "herald"


def validate_source_slug_not_reserved(slug: str) -> None:
    if slug == RESERVED_SOURCE_SLUG:
        raise ValidationError(
            f"'{RESERVED_SOURCE_SLUG}' is reserved: its event types are Herald's operational "
            "events."
        )


class Source(models.Model):
    """A third party that sends us webhooks (GitHub, Stripe, any Standard Webhooks sender, ...).

    Its requests reach /api/v1/ingest/<slug> without an API key: the signature over the raw body,
    made with `secret` (or with `previous_secret` until it expires, while a rotation settles), is
    the credential. The scheme decides how the signature, the event type and the sender's
    delivery id are read.
    """

    class Scheme(models.TextChoices):
        GITHUB = "github", "GitHub (X-Hub-Signature-256)"
        STRIPE = "stripe", "Stripe (Stripe-Signature)"
        STANDARD = "standard", "Standard Webhooks (webhook-signature)"
        HMAC = "hmac", "HMAC-SHA256 (X-Signature, X-Timestamp)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.CharField(
        max_length=SOURCE_SLUG_MAX_LENGTH,
        unique=True,
        validators=[
            RegexValidator(
                SOURCE_SLUG_RE,
                "Lowercase letters, digits, '_' or '-', starting with a letter or digit, "
                "e.g. 'github'.",
            ),
            validate_source_slug_not_reserved,
        ],
        help_text="Names the URL, /api/v1/ingest/{slug}, and prefixes its event types "
        "(github.issues.opened).",
    )
    name = models.CharField(max_length=200)
    scheme = models.CharField(max_length=16, choices=Scheme.choices)
    # The HMAC key: the string's bytes as given for github, stripe and hmac (as GitHub and Stripe
    # sign); the base64 part of "whsec_..." for standard, as the Standard Webhooks spec says.
    secret = models.CharField(max_length=SOURCE_SECRET_MAX_LENGTH)
    previous_secret = models.CharField(max_length=SOURCE_SECRET_MAX_LENGTH, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # hmac only: where the body keeps the event type; dots reach into objects ("event.name").
    event_type_field = models.CharField(
        max_length=200,
        default="type",
        help_text="hmac scheme only: the body field holding the event type; dots reach into "
        "nested objects, e.g. 'event.name'.",
    )
    is_active = models.BooleanField(default=True)
    # Signature failures. A climbing count is an attack or a misconfigured secret; counted with
    # one conditional UPDATE, so concurrent rejections never lose a count.
    rejected_count = models.PositiveBigIntegerField(default=0)
    last_rejected_at = models.DateTimeField(null=True, blank=True)
    last_rejection_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.slug

    def valid_secrets(self, now: datetime) -> list[str]:
        """The secrets a request may be signed with right now: the current one, then the old."""
        secrets = [self.secret]
        if (
            self.previous_secret
            and self.previous_secret_expires_at is not None
            and now < self.previous_secret_expires_at
        ):
            secrets.append(self.previous_secret)
        return secrets


class Event(models.Model):
    """Something that happened, accepted once and fanned out to every matching subscriber.

    Its id is the `webhook-id` receivers see on every attempt and replay, so they can de-duplicate.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=200)
    payload = models.JSONField()
    # Idempotency keys are scoped to the API key that sent them, as one client cannot know
    # another's keys. The fingerprint (of keyed events only) tells a retried request from a
    # different one reusing a key.
    api_key = models.ForeignKey(
        "config.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    idempotency_key = models.CharField(max_length=255, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    # Inbound webhooks: who sent it, and the sender's own id for this delivery (X-GitHub-Delivery,
    # the Stripe event id, webhook-id), so a redelivery finds the event already stored. A source
    # with events cannot be deleted: its delivery ids would stop guarding against replays.
    # No index of its own: the partial index below serves lookups by source.
    source = models.ForeignKey(
        Source,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="events",
        db_index=False,
    )
    source_delivery_id = models.CharField(max_length=255, blank=True)
    # Set by ingestion to its transaction's clock, so an event and its deliveries share one time.
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"], name="event_created_idx"),
            models.Index(fields=["event_type", "-created_at"], name="event_type_created_idx"),
            # Most events come through the API; only inbound ones pay for this index.
            models.Index(
                fields=["source", "-created_at"],
                condition=models.Q(source__isnull=False),
                name="event_source_created_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="event_idempotency_key_unique",
            ),
            models.UniqueConstraint(
                fields=["source", "source_delivery_id"],
                condition=~models.Q(source_delivery_id=""),
                name="event_source_delivery_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"
