from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from config.admin_tools import BigTableAdmin, counted, report_action
from deliveries.models import DUE_STATUSES, Delivery, DeliveryAttempt
from deliveries.selectors import deliveries_count_by_status, deliveries_held_by_subscriber
from deliveries.services import deliveries_requeue

Status = Delivery.Status


class AttemptInline(admin.TabularInline):
    """Every request sent for the delivery: what went out, what came back, how long it took."""

    model = DeliveryAttempt
    fields = [
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "response_excerpt",
        "headers_sent",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="request headers")
    def headers_sent(self, attempt: DeliveryAttempt) -> str:
        return format_html(
            '<pre style="margin: 0; white-space: pre-wrap">{}</pre>',
            json.dumps(attempt.request_headers, indent=1, sort_keys=True),
        )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(BigTableAdmin):
    """Deliveries are history; the engine changes them, operators act through actions."""

    list_display = [
        "short_id",
        "event_type",
        "subscriber",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_response",
        "created_at",
    ]
    list_filter = ["status", "subscriber", "created_at"]
    # UUIDs (the delivery's, its event's, its subscriber's) are matched exactly by index.
    id_search_fields = ("id", "event_id", "subscriber_id")
    search_fields = ["subscriber__name__exact"]
    search_help_text = "A delivery, event or subscriber id, or a subscriber's exact name."
    list_select_related = ["event", "subscriber"]
    raw_id_fields = ["event", "subscriber"]
    readonly_fields = [
        "id",
        "event",
        "subscriber",
        "status",
        "attempt_count",
        "next_attempt_at",
        "enqueued_at",
        "lease_until",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields
    inlines = [AttemptInline]
    actions = ["retry_deliveries"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        # A payload may be 256 KiB: a page of a hundred rows must not drag them all along.
        return super().get_queryset(request).defer("event__payload")

    @admin.display(description="event type", ordering="event__event_type")
    def event_type(self, delivery: Delivery) -> str:
        return delivery.event.event_type

    @admin.display(description="last response")
    def last_response(self, delivery: Delivery) -> str:
        code = delivery.last_status_code or "—"
        if not delivery.last_error:
            return str(code) if delivery.last_status_code else "—"
        return format_html(
            '<span title="{}">{} {}</span>',
            delivery.last_error,
            code,
            Truncator(delivery.last_error).chars(60),
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """The form is read-only, but retrying changes state: it needs the change permission."""
        return request.user.has_perm("deliveries.change_delivery")

    @admin.action(
        description="Retry selected deliveries now (fresh set of attempts)", permissions=["retry"]
    )
    def retry_deliveries(self, request: HttpRequest, queryset) -> None:
        by_status = deliveries_count_by_status(queryset)
        waiting = sum(by_status.get(status, 0) for status in DUE_STATUSES)
        retried = deliveries_requeue(
            deliveries=queryset.filter(status__in=DUE_STATUSES), now=timezone.now()
        )
        left_alone = [
            counted(count, what, what)
            for count, what in (
                (by_status.get(Status.DELIVERED, 0), "delivered"),
                (by_status.get(Status.IN_FLIGHT, 0), "in flight"),
                (waiting - len(retried), "being attempted right now"),
            )
            if count
        ]
        message = f"Retrying {counted(len(retried), 'delivery', 'deliveries')} now"
        held = deliveries_held_by_subscriber(retried)
        if held:
            message += (
                f" ({held} of them {'waits' if held == 1 else 'wait'} until the subscriber is "
                "resumed or its circuit closes)"
            )
        if left_alone:
            message += "; left alone: " + ", ".join(left_alone)
        failed = by_status.get(Status.FAILED, 0)
        if failed:
            message += (
                f"; {counted(failed, 'failed delivery', 'failed deliveries')}: replay "
                f"{'it' if failed == 1 else 'them'} from Dead letters "
                f"({reverse('admin:deadletters_deadletter_changelist')})"
            )
        report_action(
            self,
            request,
            model=Delivery,
            ids=retried,
            log_message="Retried now with a fresh set of attempts (admin action retry_deliveries).",
            message=message + ".",
        )
