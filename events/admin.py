from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from config.admin_tools import BigTableAdmin
from deliveries.models import Delivery
from events.models import Event
from events.selectors import events_with_delivery_summary, recent_event_types
from events.sources_admin import SourceAdmin  # noqa: F401 (registers it)


class DeliveryInline(admin.TabularInline):
    """Where the event went: one row per subscriber, with how its delivery stands."""

    model = Delivery
    fields = [
        "subscriber",
        "status",
        "attempt_count",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
    ]
    readonly_fields = fields
    show_change_link = True
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        return super().get_queryset(request).select_related("subscriber")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class EventTypeFilter(admin.SimpleListFilter):
    """The types of recent events (a DISTINCT over millions of rows would read them all)."""

    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return [(event_type, event_type) for event_type in recent_event_types()]

    def queryset(self, request, queryset):
        return queryset.filter(event_type=self.value()) if self.value() else queryset


class ApiKeyFilter(admin.RelatedFieldListFilter):
    """Events posted through the API, by the key (client) that sent them."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "API key"


@admin.register(Event)
class EventAdmin(BigTableAdmin):
    """Events are history: visible, never edited."""

    list_display = ["short_id", "event_type", "created_at", "sender", "deliveries"]
    list_filter = [EventTypeFilter, "source", ("api_key", ApiKeyFilter), "created_at"]
    search_fields = ["event_type__exact", "idempotency_key__exact", "source_delivery_id__exact"]
    search_help_text = (
        "An event id (the webhook-id), an exact event type, idempotency key or sender's "
        "delivery id."
    )
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        # The payload (up to 256 KiB) is read only on the event's own page.
        return events_with_delivery_summary().defer("payload")

    @admin.display(description="sent by")
    def sender(self, event: Event) -> str:
        """The inbound source that sent it, or the API key that posted it."""
        if event.source:
            return f"source: {event.source.name}"
        return f"API key: {event.api_key.name}" if event.api_key else "—"

    @admin.display(description="delivered")
    def deliveries(self, event: Event) -> str:
        return f"{event.delivered_count} of {event.delivery_count}"

    @admin.display(description="payload")
    def pretty_payload(self, event: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.payload, indent=2, sort_keys=True))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
