"""What every Herald admin shares: cheap counts on big tables, indexed id search, action reports.

The deliveries, attempts and events tables grow to millions of rows. Django's admin, left alone,
counts them exactly on every page and searches ids by casting every row's UUID to text: both
are full scans. The pieces here keep each changelist to a few index lookups.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.html import format_html

# An exact count is done when PostgreSQL expects fewer rows than this and a plan cheaper than
# EXACT_COUNT_MAX_COST (its cost units, about one sequential page read each): a few thousand
# rows found along an index. A small result that takes a join over millions to find (dead
# letters of one event type, say) is estimated instead.
EXACT_COUNT_BELOW = 10_000
EXACT_COUNT_MAX_COST = 10_000


@dataclass(frozen=True)
class Estimate:
    rows: int
    cost: float


def estimated_count(queryset: QuerySet) -> Estimate | None:
    """PostgreSQL's own estimate of the rows `queryset` returns; None on other databases.

    Unfiltered: the table's row count as ANALYZE (autovacuum) last measured it, from pg_class.
    Filtered: the planner's estimate for the query, which costs a plan, not a scan.
    """
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    if not queryset.query.where and not queryset.query.distinct:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                [connection.ops.quote_name(queryset.model._meta.db_table)],
            )
            row = cursor.fetchone()
        # -1: never analyzed (a new table); count it exactly.
        return Estimate(rows=row[0], cost=0) if row and row[0] >= 0 else None
    plan = json.loads(queryset.order_by().explain(format="json"))[0]["Plan"]
    return Estimate(rows=int(plan["Plan Rows"]), cost=float(plan["Total Cost"]))


class EstimatedCountPaginator(Paginator):
    """Counts exactly only when that is cheap; otherwise shows PostgreSQL's estimate.

    `count_is_estimate` tells the template (admin/pagination.html) to say "about".
    """

    count_is_estimate = False

    @cached_property
    def count(self) -> int:
        estimate = estimated_count(self.object_list)
        if estimate is None or (
            estimate.rows < EXACT_COUNT_BELOW and estimate.cost < EXACT_COUNT_MAX_COST
        ):
            return super().count
        self.count_is_estimate = True
        return estimate.rows


class BigTableAdmin(admin.ModelAdmin):
    """A changelist for a table of millions of rows: estimated counts, ids found by index.

    A search term that is a UUID is looked up with an exact match on `id_search_fields` (the
    primary key and foreign keys, all indexed); other terms go to `search_fields` as usual, so
    list only indexed exact lookups there (`field__exact`) for the big tables.
    """

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # Facet counts ("Show counts") count every filter choice over the whole result: a scan each.
    show_facets = admin.ShowFacets.NEVER
    id_search_fields: tuple[str, ...] = ("id",)

    @admin.display(description="id", ordering="pk")
    def short_id(self, obj: Model) -> str:
        """The first 8 characters (the full id in the tooltip, on the page, and for search)."""
        return format_html('<code title="{}">{}</code>', obj.pk, str(obj.pk)[:8])

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        try:
            value = uuid.UUID(search_term.strip())
        except ValueError:
            return super().get_search_results(request, queryset, search_term)
        match = Q()
        for field in self.id_search_fields:
            match |= Q(**{field: value})
        return queryset.filter(match), False


def counted(number: int, singular: str, plural: str | None = None) -> str:
    """`1 dead letter`, `12 dead letters`."""
    return f"{number:,} {singular if number == 1 else (plural or singular + 's')}"


def were(number: int) -> str:
    return "was" if number == 1 else "were"


def report_action(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    model: type[Model],
    ids: Iterable[Any],
    log_message: str,
    message: str,
) -> None:
    """Tell the operator what an action did and record it in the admin log, per object changed.

    The log entries are inserted together, so acting on ten thousand rows is one statement.
    """
    ids = list(ids)
    if ids:
        LogEntry.objects.log_actions(
            user_id=request.user.pk,
            queryset=model._default_manager.filter(pk__in=ids),
            action_flag=CHANGE,
            change_message=log_message,
        )
    model_admin.message_user(request, message, messages.SUCCESS if ids else messages.WARNING)
