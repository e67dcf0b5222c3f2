"""Writes to subscribers."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from subscribers.circuit import release_held
from subscribers.models import Subscriber
from subscribers.secrets import generate_secret
from subscribers.signals import subscribers_disabled

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


# Attempts at deleting a subscriber while events keep being fanned out to it (see below).
DELETE_ATTEMPTS = 5


class SubscriberBusy(Exception):
    """Deliveries kept being created for the subscriber while it was being deleted."""


def subscriber_delete(*, subscriber: Subscriber) -> None:
    """Delete a subscriber with its deliveries and their history.

    An event published meanwhile (an API client's, or Herald's own operational events) can add a
    delivery after the deletion collected the subscriber's deliveries; the foreign key, checked at
    commit, then refuses the whole deletion. Collecting again picks the newcomer up.
    """
    subscriber_id = subscriber.pk  # a deletion that fails at commit has unset the instance's
    for attempt in range(1, DELETE_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                Subscriber.objects.filter(pk=subscriber_id).delete()
            return
        except IntegrityError as exc:
            logger.warning(
                "deliveries created during the deletion; collecting again",
                extra={"subscriber_id": str(subscriber_id), "attempt": attempt},
            )
            if attempt == DELETE_ATTEMPTS:
                raise SubscriberBusy(
                    "Deliveries kept being created for this subscriber while it was being "
                    "deleted; pause it first, then delete it."
                ) from exc


@transaction.atomic
def subscriber_update(*, subscriber: Subscriber, changes: dict[str, Any]) -> Subscriber:
    """Apply an API client's changes to the subscriber as it is now, not as the caller read it.

    The row is read again under a lock and only the changed columns are written, so a deletion
    meanwhile raises Subscriber.DoesNotExist instead of inserting the subscriber back, and the
    circuit columns the workers keep are not overwritten with older values.
    """
    for field in changes:
        if field not in UPDATABLE_FIELDS:
            raise ValueError(f"{field} cannot be changed")
    current = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
    resuming = changes.get("is_active") is True and not current.is_active
    pausing = changes.get("is_active") is False and current.is_active
    for field, value in changes.items():
        setattr(current, field, value)
    if resuming:
        current.deactivated_reason = ""
        current.deactivated_at = None
    if pausing:
        current.deactivated_reason = "paused through the API"
        current.deactivated_at = timezone.now()
    written = [*changes, "updated_at"]
    if resuming or pausing:
        written += ["deactivated_reason", "deactivated_at"]
    current.save(update_fields=written)
    if resuming:
        release_held([current.pk])
    if pausing:
        subscribers_disabled.send(
            sender=Subscriber,
            subscriber_ids=[current.pk],
            reason=current.deactivated_reason,
            manual=True,
            now=current.deactivated_at,
        )
    return current


@transaction.atomic
def subscribers_pause(
    *, subscribers: QuerySet[Subscriber], reason: str, now: datetime, manual: bool = True
) -> list[UUID]:
    """Stop sending to these subscribers; their deliveries wait, spending no attempts.

    Returns the ids of those this call paused (the others were paused already).
    """
    ids = list(subscribers.select_for_update().filter(is_active=True).values_list("pk", flat=True))
    Subscriber.objects.filter(pk__in=ids).update(
        is_active=False, deactivated_reason=reason[:500], deactivated_at=now, updated_at=now
    )
    if ids:
        subscribers_disabled.send(
            sender=Subscriber, subscriber_ids=ids, reason=reason[:500], manual=manual, now=now
        )
    return ids


@transaction.atomic
def subscribers_resume(*, subscribers: QuerySet[Subscriber], now: datetime) -> list[UUID]:
    """Send again, starting with the deliveries held while they were paused.

    Returns the ids of those this call resumed (the others were active already).
    """
    ids = list(subscribers.select_for_update().filter(is_active=False).values_list("pk", flat=True))
    Subscriber.objects.filter(pk__in=ids).update(
        is_active=True, deactivated_reason="", deactivated_at=None, updated_at=now
    )
    release_held(ids)
    return ids


@transaction.atomic
def subscribers_rotate_secret(
    *, subscribers: QuerySet[Subscriber], now: datetime
) -> dict[UUID, str]:
    """Give each subscriber a new signing secret; returns the new secret of each, by id.

    The old secret keeps signing beside the new one for HERALD_SECRET_ROTATION_HOURS, so the
    receiver can switch secrets at its own pace: every request verifies with either. A second
    rotation within that window retires the oldest secret at once: only two ever sign.
    """
    expires_at = now + timedelta(hours=settings.HERALD_SECRET_ROTATION_HOURS)
    rotated = list(subscribers.select_for_update().only("pk", "secret"))
    for subscriber in rotated:
        subscriber.previous_secret = subscriber.secret
        subscriber.previous_secret_expires_at = expires_at
        subscriber.secret = generate_secret()
        subscriber.updated_at = now
    Subscriber.objects.bulk_update(
        rotated, ["secret", "previous_secret", "previous_secret_expires_at", "updated_at"]
    )
    if rotated:
        logger.info(
            "signing secrets rotated subscriber_ids=%s previous_valid_until=%s",
            ",".join(str(subscriber.pk) for subscriber in rotated),
            expires_at.isoformat(),
        )
    return {subscriber.pk: subscriber.secret for subscriber in rotated}


def subscriber_back_off(*, subscriber_id: Any, until: datetime) -> None:
    """Send nothing to this subscriber before `until` (its Retry-After); never shortens one."""
    Subscriber.objects.filter(pk=subscriber_id).filter(
        Q(backoff_until=None) | Q(backoff_until__lt=until)
    ).update(backoff_until=until)


def subscriber_deactivate(*, subscriber_id: Any, reason: str, now: datetime) -> bool:
    """Stop sending to a subscriber; True if this call is the one that deactivated it."""
    changed = subscribers_pause(
        subscribers=Subscriber.objects.filter(pk=subscriber_id),
        reason=reason,
        now=now,
        manual=False,
    )
    if changed:
        logger.warning(
            "subscriber deactivated",
            extra={"subscriber_id": str(subscriber_id), "reason": reason},
        )
    return bool(changed)
