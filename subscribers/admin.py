from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.utils import timezone

from subscribers.models import Subscriber
from subscribers.secrets import generate_secret
from subscribers.services import subscribers_pause, subscribers_resume


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["name", "endpoint_url", "is_active", "rate_limit_per_second", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "endpoint_url", "=id"]
    readonly_fields = [
        "id",
        "secret",
        "deactivated_reason",
        "deactivated_at",
        "created_at",
        "updated_at",
    ]
    fields = [
        "id",
        "name",
        "endpoint_url",
        "event_types",
        "rate_limit_per_second",
        "is_active",
        "deactivated_reason",
        "deactivated_at",
        "secret",
        "created_at",
        "updated_at",
    ]
    actions = ["pause_subscribers", "resume_subscribers"]
    # An endpoint typed without a scheme means https; Django 6 makes that the default.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(self, request: HttpRequest, obj: Subscriber, form, change: bool) -> None:
        if not change and not obj.secret:
            obj.secret = generate_secret()
        super().save_model(request, obj, form, change)

    @admin.action(
        description="Pause selected subscribers (hold their deliveries)", permissions=["change"]
    )
    def pause_subscribers(self, request: HttpRequest, queryset) -> None:
        paused = subscribers_pause(
            subscribers=queryset, reason=f"paused by {request.user}", now=timezone.now()
        )
        self.message_user(request, f"Paused {paused} subscriber(s).")

    @admin.action(description="Resume selected subscribers", permissions=["change"])
    def resume_subscribers(self, request: HttpRequest, queryset) -> None:
        resumed = subscribers_resume(subscribers=queryset, now=timezone.now())
        self.message_user(
            request,
            f"Resumed {resumed} subscriber(s); held deliveries are queued again within a minute.",
        )
