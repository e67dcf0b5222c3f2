from __future__ import annotations

import uuid

from django.db import models


class Subscriber(models.Model):
    """An endpoint that receives the events whose type matches one of its patterns."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    endpoint_url = models.URLField(max_length=2000)
    # Exact names ("invoice.paid"), prefixes ("order.*") or everything ("*").
    event_types = models.JSONField(default=list)
    # Standard Webhooks secret, "whsec_" + base64 of 24 random bytes.
    secret = models.CharField(max_length=100)
    rate_limit_per_second = models.FloatField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    deactivated_reason = models.CharField(max_length=500, blank=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["is_active"], name="subscriber_active_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rate_limit_per_second__isnull=True)
                | models.Q(rate_limit_per_second__gt=0),
                name="subscriber_rate_limit_positive",
            )
        ]

    def __str__(self) -> str:
        return self.name
