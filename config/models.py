from __future__ import annotations

from django.db import models

from config.scopes import Scope


class ApiKey(models.Model):
    """A client's credential for the JSON API.

    Only a SHA-256 digest of the secret part is stored: a leaked database does not leak keys.
    The short public prefix finds the row without scanning, and is safe to show in the admin.
    """

    name = models.CharField(max_length=100, help_text="Who uses this key, e.g. 'billing-service'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # A list of config.scopes.Scope values. A new key may do nothing until it is granted scopes.
    scopes = models.JSONField(
        default=list,
        blank=True,
        help_text="What this key may do; see the README's API section.",
    )

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: Scope | str) -> bool:
        return scope in self.scopes
