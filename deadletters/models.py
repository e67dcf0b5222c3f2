from __future__ import annotations

import uuid

from django.db import models


class DeadLetter(models.Model):
    """A delivery that ran out of attempts (or was refused for good), waiting for an operator."""

    class Resolution(models.TextChoices):
        REPLAYED = "replayed"
        RESOLVED = "resolved"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    delivery = models.ForeignKey(
        "deliveries.Delivery", on_delete=models.CASCADE, related_name="dead_letters"
    )
    reason = models.TextField()
    # As they were when the delivery died, kept here: a replay starts the delivery's own afresh,
    # and the letter should still say what happened. The database defaults serve rows inserted
    # without them (raw SQL, code older than the fields still running during a release).
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="", db_default="")
    attempt_count = models.PositiveIntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["-created_at"],
                condition=models.Q(resolved_at__isnull=True),
                name="deadletter_unresolved_idx",
            ),
            models.Index(fields=["-created_at"], name="deadletter_created_idx"),
            # The admin's "replayed" / "resolved" filters, newest first.
            models.Index(fields=["resolution", "-created_at"], name="deadletter_resolution_idx"),
        ]
        constraints = [
            # A delivery is dead at most once at a time; replay resolves the letter before
            # the delivery can die again.
            models.UniqueConstraint(
                fields=["delivery"],
                condition=models.Q(resolved_at__isnull=True),
                name="deadletter_one_open_per_delivery",
            )
        ]

    def __str__(self) -> str:
        return f"dead letter {self.id}"

    @property
    def is_resolved(self) -> bool:
        return self.resolved_at is not None
