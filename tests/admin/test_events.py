"""Events: pretty payload, where each went, filters by type / source / time."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from config.apikeys import api_key_create
from deliveries.models import Delivery
from events.models import Event
from events.services import event_create

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:events_event_changelist")


def test_event_page_pretty_prints_the_payload_with_each_subscribers_status(
    operator_client, make_subscriber
):
    make_subscriber(name="billing")
    make_subscriber(name="shipping")
    event = event_create(event_type="order.created", payload={"order_id": 1, "lines": [2]}).event
    Delivery.objects.filter(event=event, subscriber__name="billing").update(status="delivered")

    page = operator_client.get(reverse("admin:events_event_change", args=[event.pk]))

    html = unescape(page.content.decode())
    assert '"lines": [\n    2\n  ],\n  "order_id": 1' in html
    assert "billing" in html and "shipping" in html
    assert "delivered" in html and "pending" in html


def test_list_says_how_many_deliveries_arrived(operator_client, make_subscriber):
    make_subscriber()
    make_subscriber()
    event = event_create(event_type="order.created", payload={}).event
    Delivery.objects.filter(pk=Delivery.objects.filter(event=event).first().pk).update(
        status="delivered"
    )

    response = operator_client.get(CHANGELIST)

    assert "1 of 2" in response.content.decode()


def test_filters_by_type_source_and_time(operator_client, make_subscriber):
    make_subscriber()
    billing = api_key_create(name="billing-service").api_key
    paid = event_create(event_type="invoice.paid", payload={}, api_key=billing).event
    created = event_create(event_type="order.created", payload={}).event
    old = event_create(event_type="order.created", payload={}).event
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=30))

    by_type = operator_client.get(CHANGELIST, {"event_type": "order.created"})
    by_source = operator_client.get(CHANGELIST, {"api_key__id__exact": billing.pk})
    # As the "Today" link of the date filter has it: aware midnight to midnight.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    by_time = operator_client.get(
        CHANGELIST,
        {"created_at__gte": str(today), "created_at__lt": str(today + timedelta(days=1))},
    )
    by_id = operator_client.get(CHANGELIST, {"q": str(paid.pk)})

    assert set(by_type.context["cl"].result_list) == {created, old}
    assert list(by_source.context["cl"].result_list) == [paid]
    assert set(by_time.context["cl"].result_list) == {paid, created}
    assert list(by_id.context["cl"].result_list) == [paid]
    # The type filter offers the types of recent events.
    assert "invoice.paid" in by_type.content.decode()
