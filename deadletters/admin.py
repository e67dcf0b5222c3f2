from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from deadletters.models import DeadLetter
from deadletters.services import dead_letters_replay, dead_letters_resolve


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "event_type",
        "subscriber",
        "reason",
        "last_status_code",
        "created_at",
        "resolution",
        "resolved_at",
    ]
    list_filter = [("resolved_at", admin.EmptyFieldListFilter), "resolution", "created_at"]
    search_fields = ["=id", "=delivery__event__id", "delivery__subscriber__name", "reason"]
    list_select_related = ["delivery__event", "delivery__subscriber"]
    raw_id_fields = ["delivery"]
    readonly_fields = [
        "id",
        "delivery",
        "reason",
        "last_status_code",
        "created_at",
        "resolved_at",
        "resolution",
    ]
    fields = readonly_fields
    actions = ["replay_dead_letters", "resolve_dead_letters"]
    show_full_result_count = False

    @admin.display(description="event type", ordering="delivery__event__event_type")
    def event_type(self, letter: DeadLetter) -> str:
        return letter.delivery.event.event_type

    @admin.display(description="subscriber", ordering="delivery__subscriber__name")
    def subscriber(self, letter: DeadLetter) -> str:
        return letter.delivery.subscriber.name

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_act_permission(self, request: HttpRequest) -> bool:
        """Replaying and resolving change state: they need the model's change permission."""
        return request.user.has_perm("deadletters.change_deadletter")

    @admin.action(description="Replay selected dead letters", permissions=["act"])
    def replay_dead_letters(self, request: HttpRequest, queryset) -> None:
        outcome = dead_letters_replay(dead_letters=queryset, now=timezone.now())
        self.message_user(
            request,
            f"Replayed {outcome.done} dead letter(s); {outcome.skipped} were already resolved.",
        )

    @admin.action(description="Mark selected dead letters resolved", permissions=["act"])
    def resolve_dead_letters(self, request: HttpRequest, queryset) -> None:
        outcome = dead_letters_resolve(dead_letters=queryset, now=timezone.now())
        self.message_user(
            request,
            f"Resolved {outcome.done} dead letter(s); {outcome.skipped} were already resolved.",
        )
