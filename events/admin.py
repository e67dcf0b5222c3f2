from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from deliveries.models import Delivery
from events.models import Event
from events.sources_admin import SourceAdmin  # noqa: F401 (registers it)


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = [
        "subscriber",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_status_code",
        "delivered_at",
    ]
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    """Events are history: visible, never edited."""

    list_display = ["id", "event_type", "created_at", "api_key", "source"]
    list_filter = ["event_type", "created_at", "source"]
    search_fields = ["=id", "event_type", "idempotency_key", "=source_delivery_id"]
    date_hierarchy = "created_at"
    list_select_related = ["api_key", "source"]
    fields = [
        "id",
        "event_type",
        "pretty_payload",
        "api_key",
        "idempotency_key",
        "source",
        "source_delivery_id",
        "created_at",
    ]
    readonly_fields = fields
    inlines = [DeliveryInline]
    show_full_result_count = False

    @admin.display(description="payload")
    def pretty_payload(self, event: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.payload, indent=2, sort_keys=True))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
