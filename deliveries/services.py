"""Writes that start or restart deliveries: fan out, requeue, release held work, pick a probe."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from config.db import update_rows
from deliveries.admission import reserve_slots
from deliveries.models import DUE_STATUSES, Delivery
from deliveries.wakeup import wake_dispatchers
from subscribers.models import Subscriber
from subscribers.ratelimit import effective_rate_limit

logger = logging.getLogger(__name__)


def fan_out(
    *, targets: Sequence[tuple[Any, Sequence[Subscriber]]], now: datetime
) -> list[Delivery]:
    """One queued delivery per (event, subscriber), in the caller's transaction.

    `targets` pairs each event id with its matching subscribers. A rate-limited subscriber's
    deliveries are scheduled for their reserved slots right here, so each is claimed once, at the
    right time, instead of being claimed only to learn it must wait. A subscriber whose circuit is
    open gets its deliveries held (not queued): no work until the circuit closes.
    """
    deliveries = [
        Delivery(event_id=event_id, subscriber=subscriber, next_attempt_at=now, enqueued_at=now)
        for event_id, subscribers in targets
        for subscriber in subscribers
    ]
    by_subscriber: dict[Any, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        by_subscriber[delivery.subscriber_id].append(delivery)
    # Row locks for slot reservations are taken in id order, so concurrent fan-outs cannot deadlock.
    for subscriber_id in sorted(by_subscriber, key=str):
        group = by_subscriber[subscriber_id]
        subscriber = group[0].subscriber
        rate = effective_rate_limit(subscriber.rate_limit_per_second)
        if subscriber.circuit_state != Subscriber.Circuit.CLOSED:
            for delivery in group:
                delivery.enqueued_at = None
        elif rate is not None:
            slots = reserve_slots(subscriber_id=subscriber_id, rate=rate, count=len(group), now=now)
            for delivery, slot in zip(group, slots, strict=True):
                delivery.next_attempt_at = delivery.rate_slot_at = slot
    Delivery.objects.bulk_create(deliveries)
    if deliveries:
        wake_dispatchers()
    return deliveries


@transaction.atomic
def deliveries_requeue(*, deliveries: QuerySet[Delivery], now: datetime) -> list:
    """Give finished or waiting deliveries a fresh set of attempts, starting now.

    The event id, and so the `webhook-id`, stays the same: a receiver that already processed the
    event can recognise it. Deliveries in flight are left alone.
    """
    ids = list(
        deliveries.select_for_update(skip_locked=True, of=("self",))
        .exclude(status=Delivery.Status.IN_FLIGHT)
        .values_list("pk", flat=True)
    )
    Delivery.objects.filter(pk__in=ids).update(
        status=Delivery.Status.PENDING,
        attempt_count=0,
        next_attempt_at=now,
        enqueued_at=now,
        rate_slot_at=None,
        lease_until=None,
        delivered_at=None,
        updated_at=now,
    )
    if ids:
        wake_dispatchers()
    return ids


def held_deliveries(*, subscriber_id, now: datetime) -> QuerySet[Delivery]:
    """Due deliveries no dispatcher will take: set aside while the subscriber was paused or open."""
    return Delivery.objects.filter(
        subscriber_id=subscriber_id,
        status__in=DUE_STATUSES,
        next_attempt_at__lte=now,
        enqueued_at=None,
    )


@transaction.atomic
def held_deliveries_release(*, subscriber_id, now: datetime) -> int:
    """Queue a subscriber's held deliveries, oldest first, spread over its rate limit.

    Slots are reserved for the whole backlog at once, so ten thousand held deliveries drain at
    exactly the subscriber's rate, evenly, instead of all waking and all being turned away.
    """
    subscriber = Subscriber.objects.filter(
        pk=subscriber_id, is_active=True, circuit_state=Subscriber.Circuit.CLOSED
    ).first()
    if subscriber is None:
        return 0
    ids = list(
        held_deliveries(subscriber_id=subscriber_id, now=now)
        .select_for_update(skip_locked=True)
        .order_by("next_attempt_at", "created_at")
        .values_list("pk", flat=True)
    )
    if not ids:
        return 0
    rate = effective_rate_limit(subscriber.rate_limit_per_second)
    if rate is None:
        Delivery.objects.filter(pk__in=ids).update(enqueued_at=now, updated_at=now)
    else:
        slots = reserve_slots(subscriber_id=subscriber_id, rate=rate, count=len(ids), now=now)
        update_rows(
            Delivery,
            set_fields=("next_attempt_at", "rate_slot_at", "enqueued_at", "updated_at"),
            where_fields=("id",),
            rows=[(slot, slot, now, now, pk) for pk, slot in zip(ids, slots, strict=True)],
        )
    wake_dispatchers()
    logger.info(
        "held deliveries released", extra={"subscriber_id": str(subscriber_id), "count": len(ids)}
    )
    return len(ids)


def probe_candidate(*, subscriber_id, now: datetime):
    """The oldest held delivery of a subscriber, to be sent as its circuit's probe."""
    return (
        held_deliveries(subscriber_id=subscriber_id, now=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)
        .first()
    )
