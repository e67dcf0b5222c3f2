from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from subscribers.circuit import circuits_open, circuits_reset
from subscribers.models import Subscriber
from subscribers.secrets import generate_secret
from subscribers.services import subscribers_pause, subscribers_resume
from subscribers.urls_safety import UnsafeEndpoint, check_endpoint_url


class SubscriberForm(forms.ModelForm):
    # An endpoint typed without a scheme means https (Django 6's default too).
    endpoint_url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = Subscriber
        fields = ["name", "endpoint_url", "event_types", "rate_limit_per_second", "is_active"]

    def clean_endpoint_url(self) -> str:
        url = self.cleaned_data["endpoint_url"]
        try:
            check_endpoint_url(url, allow_private=settings.HERALD_ALLOW_PRIVATE_TARGETS)
        except UnsafeEndpoint as exc:
            raise forms.ValidationError(str(exc)) from exc
        return url


class OpenCircuitForm(forms.Form):
    reason = forms.CharField(
        max_length=500, help_text="Shown on the subscriber until the circuit is reset."
    )


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    form = SubscriberForm
    list_display = [
        "name",
        "endpoint_url",
        "is_active",
        "circuit_state",
        "rate_limit_per_second",
        "created_at",
    ]
    list_filter = ["is_active", "circuit_state"]
    search_fields = ["name", "endpoint_url", "=id"]
    readonly_fields = [
        "id",
        "secret",
        "deactivated_reason",
        "deactivated_at",
        "circuit_state",
        "consecutive_failures",
        "circuit_opened_at",
        "circuit_next_probe_at",
        "circuit_manual",
        "circuit_reason",
        "backoff_until",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["id", "name", "endpoint_url", "event_types", "rate_limit_per_second"]}),
        ("Status", {"fields": ["is_active", "deactivated_reason", "deactivated_at"]}),
        (
            "Receiver protection",
            {
                "fields": [
                    "circuit_state",
                    "consecutive_failures",
                    "circuit_opened_at",
                    "circuit_next_probe_at",
                    "circuit_manual",
                    "circuit_reason",
                    "backoff_until",
                ]
            },
        ),
        ("Signing", {"fields": ["secret"], "classes": ["collapse"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    actions = ["pause_subscribers", "resume_subscribers", "open_circuit", "reset_circuit"]

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
            request, f"Resumed {resumed} subscriber(s); held deliveries are sent now."
        )

    @admin.action(description="Open circuit (hold deliveries until reset)", permissions=["change"])
    def open_circuit(self, request: HttpRequest, queryset):
        form = OpenCircuitForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            opened = circuits_open(
                subscribers=queryset,
                reason=f"{form.cleaned_data['reason']} (by {request.user})",
                now=timezone.now(),
            )
            self.message_user(request, f"Opened the circuit of {opened} subscriber(s).")
            return None
        return TemplateResponse(
            request,
            "admin/subscribers/open_circuit.html",
            {
                **self.admin_site.each_context(request),
                "title": "Open circuit",
                "subscribers": queryset,
                "form": form,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            },
        )

    @admin.action(
        description="Reset circuit (close it, send held deliveries now)", permissions=["change"]
    )
    def reset_circuit(self, request: HttpRequest, queryset) -> None:
        reset = circuits_reset(subscribers=queryset, now=timezone.now())
        self.message_user(
            request,
            f"Reset the circuit of {reset} subscriber(s); held deliveries "
            "are being sent at each subscriber's rate limit.",
        )
