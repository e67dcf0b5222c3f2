"""Deleting a subscriber while events are still being fanned out to it."""

from __future__ import annotations

import threading

import pytest
from django.contrib import admin
from django.db import connection
from django.db.models.signals import pre_delete
from rest_framework.test import APIClient

from config.apikeys import api_key_create
from deliveries.models import Delivery
from events.services import event_create
from subscribers import services
from subscribers.models import Subscriber
from subscribers.services import subscriber_create

pytestmark = pytest.mark.django_db(transaction=True)  # the other writer commits on its own


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        # SQLite lets one writer at a time: a fan-out cannot interleave with the deletion there
        # (and this test's other writer would wait for the deletion that waits for it).
        pytest.skip("concurrent writers are PostgreSQL's")


def _publish_from_another_connection() -> None:
    # A request or worker elsewhere: its own connection, committed before the deletion commits.
    def publish() -> None:
        try:
            event_create(event_type="order.created", payload={"late": True})
        finally:
            connection.close()

    thread = threading.Thread(target=publish)
    thread.start()
    thread.join()


@pytest.fixture
def event_published_mid_deletion():
    """The next `times` subscriber deletions see an event fanned out after they collected the
    subscriber's deliveries and before they commit."""

    def arrange(times: int) -> None:
        remaining = [times]

        def publish(sender, instance, **kwargs) -> None:
            if remaining[0] > 0:
                remaining[0] -= 1
                _publish_from_another_connection()

        pre_delete.connect(publish, sender=Subscriber, weak=False, dispatch_uid="mid-deletion")

    yield arrange
    pre_delete.disconnect(sender=Subscriber, dispatch_uid="mid-deletion")


def _subscriber_with_a_delivery() -> Subscriber:
    subscriber = subscriber_create(
        name="receiver", endpoint_url="http://127.0.0.1:9/hook", event_types=["*"]
    )
    event_create(event_type="order.created", payload={"early": True})
    return subscriber


def test_a_delivery_fanned_out_during_the_deletion_is_deleted_too(event_published_mid_deletion):
    subscriber = _subscriber_with_a_delivery()
    event_published_mid_deletion(times=1)

    services.subscriber_delete(subscriber=subscriber)

    assert not Subscriber.objects.exists()
    assert not Delivery.objects.exists()


def test_the_api_answers_409_if_deliveries_keep_arriving(event_published_mid_deletion):
    subscriber = _subscriber_with_a_delivery()
    event_published_mid_deletion(times=services.DELETE_ATTEMPTS)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='ops').plaintext}")

    response = api.delete(f"/api/v1/subscribers/{subscriber.pk}")

    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "conflict"
    assert "pause it first" in response.json()["error"]["message"]
    assert Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_the_admins_delete_collects_again_too(event_published_mid_deletion, rf):
    subscriber = _subscriber_with_a_delivery()
    event_published_mid_deletion(times=1)
    model_admin = admin.site._registry[Subscriber]

    model_admin.delete_queryset(rf.post("/"), Subscriber.objects.filter(pk=subscriber.pk))

    assert not Subscriber.objects.exists()
    assert not Delivery.objects.exists()
