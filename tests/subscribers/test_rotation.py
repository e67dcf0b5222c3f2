"""Rotating a subscriber's signing secret: both secrets sign until the old one expires."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from deliveries.engine import delivery_attempt
from deliveries.models import Delivery
from events.services import event_create
from subscribers.models import Subscriber
from subscribers.services import subscribers_rotate_secret

pytestmark = pytest.mark.django_db


def _rotate(subscriber: Subscriber, now=None) -> str:
    now = now or timezone.now()
    (secret,) = subscribers_rotate_secret(
        subscribers=Subscriber.objects.filter(pk=subscriber.pk), now=now
    ).values()
    subscriber.refresh_from_db()
    return secret


def test_rotation_keeps_the_old_secret_until_it_expires(make_subscriber, settings):
    settings.HERALD_SECRET_ROTATION_HOURS = 24
    subscriber = make_subscriber()
    old = subscriber.secret
    now = timezone.now()

    new = _rotate(subscriber, now)

    assert subscriber.secret == new != old
    assert subscriber.previous_secret == old
    assert subscriber.previous_secret_expires_at == now + timedelta(hours=24)
    assert subscriber.signing_secrets(now + timedelta(hours=23)) == [new, old]
    assert subscriber.signing_secrets(now + timedelta(hours=24)) == [new]


def test_a_second_rotation_retires_the_oldest_secret(make_subscriber):
    subscriber = make_subscriber()
    first = subscriber.secret
    second = _rotate(subscriber)

    third = _rotate(subscriber)

    assert subscriber.signing_secrets(timezone.now()) == [third, second]
    assert first not in subscriber.signing_secrets(timezone.now())


def test_zero_hours_means_no_overlap(make_subscriber, settings):
    settings.HERALD_SECRET_ROTATION_HOURS = 0
    subscriber = make_subscriber()

    new = _rotate(subscriber)

    assert subscriber.signing_secrets(timezone.now()) == [new]


def test_rotating_several_gives_each_its_own_secret(make_subscriber):
    subscribers = [make_subscriber(name=str(n)) for n in range(3)]

    secrets = subscribers_rotate_secret(
        subscribers=Subscriber.objects.filter(pk__in=[s.pk for s in subscribers]),
        now=timezone.now(),
    )

    assert len(set(secrets.values())) == 3
    for subscriber in subscribers:
        assert Subscriber.objects.get(pk=subscriber.pk).secret == secrets[subscriber.pk]


def _deliver_one(receiver, subscriber):
    event_create(event_type="order.created", payload={"order_id": 9})
    delivery = Delivery.objects.get(subscriber=subscriber)
    assert delivery_attempt(delivery_id=str(delivery.pk)) == "delivered"
    (request,) = receiver.received()
    return request


def test_a_real_delivery_during_rotation_verifies_with_old_and_new_secret(
    receiver, make_subscriber
):
    subscriber = make_subscriber(endpoint_url=receiver.url())
    old = subscriber.secret
    new = _rotate(subscriber)

    request = _deliver_one(receiver, subscriber)

    for secret in (old, new):
        assert Webhook(secret).verify(request.body, request.headers)["data"] == {"order_id": 9}


def test_after_expiry_only_the_new_secret_verifies(receiver, make_subscriber):
    subscriber = make_subscriber(endpoint_url=receiver.url())
    old = subscriber.secret
    new = _rotate(subscriber, now=timezone.now() - timedelta(days=2))

    request = _deliver_one(receiver, subscriber)

    assert Webhook(new).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(request.body, request.headers)


def test_api_rotates_and_returns_the_new_secret_once(api, make_subscriber, settings):
    settings.HERALD_SECRET_ROTATION_HOURS = 12
    subscriber = make_subscriber()
    old = subscriber.secret

    response = api.post(f"/api/v1/subscribers/{subscriber.pk}/rotate-secret")

    assert response.status_code == 200
    body = response.json()
    subscriber.refresh_from_db()
    assert body["secret"] == subscriber.secret != old
    assert subscriber.previous_secret == old
    expires = timezone.datetime.fromisoformat(body["previous_secret_expires_at"])
    assert abs(expires - (timezone.now() + timedelta(hours=12))) < timedelta(minutes=1)
    detail = api.get(f"/api/v1/subscribers/{subscriber.pk}").json()
    assert "secret" not in detail
    assert detail["previous_secret_expires_at"] == body["previous_secret_expires_at"]


def test_api_rotation_of_an_unknown_subscriber_is_a_json_404(api):
    response = api.post("/api/v1/subscribers/8b4f7b0e-7f0e-4d39-9a53-0c2a5f0c9d11/rotate-secret")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_api_rotation_needs_a_key(client, make_subscriber):
    subscriber = make_subscriber()

    response = client.post(f"/api/v1/subscribers/{subscriber.pk}/rotate-secret")

    assert response.status_code == 401
    assert Subscriber.objects.get(pk=subscriber.pk).previous_secret == ""
