from __future__ import annotations

from datetime import UTC

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend, OrderingFilter
from rest_framework.settings import api_settings

from subscribers.matching import (
    EVENT_TYPE_MAX_LENGTH,
    PATTERN_REGEX,
    is_valid_pattern,
    schema_pattern,
)

BOOLEAN_CHOICES = [("true", "true"), ("false", "false"), ("True", "True"), ("False", "False")]


# Without this the schema guesses the type from the model field (a date-time for `resolved`).
@extend_schema_field({"type": "string", "enum": ["true", "false"]})
class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """`true` or `false`, anything else a 400.

    django-filter's BooleanFilter reads any other value (`?resolved=yes`) as "no filter" and
    silently returns every row.
    """

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("choices", BOOLEAN_CHOICES)
        kwargs.setdefault("coerce", lambda value: value.lower() == "true")
        super().__init__(**kwargs)


class UTCDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601, converted to UTC: PostgreSQL refuses offsets past ±15:59 (a 500 otherwise)."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError as exc:
            raise forms.ValidationError(
                "Out of range once converted to UTC.", code="invalid"
            ) from exc


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UTCDateTimeField


def single_value(request, name: str) -> str | None:
    """A query parameter that may be given once: repeated, it is ambiguous, so a 400."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ValidationError({name: ["Give this parameter once."]})
    return values[0] if values else None


class CreatedRangeFilterSet(django_filters.FilterSet):
    """Every list can be narrowed to a time range: `created_after` (inclusive), `created_before`.

    A filter given with no value (`?status=`) or twice is a 400: django-filter would ignore the
    first and use one of the second, which is never surely what the client meant.
    """

    created_after = UTCDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        help_text="Only those created at or after this time (ISO 8601, e.g. 2026-11-24T09:00:00Z).",
    )
    created_before = UTCDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        help_text="Only those created before this time (ISO 8601).",
    )

    def is_valid(self) -> bool:
        valid = super().is_valid()
        for name in self.filters:
            if len(self.data.getlist(name)) > 1:
                self.form.add_error(name, "Give this parameter once.")
                valid = False
            elif self.data.get(name) == "":
                self.form.add_error(name, "Must not be empty: leave the parameter out instead.")
                valid = False
        return valid


@extend_schema_field(
    {
        "type": "string",
        "pattern": schema_pattern(PATTERN_REGEX),
        "maxLength": EVENT_TYPE_MAX_LENGTH,
    }
)
class EventTypeFilter(django_filters.CharFilter):
    """An exact event type (`order.created`), a prefix (`order.*`), or `*`, as subscribers use."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault(
            "help_text",
            "An event type (`order.created`) or a prefix pattern (`order.*` matches "
            "`order.created` and `order.line.added`).",
        )
        super().__init__(**kwargs)

    def filter(self, qs, value):
        if value in (None, "", "*"):
            return qs
        if not is_valid_pattern(value):
            raise ValidationError(
                {
                    self.field_name.rsplit("__", 1)[-1]: [
                        "Must be an event type like 'order.created' or a pattern like 'order.*'."
                    ]
                }
            )
        if value.endswith(".*"):
            return qs.filter(**{f"{self.field_name}__startswith": value[:-1]})
        return qs.filter(**{self.field_name: value})


class CreatedOrderingFilter(OrderingFilter):
    """`?ordering=-created_at` (newest first, the default) or `created_at` (oldest first).

    Lists page with a cursor over the creation time, so that is the one ordering offered; any
    other value is a 400 rather than silently ignored.
    """

    ORDERINGS = {"-created_at": ("-created_at", "-id"), "created_at": ("created_at", "id")}

    def get_ordering(self, request, queryset, view) -> tuple[str, ...]:
        value = single_value(request, self.ordering_param)
        if value is None:
            return self.ORDERINGS["-created_at"]
        if value not in self.ORDERINGS:
            raise ValidationError(
                {self.ordering_param: ["Must be 'created_at' (oldest first) or '-created_at'."]}
            )
        return self.ORDERINGS[value]

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "`-created_at`: newest first (the default); `created_at`: oldest "
                "first.",
                "schema": {
                    "type": "string",
                    "enum": list(self.ORDERINGS),
                    "default": "-created_at",
                },
            }
        ]


class KnownQueryParameters(BaseFilterBackend):
    """A query parameter the endpoint does not take is a 400 naming it.

    Ignored, `?stauts=failed` would list every delivery as if the filter had been applied.
    Known: the view's filters, the ordering and paging parameters, and `format`.
    """

    def filter_queryset(self, request, queryset, view):
        known = self.known(view)
        unknown = sorted(set(request.query_params) - known)
        if unknown:
            takes = ", ".join(sorted(known - {api_settings.URL_FORMAT_OVERRIDE})) or "none"
            raise ValidationError(
                {
                    name: [f"Unknown query parameter; this endpoint takes: {takes}."]
                    for name in unknown
                }
            )
        return queryset

    @staticmethod
    def known(view) -> set[str]:
        names = {api_settings.URL_FORMAT_OVERRIDE}
        filterset_class = getattr(view, "filterset_class", None)
        if filterset_class is not None:
            names |= set(filterset_class.base_filters)
        for backend in getattr(view, "filter_backends", []):
            if issubclass(backend, OrderingFilter):
                names.add(backend.ordering_param)
        paginator = getattr(view, "paginator", None)
        if paginator is not None and getattr(view, "action", "list") == "list":
            for attribute in ("cursor_query_param", "page_size_query_param", "page_query_param"):
                if getattr(paginator, attribute, None):
                    names.add(getattr(paginator, attribute))
        return names


class StrictChoiceFilter(django_filters.ChoiceFilter):
    """A choice filter whose 400 lists the values it takes (Django's names none)."""

    def __init__(self, *, choices, **kwargs) -> None:
        takes = ", ".join(str(value) for value, _ in choices)
        kwargs.setdefault(
            "error_messages",
            {"invalid_choice": f"%(value)s is not one of the values this takes: {takes}."},
        )
        super().__init__(choices=choices, **kwargs)
