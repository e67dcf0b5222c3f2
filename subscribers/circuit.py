"""The per-subscriber circuit breaker. Every transition is one conditional UPDATE.

closed --N consecutive failures--> open --cooldown--> half_open (one probe) --success--> closed
                                    ^                                      |
                                    +-------failure (cooldown doubles)-----+

Because each transition is `UPDATE ... WHERE circuit_state = <expected>`, any number of workers
on any number of machines can race and exactly one of them makes each change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Least
from django_q.tasks import async_task

from subscribers.models import Subscriber
from subscribers.signals import circuit_closed, circuit_opened

logger = logging.getLogger(__name__)
Circuit = Subscriber.Circuit

# The delivery engine's job that sends a subscriber's held deliveries (at its rate limit). Named,
# not imported: subscribers depends on no other app, and the job commits with the state change.
RELEASE_HELD_TASK = "deliveries.tasks.release_held"


@dataclass(frozen=True)
class BreakerSettings:
    threshold: int
    cooldown: float
    max_cooldown: float
    probe_lease: float

    @classmethod
    def from_settings(cls) -> BreakerSettings:
        return cls(
            threshold=settings.HERALD_BREAKER_THRESHOLD,
            cooldown=settings.HERALD_BREAKER_COOLDOWN,
            max_cooldown=settings.HERALD_BREAKER_MAX_COOLDOWN,
            probe_lease=settings.HERALD_LEASE_SECONDS,
        )


def circuit_record_success(*, subscriber_id: UUID, now: datetime) -> bool:
    """A 2xx: failures are forgotten; a successful probe closes the circuit. True if it closed."""
    closed = Subscriber.objects.filter(pk=subscriber_id, circuit_state=Circuit.HALF_OPEN).update(
        circuit_state=Circuit.CLOSED,
        consecutive_failures=0,
        circuit_opened_at=None,
        circuit_next_probe_at=None,
        circuit_cooldown_seconds=None,
        circuit_reason="",
        updated_at=now,
    )
    if closed:
        logger.info("circuit closed", extra={"subscriber_id": str(subscriber_id)})
        circuit_closed.send(
            sender=Subscriber,
            subscriber_ids=[subscriber_id],
            reason="a probe delivery succeeded",
            manual=False,
            now=now,
        )
        return True
    Subscriber.objects.filter(pk=subscriber_id, consecutive_failures__gt=0).update(
        consecutive_failures=0
    )
    return False


def circuit_record_failure(
    *, subscriber_id: UUID, now: datetime, reason: str, breaker: BreakerSettings
) -> datetime | None:
    """A failed attempt. Returns when the first probe may go if this failure opened the circuit."""
    # A failed probe re-opens the circuit with twice the cooldown, up to the maximum.
    reopened = Subscriber.objects.filter(pk=subscriber_id, circuit_state=Circuit.HALF_OPEN).update(
        circuit_state=Circuit.OPEN,
        circuit_cooldown_seconds=Least(F("circuit_cooldown_seconds") * 2, breaker.max_cooldown),
        circuit_reason=reason[:500],
        updated_at=now,
    )
    if reopened:
        cooldown = Subscriber.objects.values_list("circuit_cooldown_seconds", flat=True).get(
            pk=subscriber_id
        )
        probe_at = now + timedelta(seconds=cooldown)
        Subscriber.objects.filter(pk=subscriber_id).update(circuit_next_probe_at=probe_at)
        logger.warning(
            "circuit re-opened",
            extra={"subscriber_id": str(subscriber_id), "cooldown_seconds": cooldown},
        )
        return probe_at
    Subscriber.objects.filter(pk=subscriber_id, circuit_state=Circuit.CLOSED).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    probe_at = now + timedelta(seconds=breaker.cooldown)
    opened = Subscriber.objects.filter(
        pk=subscriber_id,
        circuit_state=Circuit.CLOSED,
        consecutive_failures__gte=breaker.threshold,
    ).update(
        circuit_state=Circuit.OPEN,
        circuit_opened_at=now,
        circuit_next_probe_at=probe_at,
        circuit_cooldown_seconds=breaker.cooldown,
        circuit_manual=False,
        circuit_reason=reason[:500],
        updated_at=now,
    )
    if opened:
        logger.warning(
            "circuit opened", extra={"subscriber_id": str(subscriber_id), "reason": reason[:500]}
        )
        circuit_opened.send(
            sender=Subscriber,
            subscriber_ids=[subscriber_id],
            reason=reason[:500],
            manual=False,
            now=now,
        )
        return probe_at
    return None


def circuit_claim_probe(*, subscriber_id: UUID, now: datetime, breaker: BreakerSettings) -> bool:
    """Try to become the one probe of an open circuit whose cooldown is over.

    A half-open circuit whose probe has not reported back within a lease (its worker died) may be
    probed again, so a lost probe cannot leave the circuit half-open forever.
    """
    return bool(
        Subscriber.objects.filter(
            pk=subscriber_id,
            circuit_manual=False,
            circuit_state__in=(Circuit.OPEN, Circuit.HALF_OPEN),
            circuit_next_probe_at__lte=now,
        ).update(
            circuit_state=Circuit.HALF_OPEN,
            circuit_next_probe_at=now + timedelta(seconds=breaker.probe_lease),
            updated_at=now,
        )
    )


@transaction.atomic
def circuits_open(*, subscribers: QuerySet[Subscriber], reason: str, now: datetime) -> list[UUID]:
    """Open by hand: hold every delivery, send no probes, until an operator resets it.

    Returns the ids of the subscribers whose circuit this opened by hand (all of them: opening
    again replaces the reason).
    """
    states = dict(subscribers.select_for_update().values_list("pk", "circuit_state"))
    ids = list(states)
    Subscriber.objects.filter(pk__in=ids).update(
        circuit_state=Circuit.OPEN,
        circuit_manual=True,
        circuit_opened_at=now,
        circuit_next_probe_at=None,
        circuit_reason=reason[:500],
        updated_at=now,
    )
    newly_open = [pk for pk, state in states.items() if state == Circuit.CLOSED]
    if newly_open:
        circuit_opened.send(
            sender=Subscriber, subscriber_ids=newly_open, reason=reason[:500], manual=True, now=now
        )
    return ids


@transaction.atomic
def circuits_reset(*, subscribers: QuerySet[Subscriber], now: datetime) -> list[UUID]:
    """Close the circuits and send what they held now (at each subscriber's rate limit).

    Returns the ids of those this call reset (the others were closed with no failures counted).
    """
    states = dict(
        subscribers.select_for_update()
        .filter(~Q(circuit_state=Circuit.CLOSED) | Q(consecutive_failures__gt=0))
        .values_list("pk", "circuit_state")
    )
    ids = list(states)
    Subscriber.objects.filter(pk__in=ids).update(
        circuit_state=Circuit.CLOSED,
        circuit_manual=False,
        consecutive_failures=0,
        circuit_opened_at=None,
        circuit_next_probe_at=None,
        circuit_cooldown_seconds=None,
        circuit_reason="",
        updated_at=now,
    )
    release_held(ids)
    closed = [pk for pk, state in states.items() if state != Circuit.CLOSED]
    if closed:
        circuit_closed.send(
            sender=Subscriber,
            subscriber_ids=closed,
            reason="reset by an operator",
            manual=True,
            now=now,
        )
    return ids


def release_held(subscriber_ids: list[UUID]) -> None:
    """Queue the job that sends these subscribers' held deliveries; commits with the caller."""
    for subscriber_id in subscriber_ids:
        async_task(RELEASE_HELD_TASK, str(subscriber_id), task_name=f"release {subscriber_id}")
