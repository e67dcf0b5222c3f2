from __future__ import annotations

from django.contrib import admin

from deliveries.models import Delivery, DeliveryAttempt


class AttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = [
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "error",
        "response_excerpt",
        "request_headers",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    """Deliveries are history; the engine changes them, operators act through actions."""

    list_display = [
        "id",
        "event",
        "subscriber",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_status_code",
        "created_at",
    ]
    list_filter = ["status", "created_at"]
    search_fields = ["=id", "=event__id", "subscriber__name"]
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
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
