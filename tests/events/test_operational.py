"""Operational events: Herald tells subscribers of herald.* when delivery goes wrong."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.utils import timezone

from deadletters.models import DeadLetter
from deliveries import policy
from deliveries.dispatcher import Dispatcher
from deliveries.models import Delivery
from deliveries.tasks import probe
from events.models import Event
from events.services import event_create
from subscribers.circuit import circuits_open
from subscribers.models import Subscriber
from tests.receiver import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_attempt_then_dead(settings):
    settings.HERALD_RETRY_SCHEDULE = []  # a failed attempt is final: dead letters come at once
    settings.HERALD_BREAKER_THRESHOLD = 3


def _deliver() -> None:
    Dispatcher(concurrency=4, poll=0.05, send_options=policy.send_options()).run_until_idle(
        timeout=20
    )


def _operational(event_type: str) -> list[Event]:
    return list(Event.objects.filter(event_type=event_type).order_by("created_at"))


def _bodies(receiver, path: str) -> list[dict]:
    return [json.loads(request.body) for request in receiver.received(path)]


def test_an_exhausted_delivery_is_announced_to_herald_subscribers_only(make_subscriber, receiver):
    receiver.default("/shop", Reply(status=500))
    shop = make_subscriber(name="shop", endpoint_url=receiver.url("/shop"), event_types=["order.*"])
    ops = make_subscriber(name="ops", endpoint_url=receiver.url("/ops"), event_types=["herald.*"])
    make_subscriber(name="firehose", endpoint_url=receiver.url("/all"), event_types=["*"])
    event = event_create(event_type="order.created", payload={"order_id": 1}).event

    _deliver()

    (announcement,) = _bodies(receiver, "/ops")
    assert announcement["type"] == "herald.delivery.exhausted"
    data = announcement["data"]
    delivery = Delivery.objects.get(event=event, subscriber=shop)
    assert data["delivery_id"] == str(delivery.pk)
    assert data["event_id"] == str(event.pk)
    assert data["event_type"] == "order.created"
    assert data["subscriber_id"] == str(shop.pk)
    assert data["subscriber_name"] == "shop"
    assert data["attempts"] == 1
    assert data["last_status_code"] == 500
    assert data["dead_letter_id"] == str(DeadLetter.objects.get(delivery=delivery).pk)
    # `*` is for what producers publish: the firehose got the order, not the announcement.
    assert [body["type"] for body in _bodies(receiver, "/all")] == ["order.created"]
    assert Delivery.objects.filter(subscriber=ops).count() == 1


def test_a_failing_announcement_is_not_announced_again(make_subscriber, receiver):
    receiver.default("/shop", Reply(status=500))
    receiver.default("/ops", Reply(status=500))
    make_subscriber(name="shop", endpoint_url=receiver.url("/shop"), event_types=["order.*"])
    make_subscriber(name="ops", endpoint_url=receiver.url("/ops"), event_types=["herald.*"])
    event_create(event_type="order.created", payload={})

    _deliver()

    assert len(_operational("herald.delivery.exhausted")) == 1
    assert DeadLetter.objects.count() == 2  # the order's, and the announcement's: no third
    assert len(receiver.received("/ops")) == 1


def test_a_circuit_opening_and_closing_is_announced_once_each(make_subscriber, receiver, settings):
    settings.HERALD_RETRY_SCHEDULE = [0.01] * 5
    settings.HERALD_BREAKER_COOLDOWN = 0.01
    receiver.then("/shop", *[Reply(status=503)] * 3)  # then 200s: the probe succeeds
    shop = make_subscriber(name="shop", endpoint_url=receiver.url("/shop"), event_types=["order.*"])
    make_subscriber(name="ops", endpoint_url=receiver.url("/ops"), event_types=["herald.circuit.*"])
    for n in range(3):
        event_create(event_type="order.created", payload={"n": n})

    _deliver()
    Subscriber.objects.filter(pk=shop.pk).update(circuit_next_probe_at=timezone.now())
    probe(str(shop.pk))  # the probe job, as django-q2 would run it when the cooldown ends
    _deliver()

    shop.refresh_from_db()
    assert shop.circuit_state == "closed"
    types = [body["type"] for body in _bodies(receiver, "/ops")]
    assert types == ["herald.circuit.opened", "herald.circuit.closed"]
    opened, closed = (body["data"] for body in _bodies(receiver, "/ops"))
    assert opened["subscriber_id"] == str(shop.pk)
    assert opened["manual"] is False
    assert opened["reason"] == "HTTP 503"
    assert closed["manual"] is False


def test_opening_and_resetting_a_circuit_by_hand_is_announced(api, make_subscriber):
    shop = make_subscriber(name="shop")
    ops = make_subscriber(name="ops", event_types=["herald.*"])
    url = f"/api/v1/subscribers/{shop.pk}"

    api.post(f"{url}/open-circuit", {"reason": "maintenance"}, format="json")
    api.post(f"{url}/open-circuit", {"reason": "still"}, format="json")  # already open: no news
    api.post(f"{url}/reset-circuit")

    (opened,) = _operational("herald.circuit.opened")
    (closed,) = _operational("herald.circuit.closed")
    assert opened.payload["manual"] is True
    assert opened.payload["reason"] == "maintenance"
    assert opened.payload["subscriber_name"] == "shop"
    assert closed.payload["reason"] == "reset by an operator"
    assert Delivery.objects.filter(subscriber=ops).count() == 2


def test_a_410_disables_the_subscriber_and_says_so(make_subscriber, receiver):
    receiver.default("/shop", Reply(status=410))
    shop = make_subscriber(name="shop", endpoint_url=receiver.url("/shop"), event_types=["order.*"])
    make_subscriber(name="ops", endpoint_url=receiver.url("/ops"), event_types=["herald.*"])
    event_create(event_type="order.created", payload={})

    _deliver()

    types = sorted(body["type"] for body in _bodies(receiver, "/ops"))
    assert types == ["herald.delivery.exhausted", "herald.subscriber.disabled"]
    (disabled,) = _operational("herald.subscriber.disabled")
    assert disabled.payload["subscriber_id"] == str(shop.pk)
    assert disabled.payload["manual"] is False
    assert "410 Gone" in disabled.payload["reason"]


def test_pausing_through_the_api_is_announced(api, make_subscriber):
    shop = make_subscriber(name="shop")
    make_subscriber(name="ops", event_types=["herald.subscriber.disabled"])

    api.patch(f"/api/v1/subscribers/{shop.pk}", {"is_active": False}, format="json")
    api.patch(f"/api/v1/subscribers/{shop.pk}", {"is_active": False}, format="json")

    (disabled,) = _operational("herald.subscriber.disabled")
    assert disabled.payload == {
        "subscriber_id": str(shop.pk),
        "subscriber_name": "shop",
        "reason": "paused through the API",
        "manual": True,
        "at": disabled.payload["at"],
    }


def test_an_announcement_commits_with_its_state_change_or_not_at_all(make_subscriber):
    shop = make_subscriber(name="shop")
    make_subscriber(name="ops", event_types=["herald.*"])

    with pytest.raises(RuntimeError), transaction.atomic():
        circuits_open(
            subscribers=Subscriber.objects.filter(pk=shop.pk), reason="x", now=timezone.now()
        )
        raise RuntimeError("the operator's transaction failed")

    assert not Event.objects.exists()
    assert not Delivery.objects.exists()


def test_clients_cannot_publish_herald_events(api):
    single = api.post(
        "/api/v1/events",
        {"event_type": "herald.circuit.opened", "payload": {}},
        format="json",
    )
    batch = api.post(
        "/api/v1/events/batch",
        {"events": [{"event_type": "herald.delivery.exhausted", "payload": {}}]},
        format="json",
    )
    source = api.post(
        "/api/v1/sources", {"slug": "herald", "name": "x", "scheme": "github"}, format="json"
    )

    assert single.status_code == 400
    assert single.json()["error"]["fields"]["event_type"][0].startswith(
        "Event types starting 'herald.'"
    )
    assert batch.status_code == 400
    assert source.status_code == 400
    assert "reserved" in source.json()["error"]["fields"]["slug"][0]
    assert not Event.objects.exists()


def test_unrelated_subscriber_with_star_is_unaffected_by_announcements(make_subscriber):
    make_subscriber(name="firehose", event_types=["*"])
    shop = make_subscriber(name="shop")

    circuits_open(subscribers=Subscriber.objects.filter(pk=shop.pk), reason="x", now=timezone.now())

    assert _operational("herald.circuit.opened")
    assert not Delivery.objects.exists()
