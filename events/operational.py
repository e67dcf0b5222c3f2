"""Herald's operational events: what goes wrong in delivery, published like any other event.

Teams subscribe to `herald.*` (or to exact types) and alert on them with the tools they already
use for webhooks. Each is published in the transaction of the state change it reports, through
the same fan-out as any event, so it is as durable as they are.

- `herald.delivery.exhausted`: a delivery failed for good and became a dead letter (attempts ran
  out, or the receiver answered 410 Gone). Payload: the dead letter, delivery, event and
  subscriber ids, the event type, attempts, last status code and reason.
- `herald.subscriber.disabled`: a subscriber stopped receiving (410 Gone, or paused by an
  operator). Payload: subscriber id and name, reason, `manual`.
- `herald.circuit.opened`: a subscriber's circuit opened (failures, or an operator).
- `herald.circuit.closed`: it closed again (a probe succeeded, or an operator reset it).

No loops: a dead letter of an operational event is not announced (a receiver failing on
`herald.*` events would otherwise feed itself), a circuit announces only its transitions (not each
failed probe, which the cooldown spaces out anyway), and a disabled or open subscriber gets its
own announcement held or not at all, like any delivery.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from deliveries.models import Delivery
from deliveries.signals import delivery_dead_lettered
from events.models import Event
from events.services import operational_events_publish
from subscribers.matching import OPERATIONAL_PREFIX
from subscribers.models import Subscriber
from subscribers.signals import circuit_closed, circuit_opened, subscribers_disabled

RESERVED_PREFIX = OPERATIONAL_PREFIX
DELIVERY_EXHAUSTED = "herald.delivery.exhausted"
SUBSCRIBER_DISABLED = "herald.subscriber.disabled"
CIRCUIT_OPENED = "herald.circuit.opened"
CIRCUIT_CLOSED = "herald.circuit.closed"
OPERATIONAL_EVENT_TYPES = (DELIVERY_EXHAUSTED, SUBSCRIBER_DISABLED, CIRCUIT_OPENED, CIRCUIT_CLOSED)


def announce_dead_letter(
    sender, *, delivery: Delivery, dead_letter, now: datetime, **kwargs
) -> None:
    event_type = Event.objects.values_list("event_type", flat=True).get(pk=delivery.event_id)
    if event_type.startswith(OPERATIONAL_PREFIX):
        return  # never announce the failure of an announcement
    subscriber_name = Subscriber.objects.values_list("name", flat=True).get(
        pk=delivery.subscriber_id
    )
    payload = {
        "dead_letter_id": str(dead_letter.pk),
        "delivery_id": str(delivery.pk),
        "event_id": str(delivery.event_id),
        "event_type": event_type,
        "subscriber_id": str(delivery.subscriber_id),
        "subscriber_name": subscriber_name,
        "attempts": delivery.attempt_count,
        "last_status_code": dead_letter.last_status_code,
        "reason": dead_letter.reason,
        "at": now.isoformat(),
    }
    operational_events_publish(events=[(DELIVERY_EXHAUSTED, payload)], now=now)


def _announcer(event_type: str):
    def announce(
        sender, *, subscriber_ids: list, reason: str, manual: bool, now: datetime, **kwargs
    ) -> None:
        names = dict(Subscriber.objects.filter(pk__in=subscriber_ids).values_list("pk", "name"))
        operational_events_publish(
            events=[
                (event_type, _subscriber_payload(pk, names.get(pk, ""), reason, manual, now))
                for pk in subscriber_ids
            ],
            now=now,
        )

    return announce


def _subscriber_payload(
    subscriber_id: Any, name: str, reason: str, manual: bool, now: datetime
) -> dict[str, Any]:
    return {
        "subscriber_id": str(subscriber_id),
        "subscriber_name": name,
        "reason": reason,
        "manual": manual,
        "at": now.isoformat(),
    }


announce_circuit_opened = _announcer(CIRCUIT_OPENED)
announce_circuit_closed = _announcer(CIRCUIT_CLOSED)
announce_subscribers_disabled = _announcer(SUBSCRIBER_DISABLED)


def connect() -> None:
    """Publish the announcements of the engine and of subscribers (EventsConfig.ready)."""
    delivery_dead_lettered.connect(announce_dead_letter, dispatch_uid="herald-exhausted")
    circuit_opened.connect(announce_circuit_opened, dispatch_uid="herald-circuit-opened")
    circuit_closed.connect(announce_circuit_closed, dispatch_uid="herald-circuit-closed")
    subscribers_disabled.connect(
        announce_subscribers_disabled, dispatch_uid="herald-subscriber-disabled"
    )
