"""The receiver-protection gate: may a claimed delivery be sent now, later, or not until released?

Checked in the claim transaction, in order: the subscriber is active; no Retry-After back-off is
running; its circuit is closed (or this delivery wins the one probe); the rate limiter has a slot
and the send conforms. A delivery turned away spends no attempt.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from deliveries.models import Delivery
from subscribers.circuit import BreakerSettings, circuit_claim_probe
from subscribers.models import Subscriber
from subscribers.ratelimit import (
    effective_rate_limit,
    gcra_after_send,
    gcra_conforms,
    gcra_reserve,
)


class Verdict(enum.Enum):
    SEND = "send"
    HOLD = "hold"  # wait, unqueued, until the subscriber is resumed or its circuit closes
    LATER = "later"  # try again at `at`


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    at: datetime | None = None
    rate_slot: datetime | None = None  # set when `at` is a slot the rate limiter reserved
    probe: bool = False


SEND = Admission(Verdict.SEND)
HOLD = Admission(Verdict.HOLD)


def admission_decide(*, delivery: Delivery, now: datetime) -> Admission:
    subscriber = delivery.subscriber
    if not subscriber.is_active:
        return HOLD
    if subscriber.backoff_until and subscriber.backoff_until > now:
        return Admission(Verdict.LATER, at=subscriber.backoff_until)
    if subscriber.circuit_state != Subscriber.Circuit.CLOSED:
        breaker = BreakerSettings.from_settings()
        if circuit_claim_probe(subscriber_id=subscriber.pk, now=now, breaker=breaker):
            return Admission(Verdict.SEND, probe=True)
        return HOLD
    rate = effective_rate_limit(subscriber.rate_limit_per_second)
    if rate is None:
        return SEND
    return _rate_limit(delivery=delivery, rate=rate, now=now)


def _rate_limit(*, delivery: Delivery, rate: float, now: datetime) -> Admission:
    """A slot for the delivery if it has none, then the send itself must conform.

    A delivery whose slot has come but that would break the limit (late deliveries after a stall
    used the capacity) takes a new slot at the end of the line: the rate holds, and no two
    deliveries are given the same moment.
    """
    # The row lock serialises one subscriber's reservations across every worker and machine.
    tats = (
        Subscriber.objects.select_for_update()
        .values("rate_limit_tat", "rate_limit_sent_tat")
        .get(pk=delivery.subscriber_id)
    )
    sent_tat = tats["rate_limit_sent_tat"]
    # The line starts after both every slot handed out and every request sent.
    tat = max(filter(None, (tats["rate_limit_tat"], sent_tat)), default=None)
    if delivery.rate_slot_at is None:
        reservation = gcra_reserve(tat=tat, now=now, rate_per_second=rate)
        tat = reservation.tat
        if reservation.slot > now:
            return _later(delivery, tat=tat, slot=reservation.slot)
    if gcra_conforms(tat=sent_tat, now=now, rate_per_second=rate):
        Subscriber.objects.filter(pk=delivery.subscriber_id).update(
            rate_limit_tat=tat,
            rate_limit_sent_tat=gcra_after_send(tat=sent_tat, now=now, rate_per_second=rate),
        )
        return SEND
    reservation = gcra_reserve(tat=tat, now=now, rate_per_second=rate)
    return _later(delivery, tat=reservation.tat, slot=reservation.slot)


def _later(delivery: Delivery, *, tat: datetime, slot: datetime) -> Admission:
    Subscriber.objects.filter(pk=delivery.subscriber_id).update(rate_limit_tat=tat)
    return Admission(Verdict.LATER, at=slot, rate_slot=slot)


def reserve_slots(*, subscriber_id, rate: float, count: int, now: datetime) -> list[datetime]:
    """Reserve `count` consecutive slots at once, for a backlog. Call inside a transaction."""
    tat = (
        Subscriber.objects.select_for_update()
        .values_list("rate_limit_tat", flat=True)
        .get(pk=subscriber_id)
    )
    slots = []
    for _ in range(count):
        reservation = gcra_reserve(tat=tat, now=now, rate_per_second=rate)
        slots.append(reservation.slot)
        tat = reservation.tat
    Subscriber.objects.filter(pk=subscriber_id).update(rate_limit_tat=tat)
    return slots
