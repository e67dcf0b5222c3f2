"""Reads of events."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from config.db import rows_ever_inserted
from deliveries.models import Delivery
from events.models import Event, Source

# How many of the latest events the admin's event-type filter offers the types of.
RECENT_TYPES_SAMPLE = 5_000


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


def events_with_delivery_summary() -> QuerySet[Event]:
    """Events with `delivery_count` and `delivered_count`, both computed per row shown."""
    delivered = (
        Delivery.objects.filter(event=OuterRef("pk"), status=Delivery.Status.DELIVERED)
        .order_by()
        .values("event")
        .annotate(count=Count("*"))
        .values("count")
    )
    return events_list().annotate(
        delivered_count=Coalesce(Subquery(delivered, output_field=IntegerField()), 0)
    )


def recent_event_types(*, sample: int = RECENT_TYPES_SAMPLE) -> list[str]:
    """The event types among the latest `sample` events, sorted.

    For filter menus: a DISTINCT over the whole table would read every row. The latest events,
    read backwards along the created_at index and made distinct here, are what an operator is
    looking at anyway (and `id IN (latest)` would let the planner scan the table to join them).
    """
    latest = Event.objects.order_by("-created_at").values_list("event_type", flat=True)
    return sorted(set(latest[:sample]))


def event_with_deliveries() -> QuerySet[Event]:
    return (
        events_list()
        .select_related("source")
        .prefetch_related(
            Prefetch(
                "deliveries",
                queryset=Delivery.objects.select_related("subscriber").order_by("created_at"),
            )
        )
    )


def active_source(*, slug: str) -> Source | None:
    """The source receiving at /api/v1/ingest/<slug>; inactive ones receive nothing."""
    return Source.objects.filter(slug=slug, is_active=True).first()


def source_recent_events(*, source: Source, limit: int = 10) -> list[Event]:
    return list(
        Event.objects.filter(source=source)
        .only("id", "event_type", "source_delivery_id", "created_at")
        .order_by("-created_at")[:limit]
    )


def events_ingested_total() -> int:
    """Events ever stored (a counter: pruning history does not lower it); see rows_ever_inserted."""
    return rows_ever_inserted(Event)
