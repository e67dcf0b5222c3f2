from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from config.apikeys import IssuedKey, api_key_create
from deadletters.models import DeadLetter
from deliveries.models import Delivery
from events.services import event_create
from subscribers.services import subscriber_create
from tests.receiver import Receiver


@pytest.fixture(autouse=True)
def _private_targets_allowed(settings):
    # Every receiver in the tests listens on 127.0.0.1.
    settings.HERALD_ALLOW_PRIVATE_TARGETS = True


@pytest.fixture
def issued_key(db) -> IssuedKey:
    return api_key_create(name="test-client")


@pytest.fixture
def api(issued_key: IssuedKey) -> APIClient:
    """An API client authenticated with a fresh API key."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued_key.plaintext}")
    return client


@pytest.fixture
def make_subscriber(db):
    def make(**overrides):
        fields = {
            "name": "receiver",
            "endpoint_url": "http://127.0.0.1:9/hook",
            "event_types": ["*"],
        }
        fields.update(overrides)
        return subscriber_create(**fields)

    return make


@pytest.fixture
def between_lookup_and_write(monkeypatch):
    """Run `change` (another request's write) after `viewset` has looked its object up and
    before it writes: the interleaving two concurrent API clients can produce."""

    def arrange(viewset, change) -> None:
        look_up = viewset.get_object

        def get_object(self):
            found = look_up(self)
            change(found)
            return found

        monkeypatch.setattr(viewset, "get_object", get_object)

    return arrange


@pytest.fixture
def make_dead_letter(make_subscriber):
    """A failed delivery to a new subscriber, with its open dead letter."""

    def make(*, subscriber=None, event_type="order.created", resolved=False) -> DeadLetter:
        subscriber = subscriber or make_subscriber(event_types=["*"])
        event = event_create(event_type=event_type, payload={"order_id": 7}).event
        delivery = Delivery.objects.get(event=event, subscriber=subscriber)
        Delivery.objects.filter(pk=delivery.pk).update(
            status=Delivery.Status.FAILED,
            attempt_count=12,
            next_attempt_at=None,
            enqueued_at=None,
            last_status_code=503,
            last_error="HTTP 503",
        )
        letter = DeadLetter.objects.create(
            delivery=delivery,
            reason="all 12 attempts failed; last: HTTP 503",
            last_status_code=503,
            last_error="HTTP 503",
            attempt_count=12,
        )
        if resolved:
            DeadLetter.objects.filter(pk=letter.pk).update(
                resolved_at=timezone.now(), resolution=DeadLetter.Resolution.RESOLVED
            )
            letter.refresh_from_db()
        return letter

    return make


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()
