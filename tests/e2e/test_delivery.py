"""The whole pipeline with a real qcluster and real receivers on 127.0.0.1."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from deadletters.models import DeadLetter
from deliveries.models import Delivery
from events.services import event_create
from subscribers.models import Subscriber
from tests.e2e.conftest import wait_until
from tests.receiver import Reply

pytestmark = pytest.mark.e2e


def _status(delivery_id) -> str:
    return Delivery.objects.get(pk=delivery_id).status


def test_event_reaches_every_matching_subscriber_signed(cluster, api, receiver, make_subscriber):
    orders = make_subscriber(endpoint_url=receiver.url("/orders"), event_types=["order.*"])
    everything = make_subscriber(endpoint_url=receiver.url("/all"), event_types=["*"])
    make_subscriber(endpoint_url=receiver.url("/invoices"), event_types=["invoice.paid"])

    response = api.post(
        "/api/v1/events",
        {"event_type": "order.created", "payload": {"order_id": 7}},
        format="json",
    )

    assert response.status_code == 202, response.content
    event_id = response.json()["id"]
    assert response.json()["delivery_count"] == 2
    receiver.wait_for(2)
    for subscriber, path in ((orders, "/orders"), (everything, "/all")):
        (request,) = receiver.received(path)
        body = Webhook(subscriber.secret).verify(request.body, request.headers)
        assert body["data"] == {"order_id": 7}
        assert body["type"] == "order.created"
        assert request.headers["webhook-id"] == event_id
    assert receiver.received("/invoices") == []
    wait_until(
        lambda: set(Delivery.objects.values_list("status", flat=True)) == {"delivered"},
        timeout=10,
        message="both deliveries are recorded as delivered",
    )


def test_failed_delivery_is_retried_after_its_delay_then_succeeds(
    cluster, receiver, make_subscriber
):
    make_subscriber(endpoint_url=receiver.url("/flaky"))
    receiver.then("/flaky", Reply(status=500, body=b"try later"))

    event_create(event_type="order.created", payload={"n": 1})

    first, second = receiver.wait_for(2, path="/flaky")
    assert 1.0 <= second.at - first.at <= 3.0  # the 1 s retry, +10% jitter, + poll
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    delivery = Delivery.objects.get()
    wait_until(lambda: _status(delivery.pk) == "delivered", timeout=10, message="delivered")
    attempts = list(
        delivery.attempts.order_by("number").values_list("status_code", "response_excerpt")
    )
    assert attempts == [(500, "try later"), (200, '{"ok": true}')]


def test_exhausted_delivery_is_dead_lettered_and_replay_delivers_it(
    cluster, api, receiver, make_subscriber
):
    make_subscriber(endpoint_url=receiver.url("/down"))
    receiver.default("/down", Reply(status=503))

    ingested = event_create(event_type="order.created", payload={"n": 2})

    receiver.wait_for(3, path="/down")  # 1 attempt + 2 retries
    wait_until(lambda: DeadLetter.objects.exists(), timeout=10, message="a dead letter exists")
    letter = DeadLetter.objects.get()
    assert letter.reason == "all 3 attempts failed; last: HTTP 503"
    time.sleep(2)
    assert len(receiver.received("/down")) == 3  # nothing more once dead

    receiver.default("/down", Reply(status=200))
    response = api.post(f"/api/v1/dead-letters/{letter.pk}/replay")

    assert response.status_code == 202, response.content
    requests = receiver.wait_for(4, path="/down")
    assert {r.headers["webhook-id"] for r in requests} == {str(ingested.event.id)}
    wait_until(lambda: _status(letter.delivery_id) == "delivered", timeout=10, message="delivered")


def test_410_gone_fails_at_once_and_deactivates_the_subscriber(cluster, receiver, make_subscriber):
    subscriber = make_subscriber(endpoint_url=receiver.url("/gone"))
    receiver.default("/gone", Reply(status=410))

    event_create(event_type="order.created", payload={})

    receiver.wait_for(1, path="/gone")
    wait_until(lambda: DeadLetter.objects.exists(), timeout=10, message="a dead letter exists")
    subscriber.refresh_from_db()
    assert not subscriber.is_active
    assert Delivery.objects.get().status == "failed"
    assert event_create(event_type="order.created", payload={}).delivery_count == 0
    time.sleep(1.5)
    assert len(receiver.received("/gone")) == 1


def test_delivery_queued_for_later_goes_at_its_time_not_before(cluster, receiver, make_subscriber):
    subscriber = make_subscriber(endpoint_url=receiver.url("/later"))
    event = event_create(event_type="order.created", payload={}).event
    receiver.wait_for(1, path="/later")  # the immediate delivery
    eta = timezone.now() + timedelta(seconds=3)

    Delivery.objects.create(
        event=event,
        subscriber=make_subscriber(endpoint_url=subscriber.endpoint_url),
        next_attempt_at=eta,
        enqueued_at=timezone.now(),
    )

    _, delayed = receiver.wait_for(2, path="/later", timeout=15)
    lateness = delayed.at - eta.timestamp()
    assert 0 <= lateness < 1.5, f"ran {lateness:.2f}s after its eta"


def test_paused_subscriber_gets_nothing_until_resumed(cluster, receiver, make_subscriber):
    subscriber = make_subscriber(endpoint_url=receiver.url("/paused"))
    Subscriber.objects.filter(pk=subscriber.pk).update(is_active=False)
    # A delivery created while active, then queued: it must not go out while paused.
    delivery = Delivery.objects.create(
        event=event_create(event_type="order.created", payload={}).event,
        subscriber=subscriber,
        next_attempt_at=timezone.now(),
        enqueued_at=timezone.now(),
    )

    wait_until(
        lambda: Delivery.objects.get(pk=delivery.pk).enqueued_at is None,
        timeout=10,
        message="the dispatcher saw the paused subscriber and set the delivery aside",
    )
    assert receiver.received("/paused") == []
    assert Delivery.objects.get(pk=delivery.pk).attempt_count == 0
