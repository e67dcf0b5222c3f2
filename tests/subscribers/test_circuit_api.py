from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import DeliveryAttempt
from events.services import event_create
from subscribers.models import Subscriber

pytestmark = pytest.mark.django_db


def test_open_circuit_holds_with_a_reason_and_reset_closes(api, make_subscriber):
    subscriber = make_subscriber()

    opened = api.post(
        f"/api/v1/subscribers/{subscriber.pk}/open-circuit",
        {"reason": "their deploy"},
        format="json",
    )

    assert opened.status_code == 200 and opened.json()["circuit_state"] == "open"
    health = api.get(f"/api/v1/subscribers/{subscriber.pk}/health").json()
    assert health["circuit_state"] == "open"
    assert health["circuit_opened_manually"] is True
    assert health["circuit_reason"] == "their deploy"
    assert health["next_probe_at"] is None

    reset = api.post(f"/api/v1/subscribers/{subscriber.pk}/reset-circuit")

    assert reset.status_code == 200 and reset.json()["circuit_state"] == "closed"


def test_health_counts_held_deliveries_and_recent_success(api, make_subscriber):
    subscriber = make_subscriber()
    Subscriber.objects.filter(pk=subscriber.pk).update(circuit_state="open")
    for n in range(3):
        event_create(event_type="order.created", payload={"n": n})
    delivery = subscriber.deliveries.first()
    now = timezone.now()
    for number, code in enumerate([200, 500, 200, 200], start=1):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=now - timedelta(minutes=number),
            finished_at=now,
            status_code=code,
        )

    health = api.get(f"/api/v1/subscribers/{subscriber.pk}/health").json()

    assert health["held_deliveries"] == 3
    assert health["recent_attempts"] == 4
    assert health["recent_success_rate"] == 0.75


def test_open_circuit_reason_too_long_is_a_400_naming_it(api, make_subscriber):
    subscriber = make_subscriber()

    response = api.post(
        f"/api/v1/subscribers/{subscriber.pk}/open-circuit", {"reason": "x" * 501}, format="json"
    )

    assert response.status_code == 400
    assert "reason" in response.json()["error"]["fields"]


@pytest.mark.parametrize("suffix", ["health", "open-circuit", "reset-circuit"])
def test_circuit_endpoints_404_for_an_unknown_subscriber(api, suffix):
    method = api.get if suffix == "health" else api.post

    response = method(f"/api/v1/subscribers/{uuid.uuid4()}/{suffix}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_circuit_endpoints_need_a_key(client, make_subscriber):
    subscriber = make_subscriber()

    assert client.get(f"/api/v1/subscribers/{subscriber.pk}/health").status_code == 401
    assert client.post(f"/api/v1/subscribers/{subscriber.pk}/reset-circuit").status_code == 401
