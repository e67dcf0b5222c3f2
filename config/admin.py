from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils import timezone

from config.apikeys import api_key_issue, api_keys_revoke
from config.models import ApiKey
from config.scopes import Scope


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Grant only what the client needs: a producer needs only events:publish.",
    )

    class Meta:
        model = ApiKey
        fields = ["name", "scopes"]

    def clean_scopes(self) -> list[str]:
        # Stored in the order scopes are declared, so the admin lists read the same way.
        chosen = set(self.cleaned_data["scopes"])
        return [scope for scope in Scope.values if scope in chosen]


# Herald has no public site: the header links to the dashboard instead (admin/base_site.html).
admin.site.site_url = None


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "scope_list", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "scopes", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke_api_keys"]

    @admin.display(description="scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes) or "(none)"

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
        to_revoke = list(queryset.filter(revoked_at=None))
        revoked = api_keys_revoke(
            api_keys=ApiKey.objects.filter(pk__in=[key.pk for key in to_revoke]), now=timezone.now()
        )
        for api_key in to_revoke:
            self.log_change(request, api_key, "Revoked.")
        self.message_user(request, f"Revoked {revoked} API key(s).")
