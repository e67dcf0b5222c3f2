from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import Truncator
from django.utils.timesince import timesince

from config.admin_tools import BigTableAdmin, counted, report_action, were
from deadletters.models import DeadLetter
from deadletters.selectors import dead_letter_event_types
from deadletters.services import dead_letters_replay, dead_letters_resolve


class StateFilter(admin.SimpleListFilter):
    """Unresolved (the work queue), replayed or resolved; each served by an index."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("unresolved", "Unresolved"),
            (DeadLetter.Resolution.REPLAYED, "Replayed"),
            (DeadLetter.Resolution.RESOLVED, "Resolved"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "unresolved":
            return queryset.filter(resolved_at=None)
        if self.value() in DeadLetter.Resolution.values:
            return queryset.filter(resolution=self.value())
        return queryset


class SubscriberFilter(admin.RelatedFieldListFilter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "subscriber"


class EventTypeFilter(admin.SimpleListFilter):
    title = "event type"
    parameter_name = "event_type"

    def lookups(self, request, model_admin):
        return [(event_type, event_type) for event_type in dead_letter_event_types()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(delivery__event__event_type=self.value())
        return queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(BigTableAdmin):
    list_display = [
        "short_id",
        "short_reason",
        "last_response",
        "subscriber",
        "event_type",
        "age",
        "resolution",
    ]
    list_filter = [StateFilter, ("delivery__subscriber", SubscriberFilter), EventTypeFilter]
    id_search_fields = ("id", "delivery_id", "delivery__event_id")
    search_fields = ["delivery__subscriber__name__exact"]
    search_help_text = "A dead letter, delivery or event id, or a subscriber's exact name."
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeadLetter]:
        return super().get_queryset(request).defer("delivery__event__payload")

    @admin.display(description="reason")
    def short_reason(self, letter: DeadLetter) -> str:
        return Truncator(letter.reason).chars(80)

    @admin.display(description="last response")
    def last_response(self, letter: DeadLetter) -> str:
        code = letter.last_status_code or "no response"
        error = letter.last_error
        return f"{code}: {Truncator(error).chars(60)}" if error else str(code)

    @admin.display(description="event type", ordering="delivery__event__event_type")
    def event_type(self, letter: DeadLetter) -> str:
        return letter.delivery.event.event_type

    @admin.display(description="subscriber", ordering="delivery__subscriber__name")
    def subscriber(self, letter: DeadLetter) -> str:
        return letter.delivery.subscriber.name

    @admin.display(description="age", ordering="-created_at")
    def age(self, letter: DeadLetter) -> str:
        return timesince(letter.created_at)

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
        report_action(
            self,
            request,
            model=DeadLetter,
            ids=outcome.ids,
            log_message="Replayed (admin action replay_dead_letters).",
            message=f"Replayed {counted(outcome.done, 'dead letter')}"
            + (
                f"; {outcome.skipped} {were(outcome.skipped)} already resolved."
                if outcome.skipped
                else "."
            ),
        )

    @admin.action(description="Mark selected dead letters resolved", permissions=["act"])
    def resolve_dead_letters(self, request: HttpRequest, queryset) -> None:
        outcome = dead_letters_resolve(dead_letters=queryset, now=timezone.now())
        report_action(
            self,
            request,
            model=DeadLetter,
            ids=outcome.ids,
            log_message="Resolved without replaying (admin action resolve_dead_letters).",
            message=f"Resolved {counted(outcome.done, 'dead letter')}"
            + (
                f"; {outcome.skipped} {were(outcome.skipped)} already resolved."
                if outcome.skipped
                else "."
            ),
        )
