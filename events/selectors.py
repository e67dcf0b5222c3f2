"""Reads of events."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from config.db import rows_ever_inserted
from deliveries.models import Delivery
from events.models import Event, Source


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
