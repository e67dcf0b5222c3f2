from __future__ import annotations

import uuid

from django.db import models


class Delivery(models.Model):
    """One event on its way to one subscriber: the unit that is attempted, retried and replayed."""

    class Status(models.TextChoices):
        PENDING = "pending"
        IN_FLIGHT = "in_flight"
        RETRYING = "retrying"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of their own: event_id leads delivery_event_subscriber_unique and subscriber_id
    # leads delivery_subscriber_idx, which serve the same lookups; every index is written again
    # for each delivery inserted.
    event = models.ForeignKey(
        "events.Event", on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    subscriber = models.ForeignKey(
        "subscribers.Subscriber",
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    # Attempts in the current set: a replay or requeue starts a fresh set at 0.
    attempt_count = models.PositiveIntegerField(default=0)
    # Attempts ever made, never reset: it numbers the next attempt (numbers run on across
    # replays, so the history reads in order) and tells a superseded worker's outcome apart.
    # The database default serves rows inserted without it (raw SQL, code older than the field).
    attempts_made = models.PositiveIntegerField(default=0, db_default=0)
    # When the next attempt is due.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the delivery was queued for the dispatchers, who take it at next_attempt_at. None while
    # it is held (paused subscriber, open circuit) or in flight: held work costs nothing.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # A slot the subscriber's rate limiter reserved for this delivery (== next_attempt_at): when it
    # comes, the delivery goes without queueing behind the backlog again.
    rate_slot_at = models.DateTimeField(null=True, blank=True)
    # While in flight: after this, the worker is presumed dead and the delivery may be reclaimed.
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "subscriber"], name="delivery_event_subscriber_unique"
            )
        ]
        indexes = [
            # The dispatchers' queue: only queued work is indexed, so it stays small and held
            # deliveries are never scanned.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "retrying"], enqueued_at__isnull=False),
                name="delivery_ready_idx",
            ),
            # Held work (paused subscriber, open circuit): counted by the metrics, released per
            # subscriber, and swept; kept apart so none of them scans the queued or the finished.
            models.Index(
                fields=["subscriber", "next_attempt_at"],
                condition=models.Q(status__in=["pending", "retrying"], enqueued_at__isnull=True),
                name="delivery_held_idx",
            ),
            models.Index(
                fields=["lease_until"],
                condition=models.Q(status="in_flight"),
                name="delivery_lease_idx",
            ),
            models.Index(fields=["subscriber", "-created_at"], name="delivery_subscriber_idx"),
            models.Index(fields=["status", "-created_at"], name="delivery_status_idx"),
            models.Index(fields=["-created_at"], name="delivery_created_idx"),
            # A subscriber's last success, for the operators' console: one entry per delivered
            # delivery, added by the UPDATE that marks it delivered (which touches the status
            # index anyway), and a one-row lookup however many failures came after it.
            models.Index(
                fields=["subscriber", "-delivered_at"],
                condition=models.Q(delivered_at__isnull=False),
                name="delivery_last_success_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.DELIVERED, self.Status.FAILED)


# Waiting for an attempt: these are what claims, the sweeper and releases look for.
DUE_STATUSES = (Delivery.Status.PENDING, Delivery.Status.RETRYING)


class DeliveryAttempt(models.Model):
    """One HTTP request to a receiver.

    Written before the request is sent, so a worker killed mid-request leaves a trace.
    """

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    request_headers = models.JSONField(default=dict, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="attempt_delivery_number_unique"
            )
        ]
        indexes = [models.Index(fields=["-started_at"], name="attempt_started_idx")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WorkerHeartbeat(models.Model):
    """A delivery dispatcher's last sign of life: one row per worker process.

    Each dispatcher writes its row every few seconds (deliveries.heartbeat), so the health check
    and the metrics can tell, from the database every process shares, whether any worker is up.
    """

    worker = models.CharField(max_length=200, unique=True, help_text="host:pid")
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    # Set when the worker stopped cleanly: it no longer counts as alive, though it was seen
    # within the last minute, and the row still tells when the cluster was last up.
    stopped_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.worker} (seen {self.seen_at:%Y-%m-%d %H:%M:%S})"
