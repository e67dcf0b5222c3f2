from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Event(models.Model):
    """Something that happened, accepted once and fanned out to every matching subscriber.

    Its id is the `webhook-id` receivers see on every attempt and replay, so they can de-duplicate.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_type = models.CharField(max_length=200)
    payload = models.JSONField()
    # Idempotency keys are scoped to the API key that sent them, as one client cannot know
    # another's keys. The fingerprint tells a retried request from a different one reusing a key.
    api_key = models.ForeignKey(
        "config.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    idempotency_key = models.CharField(max_length=255, blank=True)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    # Set by ingestion to its transaction's clock, so an event and its deliveries share one time.
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["-created_at"], name="event_created_idx"),
            models.Index(fields=["event_type", "-created_at"], name="event_type_created_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["api_key", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="event_idempotency_key_unique",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.id}"
