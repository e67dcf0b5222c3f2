"""Writes to subscribers."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from subscribers.models import Subscriber
from subscribers.secrets import generate_secret

logger = logging.getLogger(__name__)


def subscriber_create(
    *,
    name: str,
    endpoint_url: str,
    event_types: list[str],
    rate_limit_per_second: float | None = None,
    secret: str | None = None,
) -> Subscriber:
    return Subscriber.objects.create(
        name=name,
        endpoint_url=endpoint_url,
        event_types=event_types,
        rate_limit_per_second=rate_limit_per_second,
        secret=secret or generate_secret(),
    )


UPDATABLE_FIELDS = ("name", "endpoint_url", "event_types", "rate_limit_per_second", "is_active")


@transaction.atomic
def subscriber_update(*, subscriber: Subscriber, changes: dict[str, Any]) -> Subscriber:
    for field, value in changes.items():
        if field not in UPDATABLE_FIELDS:
            raise ValueError(f"{field} cannot be changed")
        setattr(subscriber, field, value)
    if changes.get("is_active"):
        subscriber.deactivated_reason = ""
        subscriber.deactivated_at = None
    subscriber.save()
    return subscriber


def subscribers_pause(*, subscribers: QuerySet[Subscriber], reason: str, now: datetime) -> int:
    """Stop sending to these subscribers; their deliveries wait, spending no attempts."""
    return subscribers.filter(is_active=True).update(
        is_active=False, deactivated_reason=reason[:500], deactivated_at=now, updated_at=now
    )


def subscribers_resume(*, subscribers: QuerySet[Subscriber], now: datetime) -> int:
    """Send again; the sweeper queues their waiting deliveries within a minute."""
    return subscribers.filter(is_active=False).update(
        is_active=True, deactivated_reason="", deactivated_at=None, updated_at=now
    )


def subscriber_deactivate(*, subscriber_id: Any, reason: str, now: datetime) -> bool:
    """Stop sending to a subscriber; True if this call is the one that deactivated it."""
    changed = subscribers_pause(
        subscribers=Subscriber.objects.filter(pk=subscriber_id), reason=reason, now=now
    )
    if changed:
        logger.warning("subscriber deactivated subscriber_id=%s reason=%s", subscriber_id, reason)
    return bool(changed)
