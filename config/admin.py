from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils import timezone

from config.apikeys import api_key_issue, api_keys_revoke
from config.models import ApiKey

# Herald has no public site: the header links to the dashboard instead (admin/base_site.html).
admin.site.site_url = None


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_api_keys"]

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = api_key_issue(api_key=obj)
        self.message_user(
            request,
            f"API key for {obj.name}: {issued.plaintext} — copy it now, it is not shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_api_keys(self, request: HttpRequest, queryset) -> None:
        revoked = api_keys_revoke(api_keys=queryset, now=timezone.now())
        self.message_user(request, f"Revoked {revoked} API key(s).")
