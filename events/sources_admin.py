"""Admin for inbound sources: create, rotate the secret, watch their events and rejections."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join

from events.models import Source
from events.selectors import source_recent_events
from events.sources import (
    InvalidSecret,
    source_rotate_secret,
    source_secret_for,
)

SECRET_HELP = (
    "Leave blank to generate one, then give it to the sender. To use the provider's own "
    "(Stripe's whsec_..., say), paste it here."
)


class SourceAddForm(forms.ModelForm):
    secret = forms.CharField(required=False, max_length=255, help_text=SECRET_HELP)

    class Meta:
        model = Source
        fields = ["slug", "name", "scheme", "secret", "event_type_field", "is_active"]

    def clean(self) -> dict:
        cleaned = super().clean()
        scheme = cleaned.get("scheme")
        if scheme:
            try:
                cleaned["secret"] = source_secret_for(scheme=scheme, secret=cleaned.get("secret"))
            except InvalidSecret as exc:
                self.add_error("secret", str(exc))
        return cleaned


class RotateSecretForm(forms.Form):
    secret = forms.CharField(
        required=False, max_length=255, label="New secret", help_text=SECRET_HELP
    )
    revoke_previous = forms.BooleanField(
        required=False,
        label="Refuse the old secret at once",
        help_text="For a secret that leaked. Otherwise the old one is accepted for "
        "HERALD_SOURCE_ROTATION_HOURS more, while the sender switches.",
    )

    def __init__(self, *args, scheme: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scheme = scheme

    def clean_secret(self) -> str:
        try:
            return source_secret_for(scheme=self.scheme, secret=self.cleaned_data["secret"])
        except InvalidSecret as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = [
        "slug",
        "name",
        "scheme",
        "is_active",
        "rejected_count",
        "last_rejected_at",
        "created_at",
    ]
    list_filter = ["scheme", "is_active"]
    search_fields = ["slug", "name"]
    readonly_fields = [
        "id",
        "scheme",
        "ingest_path",
        "secret_status",
        "rejected_count",
        "last_rejected_at",
        "last_rejection_reason",
        "recent_events",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["id", "slug", "name", "scheme", "ingest_path", "is_active"]}),
        ("Verification", {"fields": ["secret_status", "event_type_field"]}),
        (
            "Rejected requests (bad or missing signatures)",
            {"fields": ["rejected_count", "last_rejected_at", "last_rejection_reason"]},
        ),
        ("Recent events", {"fields": ["recent_events"]}),
        (None, {"fields": ["created_at", "updated_at"]}),
    ]
    add_fieldsets = [
        (None, {"fields": ["slug", "name", "scheme", "secret", "event_type_field", "is_active"]})
    ]

    def get_form(self, request: HttpRequest, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = SourceAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj=None):
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Source, form, change: bool) -> None:
        if not change:
            obj.secret = form.cleaned_data["secret"]  # the one given, or generated
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(request, _secret_message(obj), messages.WARNING)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/rotate-secret/",
                self.admin_site.admin_view(self.rotate_secret_view),
                name="events_source_rotate_secret",
            ),
            *super().get_urls(),
        ]

    def rotate_secret_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        source = self.get_object(request, unquote(object_id))
        if source is None:
            raise Http404("No such source.")
        if not self.has_change_permission(request, source):
            raise PermissionDenied
        form = RotateSecretForm(
            request.POST if request.method == "POST" else None, scheme=source.scheme
        )
        if form.is_valid():
            revoke = form.cleaned_data["revoke_previous"]
            source = source_rotate_secret(
                source=source,
                now=timezone.now(),
                secret=form.cleaned_data["secret"],
                keep_previous=not revoke,
            )
            self.log_change(
                request,
                source,
                "Rotated the secret; the previous one was refused at once."
                if revoke
                else "Rotated the secret; the previous one stays valid for the grace period.",
            )
            self.message_user(request, _secret_message(source), messages.WARNING)
            return redirect(reverse("admin:events_source_change", args=[source.pk]))
        return TemplateResponse(
            request,
            "admin/events/source/rotate_secret.html",
            {
                **self.admin_site.each_context(request),
                "title": f"Rotate the secret of {source}",
                "source": source,
                "form": form,
                "opts": self.model._meta,
            },
        )

    @admin.display(description="URL to give the provider")
    def ingest_path(self, source: Source) -> str:
        return format_html(
            "<code>https://&lt;this host&gt;{}</code>", reverse("ingest", args=[source.slug])
        )

    @admin.display(description="secret")
    def secret_status(self, source: Source) -> str:
        now = timezone.now()
        previous = (
            format_html(
                "; the previous one is accepted until {}",
                formats.localize(timezone.localtime(source.previous_secret_expires_at)),
            )
            if len(source.valid_secrets(now)) > 1
            else ""
        )
        return format_html(
            'Set, not shown again{}. <a href="{}">Rotate the secret…</a>',
            previous,
            reverse("admin:events_source_rotate_secret", args=[source.pk]),
        )

    @admin.display(description="latest")
    def recent_events(self, source: Source) -> str:
        events = source_recent_events(source=source)
        if not events:
            return "None yet."
        rows = format_html_join(
            "",
            '<li><a href="{}">{}</a> {} <small>{}</small></li>',
            (
                (
                    reverse("admin:events_event_change", args=[event.pk]),
                    event.event_type,
                    formats.localize(timezone.localtime(event.created_at)),
                    event.source_delivery_id,
                )
                for event in events
            ),
        )
        every = reverse("admin:events_event_changelist") + f"?source__id__exact={source.pk}"
        return format_html('<ul>{}</ul><a href="{}">All events from this source</a>', rows, every)


def _secret_message(source: Source) -> str:
    return (
        f"Secret for source {source.slug}: {source.secret} — give it to the sender and copy "
        "it now: it is not shown again."
    )
