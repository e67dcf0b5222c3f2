"""The deliveries endpoints: filtered, paginated list and detail with attempts."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from model_bakery import baker

from deliveries.models import Delivery, DeliveryAttempt
from events.services import event_create
from subscribers.models import Subscriber
from subscribers.services import subscribers_pause

URL = "/api/v1/deliveries"


def _assert_invalid(response, field: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error


def _ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


@pytest.fixture
def two_events(make_subscriber):
    """Two events, each delivered to the same two subscribers: four deliveries."""
    alice = make_subscriber(name="alice", event_types=["*"])
    bob = make_subscriber(name="bob", event_types=["*"])
    first = event_create(event_type="order.created", payload={"n": 1}).event
    second = event_create(event_type="order.paid", payload={"n": 2}).event
    return alice, bob, first, second


# --- list and filters -----------------------------------------------------------------------------


def test_list_shows_every_delivery(api, two_events):
    response = api.get(URL)

    assert _ids(response) == {str(d.id) for d in Delivery.objects.all()}
    assert len(response.json()["results"]) == 4
    row = response.json()["results"][0]
    assert set(row) == {
        "id",
        "event_id",
        "subscriber_id",
        "status",
        "held",
        "attempt_count",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "delivered_at",
        "created_at",
    }
    assert "attempts" not in row


def test_deliveries_waiting_for_their_subscriber_say_so(api, two_events):
    alice, bob, _, _ = two_events
    subscribers_pause(
        subscribers=Subscriber.objects.filter(pk=alice.pk), reason="x", now=timezone.now()
    )

    rows = api.get(URL).json()["results"]

    held = {row["subscriber_id"]: row["held"] for row in rows}
    assert held == {str(alice.pk): True, str(bob.pk): False}


def test_list_filters_by_event_id(api, two_events):
    _, _, first, _ = two_events

    response = api.get(URL, {"event_id": str(first.id)})

    assert _ids(response) == {str(d.id) for d in Delivery.objects.filter(event=first)}
    assert {row["event_id"] for row in response.json()["results"]} == {str(first.id)}


def test_list_filters_by_subscriber_id(api, two_events):
    alice, _, _, _ = two_events

    response = api.get(URL, {"subscriber_id": str(alice.id)})

    assert _ids(response) == {str(d.id) for d in Delivery.objects.filter(subscriber=alice)}
    assert {row["subscriber_id"] for row in response.json()["results"]} == {str(alice.id)}


def test_list_filters_by_status(api, two_events):
    alice, _, first, _ = two_events
    failed = Delivery.objects.get(event=first, subscriber=alice)
    Delivery.objects.filter(pk=failed.pk).update(status=Delivery.Status.FAILED)

    failed_only = api.get(URL, {"status": "failed"})
    pending_only = api.get(URL, {"status": "pending"})

    assert _ids(failed_only) == {str(failed.id)}
    assert len(_ids(pending_only)) == 3
    assert str(failed.id) not in _ids(pending_only)


def test_list_filters_combine(api, two_events):
    alice, bob, first, _ = two_events

    response = api.get(URL, {"event_id": str(first.id), "subscriber_id": str(bob.id)})

    assert _ids(response) == {str(Delivery.objects.get(event=first, subscriber=bob).id)}
    assert alice.id != bob.id


def test_filter_matching_nothing_is_an_empty_page(api, two_events):
    response = api.get(URL, {"event_id": str(uuid.uuid4())})

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_list_filters_by_created_after(api, two_events):
    _, _, first, _ = two_events
    Delivery.objects.filter(event=first).update(created_at=timezone.now() - timedelta(days=2))

    response = api.get(URL, {"created_after": (timezone.now() - timedelta(days=1)).isoformat()})

    assert _ids(response) == {str(d.id) for d in Delivery.objects.exclude(event=first)}


@pytest.mark.parametrize("status", ["lost", "PENDING", "in-flight", "1"])
def test_invalid_status_filter_is_400_naming_status(api, status):
    response = api.get(URL, {"status": status})

    _assert_invalid(response, "status")


@pytest.mark.parametrize("field", ["event_id", "subscriber_id"])
@pytest.mark.parametrize("value", ["not-a-uuid", "123", "'; drop table x; --"])
def test_malformed_id_filter_is_400_naming_the_field(api, field, value):
    response = api.get(URL, {field: value})

    _assert_invalid(response, field)


def test_invalid_created_after_is_400_naming_it(api):
    response = api.get(URL, {"created_after": "last tuesday"})

    _assert_invalid(response, "created_after")


def test_list_is_paginated_with_a_next_link(api, two_events):
    first_page = api.get(URL, {"page_size": 2})

    assert first_page.status_code == 200
    body = first_page.json()
    assert len(body["results"]) == 2
    assert body["next"]
    second_page = api.get(body["next"]).json()
    assert len(second_page["results"]) == 2
    assert second_page["next"] is None
    seen = [row["id"] for row in body["results"] + second_page["results"]]
    assert sorted(seen) == sorted(str(d.id) for d in Delivery.objects.all())


def test_list_without_more_results_has_no_next_link(api, two_events):
    body = api.get(URL, {"page_size": 10}).json()

    assert len(body["results"]) == 4
    assert body["next"] is None


def test_list_needs_a_key(client, two_events):
    response = client.get(URL)

    assert response.status_code == 401


# --- detail ---------------------------------------------------------------------------------------


def test_detail_includes_attempts_in_order(api, make_subscriber):
    make_subscriber(event_types=["*"])
    event = event_create(event_type="order.created", payload={}).event
    delivery = Delivery.objects.get(event=event)
    started = timezone.now() - timedelta(minutes=5)
    baker.make(
        DeliveryAttempt,
        delivery=delivery,
        number=2,
        started_at=started + timedelta(minutes=1),
        finished_at=started + timedelta(minutes=1, seconds=1),
        duration_ms=87,
        status_code=200,
        response_excerpt='{"ok": true}',
        error="",
    )
    baker.make(
        DeliveryAttempt,
        delivery=delivery,
        number=1,
        started_at=started,
        finished_at=started + timedelta(seconds=10),
        duration_ms=10_000,
        status_code=None,
        response_excerpt="",
        error="timed out after 10.0s",
    )
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.DELIVERED, attempt_count=2, last_status_code=200
    )

    response = api.get(f"{URL}/{delivery.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(delivery.id)
    assert body["event_id"] == str(event.id)
    assert body["status"] == "delivered"
    assert body["attempt_count"] == 2
    attempts = body["attempts"]
    assert [a["number"] for a in attempts] == [1, 2]
    assert set(attempts[0]) >= {
        "number",
        "started_at",
        "duration_ms",
        "status_code",
        "response_excerpt",
        "error",
    }
    assert attempts[0]["status_code"] is None
    assert attempts[0]["error"] == "timed out after 10.0s"
    assert attempts[0]["duration_ms"] == 10_000
    assert attempts[0]["started_at"]
    assert attempts[1]["status_code"] == 200
    assert attempts[1]["response_excerpt"] == '{"ok": true}'
    assert attempts[1]["duration_ms"] == 87
    assert "request_headers" not in attempts[1]


def test_detail_without_attempts_has_an_empty_list(api, two_events):
    delivery = Delivery.objects.first()

    response = api.get(f"{URL}/{delivery.id}")

    assert response.status_code == 200
    assert response.json()["attempts"] == []
    assert response.json()["status"] == "pending"


def test_detail_of_unknown_delivery_is_404(api):
    response = api.get(f"{URL}/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_detail_with_malformed_id_is_404(api):
    response = api.get(f"{URL}/not-a-uuid")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["post", "patch", "delete"])
def test_deliveries_are_read_only(api, two_events, method):
    delivery = Delivery.objects.first()
    url = URL if method == "post" else f"{URL}/{delivery.id}"

    response = getattr(api, method)(url, {"status": "delivered"}, format="json")

    assert response.status_code == 405
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.PENDING
