"""The events endpoints: ingestion with fan-out, idempotency, input validation, reads."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from config.apikeys import api_key_create
from deliveries.models import Delivery
from events.api import EventSerializer, _rendered
from events.models import Event
from events.services import event_create
from tests.queue import queued

URL = "/api/v1/events"
ORDER_CREATED = {"event_type": "order.created", "payload": {"order_id": 42, "total": "9.99"}}


def _post_raw(api, body: str, content_type: str = "application/json", **extra):
    return api.post(URL, body, content_type=content_type, **extra)


def _assert_invalid(response, field: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert field in error["message"]


def _row_counts() -> tuple[int, int, int]:
    return Event.objects.count(), Delivery.objects.count(), len(queued())


# --- ingestion and fan-out ------------------------------------------------------------------------


def test_post_returns_202_with_the_stored_event(api):
    response = api.post(URL, ORDER_CREATED, format="json")

    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "event_type", "payload", "created_at", "delivery_count"}
    event = Event.objects.get(pk=body["id"])
    assert body["event_type"] == event.event_type == "order.created"
    assert body["payload"] == event.payload == {"order_id": 42, "total": "9.99"}
    assert body["created_at"]
    assert body["delivery_count"] == 0


def test_post_records_the_api_key_that_sent_it(api, issued_key):
    response = api.post(URL, ORDER_CREATED, format="json")

    assert Event.objects.get(pk=response.json()["id"]).api_key_id == issued_key.api_key.pk


def test_post_fans_out_to_every_matching_active_subscriber(api, make_subscriber):
    matching = [
        make_subscriber(name="exact", event_types=["order.created"]),
        make_subscriber(name="prefix", event_types=["order.*"]),
        make_subscriber(name="everything", event_types=["*"]),
        make_subscriber(name="one of several", event_types=["invoice.paid", "order.created"]),
    ]
    make_subscriber(name="other type", event_types=["invoice.paid"])
    make_subscriber(name="sibling", event_types=["order.updated"])
    make_subscriber(name="longer prefix", event_types=["orders.*"])
    make_subscriber(name="deeper prefix", event_types=["order.created.line.*"])
    inactive = make_subscriber(name="inactive", event_types=["*"])
    inactive.is_active = False
    inactive.save()

    response = api.post(URL, ORDER_CREATED, format="json")

    assert response.status_code == 202
    assert response.json()["delivery_count"] == len(matching) == 4
    deliveries = Delivery.objects.filter(event_id=response.json()["id"])
    assert {d.subscriber_id for d in deliveries} == {s.id for s in matching}
    assert {d.status for d in deliveries} == {Delivery.Status.PENDING}
    assert len(queued()) == 4


def test_post_with_no_matching_subscriber_stores_the_event_without_deliveries(api, make_subscriber):
    make_subscriber(event_types=["invoice.paid"])

    response = api.post(URL, ORDER_CREATED, format="json")

    assert response.status_code == 202
    assert response.json()["delivery_count"] == 0
    assert _row_counts() == (1, 0, 0)


def test_nested_event_type_matches_a_prefix(api, make_subscriber):
    make_subscriber(event_types=["order.*"])

    response = api.post(URL, {"event_type": "order.line.added", "payload": {}}, format="json")

    assert response.status_code == 202
    assert response.json()["delivery_count"] == 1


def test_empty_payload_object_is_accepted(api):
    response = api.post(URL, {"event_type": "ping", "payload": {}}, format="json")

    assert response.status_code == 202
    assert response.json()["payload"] == {}


def test_unicode_payload_round_trips(api):
    payload = {"name": "Zoë 🚀", "nested": {"list": [1, 2.5, None, True]}}

    response = api.post(URL, {"event_type": "user.renamed", "payload": payload}, format="json")

    assert response.status_code == 202
    assert Event.objects.get(pk=response.json()["id"]).payload == payload


# --- idempotency ----------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_returns_the_original_event_with_200(api, make_subscriber):
    make_subscriber(event_types=["*"])
    first = api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    counts = _row_counts()

    second = api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="order-42")

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["delivery_count"] == 1
    assert _row_counts() == counts == (1, 1, 1)


def test_same_idempotency_key_with_reordered_payload_keys_is_the_same_request(api):
    first = api.post(
        URL,
        {"event_type": "order.created", "payload": {"a": 1, "b": 2}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    second = _post_raw(
        api,
        '{"payload": {"b": 2, "a": 1}, "event_type": "order.created"}',
        HTTP_IDEMPOTENCY_KEY="k1",
    )

    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("header", ["", "   "])
def test_a_blank_idempotency_key_is_refused_not_taken_for_none(api, header):
    response = api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY=header)

    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert Event.objects.count() == 0


def test_same_idempotency_key_with_a_different_body_is_409(api):
    api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="order-42")

    response = api.post(
        URL,
        {"event_type": "order.created", "payload": {"order_id": 43}},
        format="json",
        HTTP_IDEMPOTENCY_KEY="order-42",
    )

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert "order-42" in error["message"]
    assert Event.objects.count() == 1


def test_same_idempotency_key_with_a_different_event_type_is_409(api):
    api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="order-42")

    response = api.post(
        URL,
        {**ORDER_CREATED, "event_type": "order.updated"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="order-42",
    )

    assert response.status_code == 409


def test_idempotency_keys_are_scoped_to_the_api_key(api):
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(name='other').plaintext}")

    first = api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    second = other.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="shared")

    assert first.status_code == 202
    assert second.status_code == 202
    assert first.json()["id"] != second.json()["id"]
    assert Event.objects.count() == 2


def test_requests_without_idempotency_key_are_never_deduplicated(api):
    first = api.post(URL, ORDER_CREATED, format="json")
    second = api.post(URL, ORDER_CREATED, format="json")

    assert first.json()["id"] != second.json()["id"]
    assert Event.objects.count() == 2


def test_idempotency_key_of_255_characters_is_accepted(api):
    response = api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="k" * 255)

    assert response.status_code == 202


def test_idempotency_key_longer_than_255_characters_is_400(api):
    response = api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256)

    _assert_invalid(response, "Idempotency-Key")
    assert _row_counts() == (0, 0, 0)


def test_idempotency_key_with_a_nul_byte_is_400_not_500(api):
    response = api.post(URL, ORDER_CREATED, format="json", HTTP_IDEMPOTENCY_KEY="a\x00b")

    _assert_invalid(response, "Idempotency-Key")


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ['{"event_type": "order.created", ', "{'a': 1}", "nul", "\xff"])
def test_invalid_json_is_400(api, body):
    response = _post_raw(api, body)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert Event.objects.count() == 0


@pytest.mark.parametrize("body", ['["order.created"]', '"order.created"', "42", "null"])
def test_body_that_is_not_a_json_object_is_400(api, body):
    response = _post_raw(api, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"]
    assert Event.objects.count() == 0


def test_missing_event_type_is_400(api):
    response = api.post(URL, {"payload": {}}, format="json")

    _assert_invalid(response, "event_type")


@pytest.mark.parametrize(
    "event_type",
    [
        "Order.Created",
        "order..created",
        "",
        123,
        ".order",
        "order.",
        "order created",
        "*",
        "order.*",
        None,
        ["order.created"],
        {"type": "order.created"},
        "a" * 201,
    ],
)
def test_malformed_event_type_is_400(api, event_type):
    response = api.post(URL, {"event_type": event_type, "payload": {}}, format="json")

    _assert_invalid(response, "event_type")
    assert Event.objects.count() == 0


def test_an_event_type_too_long_is_told_so(api):
    response = api.post(URL, {"event_type": "a" * 201, "payload": {}}, format="json")

    assert response.json()["error"]["fields"]["event_type"] == [
        "Ensure this field has no more than 200 characters."
    ]


def test_missing_payload_is_400(api):
    response = api.post(URL, {"event_type": "order.created"}, format="json")

    _assert_invalid(response, "payload")


@pytest.mark.parametrize(
    "payload", [[1, 2], "a string", None, 42, True], ids=["list", "string", "null", "int", "bool"]
)
def test_payload_that_is_not_an_object_is_400(api, payload):
    response = api.post(URL, {"event_type": "order.created", "payload": payload}, format="json")

    _assert_invalid(response, "payload")
    assert Event.objects.count() == 0


def test_body_over_the_size_limit_is_413(api, settings):
    settings.HERALD_MAX_PAYLOAD_BYTES = 1024
    body = {"event_type": "order.created", "payload": {"blob": "x" * 2000}}

    response = api.post(URL, body, format="json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert "1024" in response.json()["error"]["message"]
    assert Event.objects.count() == 0


def test_a_declared_length_past_djangos_upload_limit_is_a_json_413(api):
    response = _post_raw(api, json.dumps(ORDER_CREATED), CONTENT_LENGTH="50000000")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_body_just_under_the_size_limit_is_accepted(api, settings):
    settings.HERALD_MAX_PAYLOAD_BYTES = 1024
    body = json.dumps({"event_type": "order.created", "payload": {"blob": ""}})
    body = body.replace('""', '"' + "x" * (1024 - len(body)) + '"')
    assert len(body.encode()) == 1024

    response = _post_raw(api, body)

    assert response.status_code == 202


def test_body_longer_than_its_declared_content_length_is_refused(api, settings):
    settings.HERALD_MAX_PAYLOAD_BYTES = 1024
    body = json.dumps({"event_type": "order.created", "payload": {"blob": "x" * 2000}})

    response = _post_raw(api, body, CONTENT_LENGTH="100")

    assert response.status_code in (400, 413)
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_non_json_content_type_is_415(api, content_type):
    response = _post_raw(api, json.dumps(ORDER_CREATED), content_type=content_type)

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert Event.objects.count() == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected_as_invalid_json(api, constant):
    response = _post_raw(api, f'{{"event_type": "order.created", "payload": {{"x": {constant}}}}}')

    assert response.status_code == 400
    assert Event.objects.count() == 0


def test_number_too_large_for_a_float_is_400_not_500(api):
    response = _post_raw(api, '{"event_type": "order.created", "payload": {"x": 1e400}}')

    _assert_invalid(response, "payload")
    assert "finite" in response.json()["error"]["fields"]["payload"][0]
    assert Event.objects.count() == 0


def _nested_body(depth: int) -> str:
    return '{"event_type": "order.created", "payload": {"x": ' + "[" * depth + "]" * depth + "}}"


@pytest.mark.parametrize("depth", [150, 900, 100_000])
def test_deeply_nested_json_is_400_not_500(api, depth):
    response = _post_raw(api, _nested_body(depth))

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"
    assert "deeper" in response.json()["error"]["message"]
    assert Event.objects.count() == 0


def test_moderately_nested_json_is_accepted(api):
    response = _post_raw(api, _nested_body(50))

    assert response.status_code == 202


@pytest.mark.parametrize(
    "payload",
    ['{"note": "a\\u0000b"}', '{"a\\u0000b": 1}', '{"note": "\\ud800"}', '{"list": ["\\udfff"]}'],
    ids=["nul-in-value", "nul-in-key", "lone-high-surrogate", "lone-low-surrogate"],
)
def test_payload_strings_postgres_cannot_store_are_400_not_500(api, payload):
    response = _post_raw(api, f'{{"event_type": "order.created", "payload": {payload}}}')

    _assert_invalid(response, "payload")
    assert Event.objects.count() == 0


def test_empty_body_is_400_naming_the_missing_fields(api):
    response = _post_raw(api, "")

    _assert_invalid(response, "event_type")
    assert "payload" in response.json()["error"]["fields"]


def test_client_cannot_choose_the_event_id(api):
    chosen = str(uuid.uuid4())

    response = api.post(URL, {**ORDER_CREATED, "id": chosen}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"id": ["Unknown field."]}
    assert not Event.objects.exists()


def test_a_misspelt_field_is_refused_not_ignored(api):
    response = api.post(URL, {**ORDER_CREATED, "paylod": {"x": 1}}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "paylod: Unknown field."


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_events_cannot_be_changed(api, method):
    ingested = event_create(event_type="order.created", payload={})

    response = getattr(api, method)(f"{URL}/{ingested.event.id}", ORDER_CREATED, format="json")

    assert response.status_code == 405
    assert Event.objects.get().payload == {}


# --- reads ----------------------------------------------------------------------------------------


def test_list_shows_events_newest_first_with_delivery_counts(api, make_subscriber):
    make_subscriber(event_types=["order.*"])
    older = event_create(event_type="invoice.paid", payload={"n": 1}).event
    newer = event_create(event_type="order.created", payload={"n": 2}).event

    response = api.get(URL)

    assert response.status_code == 200
    body = response.json()
    assert "next" in body
    assert [row["id"] for row in body["results"]] == [str(newer.id), str(older.id)]
    assert [row["delivery_count"] for row in body["results"]] == [1, 0]


def test_list_filters_by_event_type(api):
    wanted = event_create(event_type="order.created", payload={}).event
    event_create(event_type="order.updated", payload={})

    response = api.get(URL, {"event_type": "order.created"})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(wanted.id)]


def test_list_filters_by_created_after_and_created_before(api):
    now = timezone.now()
    old = event_create(event_type="a.old", payload={}).event
    middle = event_create(event_type="a.middle", payload={}).event
    new = event_create(event_type="a.new", payload={}).event
    Event.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=3))
    Event.objects.filter(pk=middle.pk).update(created_at=now - timedelta(days=1))

    after = api.get(URL, {"created_after": (now - timedelta(days=2)).isoformat()})
    before = api.get(URL, {"created_before": (now - timedelta(days=2)).isoformat()})
    between = api.get(
        URL,
        {
            "created_after": (now - timedelta(days=2)).isoformat(),
            "created_before": (now - timedelta(hours=1)).isoformat(),
        },
    )

    assert {row["id"] for row in after.json()["results"]} == {str(middle.id), str(new.id)}
    assert [row["id"] for row in before.json()["results"]] == [str(old.id)]
    assert [row["id"] for row in between.json()["results"]] == [str(middle.id)]


def test_created_after_accepts_a_utc_z_timestamp(api):
    event = event_create(event_type="a.b", payload={}).event

    response = api.get(URL, {"created_after": "2000-01-01T00:00:00Z"})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(event.id)]


@pytest.mark.parametrize("field", ["created_after", "created_before"])
@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", "12345"])
def test_invalid_created_filter_is_400_naming_it(api, field, value):
    response = api.get(URL, {field: value})

    _assert_invalid(response, field)


def test_page_size_limits_the_results_and_gives_a_next_link(api):
    for index in range(3):
        event_create(event_type="a.b", payload={"n": index})

    first = api.get(URL, {"page_size": 2}).json()
    second = api.get(first["next"]).json()

    assert len(first["results"]) == 2
    assert len(second["results"]) == 1
    assert second["next"] is None
    seen = [row["payload"]["n"] for row in first["results"] + second["results"]]
    assert seen == [2, 1, 0]


def test_detail_shows_each_subscribers_delivery(api, make_subscriber):
    first = make_subscriber(name="first", event_types=["order.*"])
    second = make_subscriber(name="second", event_types=["*"])
    make_subscriber(name="not matching", event_types=["invoice.paid"])
    event = event_create(event_type="order.created", payload={"order_id": 1}).event
    Delivery.objects.filter(event=event, subscriber=second).update(
        status=Delivery.Status.DELIVERED, attempt_count=1, last_status_code=200
    )

    response = api.get(f"{URL}/{event.id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(event.id)
    assert body["event_type"] == "order.created"
    assert body["payload"] == {"order_id": 1}
    assert body["delivery_count"] == 2
    by_subscriber = {row["subscriber_id"]: row for row in body["deliveries"]}
    assert set(by_subscriber) == {str(first.id), str(second.id)}
    assert by_subscriber[str(first.id)]["status"] == "pending"
    assert by_subscriber[str(first.id)]["subscriber_name"] == "first"
    assert by_subscriber[str(second.id)]["status"] == "delivered"
    assert by_subscriber[str(second.id)]["last_status_code"] == 200


def test_detail_of_unknown_event_is_404(api):
    response = api.get(f"{URL}/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_detail_with_malformed_id_is_404(api):
    response = api.get(f"{URL}/not-a-uuid")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- rendering --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        datetime(2026, 11, 24, 9, 0, 0, 123456, tzinfo=UTC),
        datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/Paris")),
    ],
)
def test_the_written_out_rendering_equals_the_documented_serializer(created_at):
    event = Event(
        event_type="order.created",
        payload={"order_id": 42, "lines": [{"sku": "A-1", "qty": 2}], "note": "crème"},
        created_at=created_at,
    )
    event.delivery_count = 3

    assert _rendered(event) == EventSerializer(event).data
