"""Reads of events."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from deliveries.models import Delivery
from events.models import Event


def events_list() -> QuerySet[Event]:
    # A correlated subquery is evaluated only for the page of events returned; a join with
    # GROUP BY would aggregate the whole table before the LIMIT.
    delivery_count = (
        Delivery.objects.filter(event=OuterRef("pk"))
        .order_by()
        .values("event")
        .annotate(count=Count("*"))
        .values("count")
    )
    return Event.objects.annotate(
        delivery_count=Coalesce(Subquery(delivery_count, output_field=IntegerField()), 0)
    )


def event_with_deliveries() -> QuerySet[Event]:
    return events_list().prefetch_related(
        Prefetch(
            "deliveries",
            queryset=Delivery.objects.select_related("subscriber").order_by("created_at"),
        )
    )
