from __future__ import annotations

import json

import pytest

from deliveries.models import Delivery
from events.models import Event
from tests.queue import queued

pytestmark = pytest.mark.django_db
URL = "/api/v1/events/batch"


def _event(n: int, **extra) -> dict:
    return {"event_type": "order.created", "payload": {"n": n}, **extra}


def test_batch_stores_every_event_with_its_deliveries_and_jobs(api, make_subscriber):
    make_subscriber(event_types=["order.*"])
    make_subscriber(event_types=["*"])

    response = api.post(URL, {"events": [_event(n) for n in range(5)]}, format="json")

    assert response.status_code == 202, response.content
    results = response.json()["events"]
    assert [r["payload"]["n"] for r in results] == [0, 1, 2, 3, 4]
    assert all(r["delivery_count"] == 2 for r in results)
    assert Event.objects.count() == 5
    assert Delivery.objects.count() == 10 == len(queued())


def test_one_invalid_event_rejects_the_whole_batch_naming_it(api, make_subscriber):
    make_subscriber()

    response = api.post(
        URL, {"events": [_event(0), {"event_type": "Bad Type", "payload": {}}]}, format="json"
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("events[1].event_type:")
    assert "event_type" in error["fields"]["events"]["1"]
    assert Event.objects.count() == 0 == Delivery.objects.count()


@pytest.mark.parametrize(
    "body",
    [{}, {"events": []}, {"events": "many"}, {"events": [1, 2]}, {"events": {"a": 1}}],
)
def test_malformed_batches_are_400s_naming_events(api, body):
    response = api.post(URL, body, format="json")

    assert response.status_code == 400
    assert "events" in response.json()["error"]["fields"]


def test_too_many_events_is_a_400(api, settings):
    settings.HERALD_MAX_BATCH_EVENTS = 3

    response = api.post(URL, {"events": [_event(n) for n in range(4)]}, format="json")

    assert response.status_code == 400
    assert "At most 3 events per batch" in response.json()["error"]["message"]


def test_batch_body_over_its_limit_is_a_413(api, settings):
    settings.HERALD_MAX_BATCH_BYTES = 2000

    response = api.post(URL, {"events": [_event(n) for n in range(100)]}, format="json")

    assert response.status_code == 413


def test_batch_bodies_past_djangos_own_upload_limit_are_taken_up_to_herald_s(
    api, make_subscriber, settings
):
    # Django refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) with an HTML 400 when
    # they are read through request.body; the batch limit (8 MB) is Herald's to enforce.
    make_subscriber()
    events = [_event(n, payload={"n": n, "blob": "x" * 6000}) for n in range(500)]
    body = json.dumps({"events": events})
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < len(body) < settings.HERALD_MAX_BATCH_BYTES

    response = api.post(URL, body, content_type="application/json")

    assert response.status_code == 202, response.content[:300]
    assert Event.objects.count() == 500


def test_a_declared_length_past_every_limit_is_a_json_413_unread(api):
    response = api.post(
        URL, '{"events": []}', content_type="application/json", CONTENT_LENGTH="50000000"
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_batch_may_be_larger_than_a_single_event_may(api, settings, make_subscriber):
    settings.HERALD_MAX_PAYLOAD_BYTES = 1000
    make_subscriber()

    response = api.post(URL, {"events": [_event(n) for n in range(100)]}, format="json")

    assert response.status_code == 202


def test_each_payload_keeps_the_single_event_limit(api, settings):
    settings.HERALD_MAX_PAYLOAD_BYTES = 1000

    response = api.post(
        URL, {"events": [{"event_type": "a.b", "payload": {"x": "y" * 2000}}]}, format="json"
    )

    assert response.status_code == 400
    assert "payload" in response.json()["error"]["fields"]["events"]["0"]


def test_repeating_a_batch_with_idempotency_keys_returns_the_originals(api, make_subscriber):
    make_subscriber()
    body = {"events": [_event(n, idempotency_key=f"k{n}") for n in range(3)]}
    first = api.post(URL, body, format="json")

    again = api.post(URL, body, format="json")

    assert again.status_code == 200
    assert [e["id"] for e in again.json()["events"]] == [e["id"] for e in first.json()["events"]]
    assert [e["delivery_count"] for e in again.json()["events"]] == [1, 1, 1]
    assert Event.objects.count() == 3 and Delivery.objects.count() == 3


def test_a_known_key_among_new_events_returns_the_original_and_stores_the_rest(api):
    first = api.post(URL, {"events": [_event(0, idempotency_key="a")]}, format="json")

    response = api.post(URL, {"events": [_event(0, idempotency_key="a"), _event(1)]}, format="json")

    assert response.status_code == 202
    assert response.json()["events"][0]["id"] == first.json()["events"][0]["id"]
    assert Event.objects.count() == 2


def test_a_reused_key_with_a_different_event_is_a_409_naming_it_and_stores_nothing(api):
    first = api.post(URL, {"events": [_event(0, idempotency_key="a")]}, format="json")

    response = api.post(URL, {"events": [_event(5), _event(9, idempotency_key="a")]}, format="json")

    assert response.status_code == 409
    message = response.json()["error"]["message"]
    assert message.startswith("events[1]: ")
    assert first.json()["events"][0]["id"] in message
    assert Event.objects.count() == 1


def test_one_key_on_two_different_events_of_a_batch_is_a_400_naming_both(api):
    response = api.post(
        URL,
        {"events": [_event(0, idempotency_key="x"), _event(1), _event(2, idempotency_key="x")]},
        format="json",
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["fields"] == {
        "events": {
            "2": {
                "idempotency_key": [
                    "Also the idempotency_key of events[0], which is a different event; "
                    "a key names one event."
                ]
            }
        }
    }
    assert Event.objects.count() == 0


def test_an_idempotency_key_header_on_a_batch_is_refused(api):
    response = api.post(
        URL, {"events": [_event(0)]}, format="json", HTTP_IDEMPOTENCY_KEY="whole-batch"
    )

    assert response.status_code == 400
    assert "idempotency_key" in response.json()["error"]["fields"]["Idempotency-Key"][0]
    assert Event.objects.count() == 0


def test_the_same_key_twice_in_one_batch_is_one_event(api):
    response = api.post(
        URL,
        {"events": [_event(0, idempotency_key="x"), _event(0, idempotency_key="x")]},
        format="json",
    )

    assert response.status_code == 202
    ids = [e["id"] for e in response.json()["events"]]
    assert ids[0] == ids[1] and Event.objects.count() == 1


def test_batch_and_single_events_share_idempotency_keys(api):
    single = api.post("/api/v1/events", _event(0), format="json", HTTP_IDEMPOTENCY_KEY="shared")

    response = api.post(URL, {"events": [_event(0, idempotency_key="shared")]}, format="json")

    assert response.status_code == 200
    assert response.json()["events"][0]["id"] == single.json()["id"]


def test_batch_needs_a_key(client):
    response = client.post(URL, {"events": [_event(0)]}, content_type="application/json")

    assert response.status_code == 401
