"""The demo: three subscribers at the demo receiver and a burst of events through normal ingest.

Used by `manage.py demo` and the dashboard's "Run demo" button. The demo receiver
(`manage.py demo_receiver`, started by `make run`) answers per path, so one run shows a
healthy receiver, a flaky one (retries, timeouts) and a dead one (dead letters) side by side.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction

from events.services import EventInput, events_create
from subscribers.circuit import circuits_reset
from subscribers.models import Subscriber
from subscribers.secrets import demo_secret
from subscribers.services import subscriber_create, subscribers_resume
from subscribers.urls_safety import check_endpoint_url


@dataclass(frozen=True)
class DemoReceiver:
    name: str
    path: str
    behaviour: str  # what the demo receiver does there, for the operator


DEMO_RECEIVERS = (
    DemoReceiver("demo: healthy", "/healthy", "answers 200 at once"),
    DemoReceiver(
        "demo: flaky",
        "/flaky",
        "fails (500) or hangs past the timeout at the receiver's --fail-rate / --slow-rate",
    ),
    DemoReceiver(
        "demo: dead", "/dead", "answers 410 Gone: dead letters at once, subscriber deactivated"
    ),
)
DEMO_PATTERNS = ["demo.*"]
DEMO_EVENT_TYPES = ("demo.order.created", "demo.order.paid", "demo.invoice.sent")


@dataclass(frozen=True)
class DemoRun:
    subscribers: list[tuple[Subscriber, DemoReceiver]]
    events: int
    deliveries: int


@transaction.atomic
def demo_subscribers_ensure(*, receiver_url: str, now: datetime) -> list[Subscriber]:
    """Create the demo subscribers, or set them back to a clean start if they exist.

    Idempotent: they are found by name, pointed at `receiver_url`, given the demo secret (which
    the demo receiver verifies with), resumed and their circuits closed. Raises UnsafeEndpoint if
    the receiver's address is not allowed (HERALD_ALLOW_PRIVATE_TARGETS off for 127.0.0.1).
    """
    secret = demo_secret()
    subscribers = []
    for receiver in DEMO_RECEIVERS:
        url = receiver_url.rstrip("/") + receiver.path
        check_endpoint_url(url, allow_private=settings.HERALD_ALLOW_PRIVATE_TARGETS)
        existing = Subscriber.objects.filter(name=receiver.name).order_by("created_at").first()
        if existing is None:
            subscribers.append(
                subscriber_create(
                    name=receiver.name, endpoint_url=url, event_types=DEMO_PATTERNS, secret=secret
                )
            )
            continue
        # An operator may have rotated the secret or changed the subscriber while trying things:
        # the demo starts again from the secret the receiver knows.
        Subscriber.objects.filter(pk=existing.pk).update(
            endpoint_url=url,
            event_types=DEMO_PATTERNS,
            secret=secret,
            previous_secret="",
            previous_secret_expires_at=None,
            updated_at=now,
        )
        subscribers.append(existing)
    ids = [subscriber.pk for subscriber in subscribers]
    subscribers_resume(subscribers=Subscriber.objects.filter(pk__in=ids), now=now)
    circuits_reset(subscribers=Subscriber.objects.filter(pk__in=ids), now=now)
    return list(Subscriber.objects.filter(pk__in=ids).order_by("name"))


def demo_events_fire(*, count: int) -> tuple[int, int]:
    """A burst of `count` demo events through normal ingestion; returns (events, deliveries)."""
    inputs = [
        EventInput(
            event_type=DEMO_EVENT_TYPES[n % len(DEMO_EVENT_TYPES)],
            payload={
                "order_id": 1000 + n,
                "amount_cents": random.randint(500, 50_000),
                "currency": "EUR",
                "demo": True,
            },
        )
        for n in range(count)
    ]
    ingested = events_create(inputs=inputs)
    return len(ingested), sum(item.delivery_count for item in ingested)


def demo_run(*, receiver_url: str, events: int, now: datetime) -> DemoRun:
    subscribers = demo_subscribers_ensure(receiver_url=receiver_url, now=now)
    fired, deliveries = demo_events_fire(count=events)
    by_name = {receiver.name: receiver for receiver in DEMO_RECEIVERS}
    return DemoRun(
        subscribers=[(subscriber, by_name[subscriber.name]) for subscriber in subscribers],
        events=fired,
        deliveries=deliveries,
    )
