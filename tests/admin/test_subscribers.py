"""The subscribers changelist and its five actions, driven through the admin's own views."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from deliveries import selectors
from deliveries.models import Delivery
from events.services import event_create
from subscribers.models import Subscriber
from tests.admin.conftest import logged, messages_of, run_action

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:subscribers_subscriber_changelist")


def _release_jobs() -> list[str]:
    return [
        SignedPackage.loads(job.payload)["args"][0]
        for job in OrmQ.objects.all()
        if SignedPackage.loads(job.payload)["func"] == "deliveries.tasks.release_held"
    ]


def test_list_shows_last_hour_and_last_success_but_never_the_secret(
    operator_client, make_subscriber
):
    subscriber = make_subscriber(name="billing")
    for n in range(3):
        event_create(event_type="order.created", payload={"n": n})
    deliveries = list(Delivery.objects.filter(subscriber=subscriber).order_by("created_at"))
    delivered_at = timezone.now() - timedelta(minutes=5)
    Delivery.objects.filter(pk=deliveries[0].pk).update(
        status="delivered", delivered_at=delivered_at
    )
    Delivery.objects.filter(pk=deliveries[1].pk).update(status="retrying")
    # An old delivery is not "last hour", though it is the latest success neither.
    Delivery.objects.filter(pk=deliveries[2].pk).update(
        status="failed", created_at=timezone.now() - timedelta(hours=2)
    )

    response = operator_client.get(CHANGELIST)

    assert response.status_code == 200
    (row,) = response.context["cl"].result_list
    assert (row.delivered_last_hour, row.failing_last_hour) == (1, 1)
    assert row.last_success_at == delivered_at
    html = response.content.decode()
    assert "last hour: delivered / failing" in html.lower()
    assert subscriber.secret not in html


def test_pause_reports_what_it_did_and_logs_it(operator_client, make_subscriber):
    active, already = make_subscriber(name="a"), make_subscriber(name="b")
    Subscriber.objects.filter(pk=already.pk).update(is_active=False)

    response = run_action(
        operator_client, "subscribers.subscriber", "pause_subscribers", [active, already]
    )

    assert messages_of(response) == ["Paused 1 subscriber; 1 was already paused."]
    active.refresh_from_db()
    assert not active.is_active and active.deactivated_reason == "paused by operator"
    assert logged(active) == ["Paused (admin action pause_subscribers)."]
    assert logged(already) == []


def test_resume_sends_what_was_held(operator_client, make_subscriber):
    paused = make_subscriber()
    Subscriber.objects.filter(pk=paused.pk).update(is_active=False, deactivated_reason="410")
    OrmQ.objects.all().delete()

    response = run_action(operator_client, "subscribers.subscriber", "resume_subscribers", [paused])

    assert messages_of(response) == ["Resumed 1 subscriber; held deliveries are sent now."]
    paused.refresh_from_db()
    assert paused.is_active and paused.deactivated_reason == ""
    assert _release_jobs() == [str(paused.pk)]
    assert logged(paused) == ["Resumed (admin action resume_subscribers)."]


def test_open_circuit_asks_for_a_reason_then_opens(operator_client, make_subscriber):
    subscriber = make_subscriber()

    form_page = operator_client.post(
        CHANGELIST, {"action": "open_circuit", "_selected_action": [subscriber.pk]}
    )
    assert form_page.status_code == 200
    assert b'name="reason"' in form_page.content
    subscriber.refresh_from_db()
    assert subscriber.circuit_state == "closed"  # nothing happens before the reason is given

    response = run_action(
        operator_client,
        "subscribers.subscriber",
        "open_circuit",
        [subscriber],
        apply="1",
        reason="receiver maintenance",
    )

    assert messages_of(response) == [
        "Opened the circuit of 1 subscriber. Their deliveries are held until it is reset."
    ]
    subscriber.refresh_from_db()
    assert subscriber.circuit_state == "open" and subscriber.circuit_manual
    assert subscriber.circuit_reason == "receiver maintenance (by operator)"
    assert logged(subscriber) == [
        "Opened the circuit by hand: receiver maintenance (admin action open_circuit)."
    ]


def test_actions_that_change_nothing_say_so(operator_client, make_subscriber):
    active = make_subscriber(name="active")
    Subscriber.objects.filter(pk=active.pk).update(circuit_state="open", circuit_manual=True)

    resumed = run_action(operator_client, "subscribers.subscriber", "resume_subscribers", [active])
    opened = run_action(
        operator_client,
        "subscribers.subscriber",
        "open_circuit",
        [active],
        apply="1",
        reason="still down",
    )
    Subscriber.objects.filter(pk=active.pk).update(circuit_state="closed", circuit_manual=False)
    reset = run_action(operator_client, "subscribers.subscriber", "reset_circuit", [active])

    assert messages_of(resumed) == ["Resumed no subscriber: 1 was already active."]
    assert messages_of(opened) == [
        "1 subscriber was open already and now is held open by hand with this reason. Their "
        "deliveries are held until it is reset."
    ]
    assert messages_of(reset) == ["Reset no circuit: 1 was closed already."]


def test_reset_circuit_closes_and_releases(operator_client, make_subscriber):
    open_one, closed_one = make_subscriber(name="open"), make_subscriber(name="closed")
    Subscriber.objects.filter(pk=open_one.pk).update(circuit_state="open", circuit_manual=True)
    OrmQ.objects.all().delete()

    response = run_action(
        operator_client, "subscribers.subscriber", "reset_circuit", [open_one, closed_one]
    )

    assert messages_of(response) == [
        "Reset the circuit of 1 subscriber; held deliveries are being sent at each subscriber's "
        "rate limit; 1 was closed already."
    ]
    open_one.refresh_from_db()
    assert open_one.circuit_state == "closed" and not open_one.circuit_manual
    assert _release_jobs() == [str(open_one.pk)]
    assert logged(open_one) == ["Reset the circuit (admin action reset_circuit)."]


def test_rotate_secret_keeps_the_old_one_signing(operator_client, make_subscriber, settings):
    settings.HERALD_SECRET_ROTATION_HOURS = 24
    subscriber = make_subscriber()
    old_secret = subscriber.secret
    before = timezone.now()

    response = run_action(operator_client, "subscribers.subscriber", "rotate_secret", [subscriber])

    (message,) = messages_of(response)
    assert message.startswith("Rotated the signing secret of 1 subscriber.")
    subscriber.refresh_from_db()
    assert subscriber.secret != old_secret and subscriber.secret.startswith("whsec_")
    assert subscriber.previous_secret == old_secret
    expires = subscriber.previous_secret_expires_at
    assert before + timedelta(hours=24) <= expires <= timezone.now() + timedelta(hours=24)
    assert subscriber.secret not in message  # messages travel in a cookie
    # The change page is where the operator reads the new secret.
    page = operator_client.get(reverse("admin:subscribers_subscriber_change", args=[subscriber.pk]))
    assert subscriber.secret in page.content.decode()
    assert len(logged(subscriber)) == 1


def test_actions_need_the_change_permission(viewer_client, make_subscriber):
    subscriber = make_subscriber()

    listing = viewer_client.get(CHANGELIST)
    assert listing.status_code == 200
    for action in ["pause_subscribers", "rotate_secret", "open_circuit", "reset_circuit"]:
        assert f'value="{action}"' not in listing.content.decode()

    response = run_action(
        viewer_client, "subscribers.subscriber", "pause_subscribers", [subscriber]
    )

    # The viewer has no action to choose: the POST changes nothing and reports nothing.
    assert messages_of(response) == []
    subscriber.refresh_from_db()
    assert subscriber.is_active
    assert not LogEntry.objects.exists()


def test_filters_and_search(operator_client, make_subscriber):
    make_subscriber(name="billing", endpoint_url="http://127.0.0.1:9/billing")
    tripped = make_subscriber(name="shipping")
    Subscriber.objects.filter(pk=tripped.pk).update(circuit_state="open")

    by_circuit = operator_client.get(CHANGELIST, {"circuit_state__exact": "open"})
    by_name = operator_client.get(CHANGELIST, {"q": "billing"})

    assert [s.name for s in by_circuit.context["cl"].result_list] == ["shipping"]
    assert [s.name for s in by_name.context["cl"].result_list] == ["billing"]


def test_last_hour_counts_stop_at_a_cap(operator_client, make_subscriber, monkeypatch):
    monkeypatch.setattr(selectors, "RECENT_COUNT_CAP", 2)
    make_subscriber()
    for n in range(3):
        event_create(event_type="order.created", payload={"n": n})
    Delivery.objects.update(status="delivered", delivered_at=timezone.now())

    response = operator_client.get(CHANGELIST)

    (row,) = response.context["cl"].result_list
    assert row.delivered_last_hour == 3  # counted up to the cap + 1, so "more" is known
    assert "2+ / " in response.content.decode()


def test_delete_selected_still_works_on_the_annotated_list(operator_client, make_subscriber):
    subscriber = make_subscriber()
    event_create(event_type="order.created", payload={})

    response = run_action(
        operator_client, "subscribers.subscriber", "delete_selected", [subscriber], post="yes"
    )

    assert response.status_code == 200
    assert not Subscriber.objects.exists() and not Delivery.objects.exists()
