from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html

from config.admin_tools import counted, report_action, were
from deliveries.selectors import recent_count_display, subscribers_with_recent_deliveries
from subscribers.circuit import circuits_open, circuits_reset
from subscribers.models import Subscriber
from subscribers.secrets import generate_secret
from subscribers.services import (
    subscriber_delete,
    subscribers_pause,
    subscribers_resume,
    subscribers_rotate_secret,
)
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
    """The operator's view of receivers: who is failing, since when, and the levers to pull.

    The list never shows a secret; the change page shows it (collapsed) to give to the receiver.
    The last-hour columns come from deliveries (see deliveries.selectors): the console is the one
    place that reads across apps, so this module imports a deliveries selector.
    """

    form = SubscriberForm
    list_display = [
        "name",
        "endpoint_url",
        "is_active",
        "circuit",
        "rate_limit_per_second",
        "last_hour",
        "last_success_at",
    ]
    list_filter = ["is_active", "circuit_state"]
    search_fields = ["name", "endpoint_url"]
    readonly_fields = [
        "id",
        "secret",
        "previous_secret_expires_at",
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
        ("Signing", {"fields": ["secret", "previous_secret_expires_at"], "classes": ["collapse"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    actions = [
        "pause_subscribers",
        "resume_subscribers",
        "open_circuit",
        "reset_circuit",
        "rotate_secret",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Subscriber]:
        return subscribers_with_recent_deliveries(super().get_queryset(request), now=timezone.now())

    @admin.display(description="circuit", ordering="circuit_state")
    def circuit(self, subscriber: Subscriber) -> str:
        if subscriber.circuit_state == Subscriber.Circuit.CLOSED:
            return "closed"
        how = "opened by hand" if subscriber.circuit_manual else subscriber.circuit_state
        return format_html('<span title="{}">{}</span>', subscriber.circuit_reason, how)

    @admin.display(description="last hour: delivered / failing", ordering="failing_last_hour")
    def last_hour(self, subscriber: Subscriber) -> str:
        return format_html(
            '{} / <span style="{}">{}</span>',
            recent_count_display(subscriber.delivered_last_hour),
            "color: var(--error-fg); font-weight: bold" if subscriber.failing_last_hour else "",
            recent_count_display(subscriber.failing_last_hour),
        )

    @admin.display(description="last success", ordering="last_success_at")
    def last_success_at(self, subscriber: Subscriber):
        return subscriber.last_success_at

    @admin.display(description="previous secret signs until")
    def previous_secret_expires_at(self, subscriber: Subscriber):
        if not subscriber.previous_secret:
            return "-"
        return subscriber.previous_secret_expires_at

    def save_model(self, request: HttpRequest, obj: Subscriber, form, change: bool) -> None:
        if not change and not obj.secret:
            obj.secret = generate_secret()
        super().save_model(request, obj, form, change)

    # Through the service, which collects again when events are fanned out to the subscriber
    # mid-deletion (the API's DELETE does the same).
    def delete_model(self, request: HttpRequest, obj: Subscriber) -> None:
        subscriber_delete(subscriber=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        for subscriber in queryset.order_by():
            subscriber_delete(subscriber=subscriber)

    @admin.action(
        description="Pause selected subscribers (hold their deliveries)", permissions=["change"]
    )
    def pause_subscribers(self, request: HttpRequest, queryset) -> None:
        selected = queryset.count()
        paused = subscribers_pause(
            subscribers=queryset, reason=f"paused by {request.user}", now=timezone.now()
        )
        skipped = selected - len(paused)
        report_action(
            self,
            request,
            model=Subscriber,
            ids=paused,
            log_message="Paused (admin action pause_subscribers).",
            message=f"Paused {counted(len(paused), 'subscriber')}"
            + (f"; {skipped} {were(skipped)} already paused." if skipped else "."),
        )

    @admin.action(description="Resume selected subscribers", permissions=["change"])
    def resume_subscribers(self, request: HttpRequest, queryset) -> None:
        selected = queryset.count()
        resumed = subscribers_resume(subscribers=queryset, now=timezone.now())
        skipped = selected - len(resumed)
        report_action(
            self,
            request,
            model=Subscriber,
            ids=resumed,
            log_message="Resumed (admin action resume_subscribers).",
            message=(
                f"Resumed {counted(len(resumed), 'subscriber')}; held deliveries are sent now"
                + (f"; {skipped} {were(skipped)} already active." if skipped else ".")
                if resumed
                else f"Resumed no subscriber: {counted(skipped, 'was', 'were')} already active."
            ),
        )

    @admin.action(description="Open circuit (hold deliveries until reset)", permissions=["change"])
    def open_circuit(self, request: HttpRequest, queryset):
        form = OpenCircuitForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            already_open = queryset.filter(circuit_state=Subscriber.Circuit.OPEN).count()
            opened = circuits_open(
                subscribers=queryset, reason=f"{reason} (by {request.user})", now=timezone.now()
            )
            report_action(
                self,
                request,
                model=Subscriber,
                ids=opened,
                log_message=f"Opened the circuit by hand: {reason} (admin action open_circuit).",
                message=_opened_message(newly=len(opened) - already_open, already=already_open),
            )
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
        selected = queryset.count()
        reset = circuits_reset(subscribers=queryset, now=timezone.now())
        skipped = selected - len(reset)
        report_action(
            self,
            request,
            model=Subscriber,
            ids=reset,
            log_message="Reset the circuit (admin action reset_circuit).",
            message=(
                f"Reset the circuit of {counted(len(reset), 'subscriber')}; held deliveries "
                "are being sent at each subscriber's rate limit"
                + (f"; {skipped} {were(skipped)} closed already." if skipped else ".")
                if reset
                else f"Reset no circuit: {counted(skipped, 'was', 'were')} closed already."
            ),
        )

    @admin.action(
        description="Rotate signing secret (the old one keeps signing for a while)",
        permissions=["change"],
    )
    def rotate_secret(self, request: HttpRequest, queryset) -> None:
        rotated = subscribers_rotate_secret(subscribers=queryset, now=timezone.now())
        hours = settings.HERALD_SECRET_ROTATION_HOURS
        # The new secrets are not put in the message: messages travel in a cookie.
        report_action(
            self,
            request,
            model=Subscriber,
            ids=rotated,
            log_message=f"Rotated the signing secret; the previous one signs for {hours:g} more "
            "hours (admin action rotate_secret).",
            message=f"Rotated the signing secret of {counted(len(rotated), 'subscriber')}. "
            f"Requests carry both signatures for {hours:g} hours; give each receiver its new "
            "secret from the subscriber's page (Signing).",
        )


def _opened_message(*, newly: int, already: int) -> str:
    parts = [f"opened the circuit of {counted(newly, 'subscriber')}"] if newly else []
    if already:
        # Opening again keeps it open by hand (no probes) and replaces the reason.
        parts.append(
            f"{counted(already, 'subscriber')} {were(already)} open already and now "
            f"{'is' if already == 1 else 'are'} held open by hand with this reason"
        )
    summary = "; ".join(parts)
    return f"{summary[0].upper()}{summary[1:]}. Their deliveries are held until it is reset."
