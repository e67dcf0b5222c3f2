"""Deliveries: the list, the attempts inline, and retry_deliveries."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from deliveries.models import Delivery, DeliveryAttempt
from events.services import event_create
from subscribers.models import Subscriber
from tests.admin.conftest import logged, messages_of, run_action
from tests.queue import queued

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:deliveries_delivery_changelist")


@pytest.fixture
def deliveries(make_subscriber):
    """Four deliveries to one subscriber, one in each of four states."""
    make_subscriber(name="billing")
    for n in range(4):
        event_create(event_type="order.created", payload={"n": n})
    rows = list(Delivery.objects.order_by("created_at"))
    for delivery, status in zip(
        rows, ["retrying", "delivered", "in_flight", "failed"], strict=True
    ):
        Delivery.objects.filter(pk=delivery.pk).update(
            status=status, attempt_count=3, last_status_code=500, last_error="HTTP 500"
        )
        delivery.refresh_from_db()
    return rows


def test_change_page_shows_every_attempt(operator_client, deliveries):
    delivery = deliveries[0]
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        started_at=timezone.now(),
        duration_ms=412,
        request_headers={"webhook-id": str(delivery.event_id)},
        status_code=503,
        response_excerpt="upstream unavailable",
        error="HTTP 503",
    )

    page = operator_client.get(reverse("admin:deliveries_delivery_change", args=[delivery.pk]))

    html = page.content.decode()
    for shown in ["412", "503", "upstream unavailable", "HTTP 503", str(delivery.event_id)]:
        assert shown in html


def test_retry_sends_waiting_deliveries_now_and_explains_the_rest(operator_client, deliveries):
    retrying, delivered, in_flight, failed = deliveries

    response = run_action(operator_client, "deliveries.delivery", "retry_deliveries", deliveries)

    assert messages_of(response) == [
        "Retrying 1 delivery now; left alone: 1 delivered, 1 in flight; 1 failed delivery: "
        "replay it from Dead letters (/admin/deadletters/deadletter/)."
    ]
    retrying.refresh_from_db()
    assert retrying.status == "pending" and retrying.attempt_count == 0
    assert retrying.next_attempt_at <= timezone.now()
    assert str(retrying.pk) in {delivery_id for delivery_id, _ in queued()}
    for untouched in (delivered, in_flight, failed):
        assert Delivery.objects.get(pk=untouched.pk).status == untouched.status
    assert logged(retrying) == [
        "Retried now with a fresh set of attempts (admin action retry_deliveries)."
    ]
    assert logged(delivered) == []


def test_retry_says_which_deliveries_wait_for_their_subscriber(operator_client, deliveries):
    retrying = deliveries[0]
    Subscriber.objects.update(circuit_state="open", circuit_manual=True)

    response = run_action(operator_client, "deliveries.delivery", "retry_deliveries", [retrying])

    assert messages_of(response) == [
        "Retrying 1 delivery now (1 of them waits until the subscriber is resumed or its "
        "circuit closes)."
    ]


def test_retry_needs_the_change_permission(viewer_client, deliveries):
    listing = viewer_client.get(CHANGELIST)
    assert 'value="retry_deliveries"' not in listing.content.decode()

    run_action(viewer_client, "deliveries.delivery", "retry_deliveries", deliveries[:1])

    assert Delivery.objects.get(pk=deliveries[0].pk).status == "retrying"


def test_retry_is_offered_with_the_change_permission(client, django_user_model, deliveries):
    user = django_user_model.objects.create_user("oncall", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(codename__in=["view_delivery", "change_delivery"])
    )
    client.force_login(user)

    response = run_action(client, "deliveries.delivery", "retry_deliveries", deliveries[:1])

    assert messages_of(response) == ["Retrying 1 delivery now."]


def test_filters_by_status_and_subscriber_and_finds_ids(operator_client, deliveries):
    delivered = deliveries[1]

    by_status = operator_client.get(CHANGELIST, {"status__exact": "delivered"})
    by_subscriber = operator_client.get(
        CHANGELIST, {"subscriber__id__exact": delivered.subscriber_id}
    )
    by_event_id = operator_client.get(CHANGELIST, {"q": str(delivered.event_id)})
    by_name = operator_client.get(CHANGELIST, {"q": "billing"})

    assert list(by_status.context["cl"].result_list) == [delivered]
    assert len(by_subscriber.context["cl"].result_list) == 4
    assert list(by_event_id.context["cl"].result_list) == [delivered]
    assert len(by_name.context["cl"].result_list) == 4
