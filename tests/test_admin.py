"""Every model's admin pages load for an operator, with data present."""

from __future__ import annotations

import pytest
from django.urls import reverse

from deadletters.models import DeadLetter
from deliveries.models import Delivery, DeliveryAttempt
from events.services import event_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("operator", "op@example.com", "pw")
    client.force_login(user)
    return client


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


def test_replay_action_replays_and_reports(operator_client, history):
    response = operator_client.post(
        reverse("admin:deadletters_deadletter_changelist"),
        {"action": "replay_dead_letters", "_selected_action": [history["letter"].pk]},
        follow=True,
    )

    assert "Replayed 1 dead letter(s); 0 were already resolved." in response.content.decode()
    history["letter"].refresh_from_db()
    assert history["letter"].resolution == "replayed"


def test_admin_creates_an_api_key_and_shows_it_once(operator_client):
    response = operator_client.post(
        reverse("admin:config_apikey_add"),
        {"name": "billing", "scopes": ["events:publish"]},
        follow=True,
    )

    assert "copy it now" in response.content.decode()


def test_open_circuit_action_asks_for_a_reason_then_opens(operator_client, make_subscriber):
    subscriber = make_subscriber()
    changelist = reverse("admin:subscribers_subscriber_changelist")
    selected = {"action": "open_circuit", "_selected_action": [subscriber.pk]}

    form_page = operator_client.post(changelist, selected)
    assert form_page.status_code == 200 and b"reason" in form_page.content

    response = operator_client.post(
        changelist, {**selected, "apply": "1", "reason": "receiver maintenance"}, follow=True
    )

    assert "Opened the circuit of 1 subscriber(s)." in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.circuit_state == "open" and subscriber.circuit_manual
    assert subscriber.circuit_reason.startswith("receiver maintenance")


def test_reset_circuit_action_closes_it(operator_client, make_subscriber):
    from subscribers.models import Subscriber

    subscriber = make_subscriber()
    Subscriber.objects.filter(pk=subscriber.pk).update(circuit_state="open", circuit_manual=True)

    response = operator_client.post(
        reverse("admin:subscribers_subscriber_changelist"),
        {"action": "reset_circuit", "_selected_action": [subscriber.pk]},
        follow=True,
    )

    assert "Reset the circuit of 1 subscriber(s)" in response.content.decode()
    subscriber.refresh_from_db()
    assert subscriber.circuit_state == "closed"


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
