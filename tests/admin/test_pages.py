"""Every model's admin pages load for an operator, with data present."""

from __future__ import annotations

import pytest
from django.urls import reverse

from deadletters.models import DeadLetter
from deliveries.models import Delivery, DeliveryAttempt
from events.services import event_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(make_subscriber, issued_key):
    make_subscriber(event_types=["*"])
    event = event_create(event_type="order.created", payload={"order_id": 1}).event
    delivery = Delivery.objects.get(event=event)
    DeliveryAttempt.objects.create(delivery=delivery, number=1, started_at=event.created_at)
    letter = DeadLetter.objects.create(delivery=delivery, reason="all attempts failed")
    return {"event": event, "delivery": delivery, "letter": letter}


@pytest.mark.parametrize(
    "model",
    [
        "config.apikey",
        "subscribers.subscriber",
        "events.event",
        "deliveries.delivery",
        "deadletters.deadletter",
    ],
)
def test_changelist_and_change_pages_load(operator_client, history, model):
    app_label, model_name = model.split(".")
    changelist = reverse(f"admin:{app_label}_{model_name}_changelist")

    response = operator_client.get(changelist)

    assert response.status_code == 200
    obj = response.context["cl"].result_list[0]
    assert (
        operator_client.get(
            reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk])
        ).status_code
        == 200
    )


def test_event_page_shows_the_payload_and_its_deliveries(operator_client, history):
    response = operator_client.get(reverse("admin:events_event_change", args=[history["event"].pk]))

    assert b"order_id" in response.content
    assert str(history["delivery"].subscriber).encode() in response.content


def test_admin_creates_an_api_key_and_shows_it_once(operator_client):
    response = operator_client.post(
        reverse("admin:config_apikey_add"),
        {"name": "billing", "scopes": ["events:publish"]},
        follow=True,
    )

    assert "copy it now" in response.content.decode()


def test_admin_refuses_a_private_endpoint_when_not_allowed(operator_client, settings):
    settings.HERALD_ALLOW_PRIVATE_TARGETS = False

    response = operator_client.post(
        reverse("admin:subscribers_subscriber_add"),
        {
            "name": "x",
            "endpoint_url": "http://10.1.2.3/hook",
            "event_types": '["*"]',
            "is_active": "on",
        },
    )

    assert response.status_code == 200
    assert "private, loopback" in response.content.decode()
