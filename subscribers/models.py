from __future__ import annotations

import uuid
from datetime import datetime

from django.db import models


class Subscriber(models.Model):
    """An endpoint that receives the events whose type matches one of its patterns.

    The row also carries the receiver's protection state (circuit breaker, rate limit, back-off),
    so every worker on every machine reads and changes one shared truth with conditional UPDATEs.
    """

    class Circuit(models.TextChoices):
        CLOSED = "closed"  # sending normally
        OPEN = "open"  # failing: deliveries are held until a probe may go
        HALF_OPEN = "half_open"  # one probe delivery is out; its outcome decides

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    endpoint_url = models.URLField(max_length=2000)
    # Exact names ("invoice.paid"), prefixes ("order.*") or everything ("*").
    event_types = models.JSONField(default=list)
    # Standard Webhooks secret, "whsec_" + base64 of 24 random bytes.
    secret = models.CharField(max_length=100)
    # After a rotation the old secret keeps signing beside the new one until it expires, so a
    # receiver can switch secrets at its own pace without rejecting a single request.
    previous_secret = models.CharField(max_length=100, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    rate_limit_per_second = models.FloatField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    deactivated_reason = models.CharField(max_length=500, blank=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    circuit_state = models.CharField(max_length=16, choices=Circuit.choices, default=Circuit.CLOSED)
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_opened_at = models.DateTimeField(null=True, blank=True)
    # While open: when a probe may go. While half-open: when a lost probe may be replaced.
    circuit_next_probe_at = models.DateTimeField(null=True, blank=True)
    circuit_cooldown_seconds = models.FloatField(null=True, blank=True)
    # Opened by an operator: no probes, stays open until reset.
    circuit_manual = models.BooleanField(default=False)
    circuit_reason = models.CharField(max_length=500, blank=True)
    # GCRA "theoretical arrival times" (see subscribers.ratelimit): of the slots reserved so far,
    # and of the requests actually sent, which every send must conform to.
    rate_limit_tat = models.DateTimeField(null=True, blank=True)
    rate_limit_sent_tat = models.DateTimeField(null=True, blank=True)
    # Retry-After from the receiver: nothing is sent to it before this.
    backoff_until = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["is_active"], name="subscriber_active_idx"),
            models.Index(
                fields=["circuit_state"],
                condition=~models.Q(circuit_state="closed"),
                name="subscriber_circuit_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rate_limit_per_second__isnull=True)
                | models.Q(rate_limit_per_second__gt=0),
                name="subscriber_rate_limit_positive",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets each request is signed with: the current one, and during a rotation the
        previous one too (Standard Webhooks allows several signatures in one header)."""
        if (
            self.previous_secret
            and self.previous_secret_expires_at
            and now < (self.previous_secret_expires_at)
        ):
            return [self.secret, self.previous_secret]
        return [self.secret]
