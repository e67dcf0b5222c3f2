from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from config.apikeys import IssuedKey, api_key_create
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
def receiver():
    server = Receiver()
    yield server
    server.close()
