from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema_field

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


class CreatedRangeFilterSet(django_filters.FilterSet):
    """Every list can be narrowed to a time range: `created_after` (inclusive), `created_before`."""

    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
