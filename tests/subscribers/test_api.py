"""The subscribers endpoints: create (secret shown once), read, update, delete, validation."""

from __future__ import annotations

import base64
import uuid

import pytest

from subscribers.api import SubscriberViewSet
from subscribers.models import Subscriber

URL = "/api/v1/subscribers"


def _detail(subscriber_id) -> str:
    return f"{URL}/{subscriber_id}"


def _valid(**overrides) -> dict:
    body = {
        "name": "billing",
        "endpoint_url": "https://billing.example.com/hooks",
        "event_types": ["order.created", "invoice.*"],
    }
    body.update(overrides)
    return body


def _assert_field_error(response, field: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert error["message"]


# --- create ---------------------------------------------------------------------------------------


def test_create_returns_201_with_the_subscriber_and_a_generated_secret(api):
    response = api.post(URL, _valid(rate_limit_per_second=5), format="json")

    assert response.status_code == 201
    body = response.json()
    uuid.UUID(body["id"])
    assert body["name"] == "billing"
    assert body["endpoint_url"] == "https://billing.example.com/hooks"
    assert body["event_types"] == ["order.created", "invoice.*"]
    assert body["rate_limit_per_second"] == 5
    assert body["is_active"] is True
    assert body["created_at"]
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"), validate=True)) == 24
    stored = Subscriber.objects.get(pk=body["id"])
    assert stored.secret == body["secret"]


def test_create_refuses_a_secret_sent_by_the_client(api):
    response = api.post(URL, _valid(secret="whsec_chosenbyclient"), format="json")

    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"secret": ["Unknown field."]}
    assert not Subscriber.objects.exists()


def test_read_only_and_misspelt_fields_are_refused_not_ignored(api):
    created = api.post(URL, _valid(), format="json").json()

    misspelt = api.patch(f"{URL}/{created['id']}", {"rate_limt_per_second": 5}, format="json")
    read_only = api.patch(f"{URL}/{created['id']}", {"circuit_state": "open"}, format="json")

    assert misspelt.status_code == 400
    assert misspelt.json()["error"]["fields"] == {"rate_limt_per_second": ["Unknown field."]}
    assert read_only.status_code == 400
    assert read_only.json()["error"]["fields"] == {
        "circuit_state": ["Read-only: it cannot be set."]
    }


@pytest.mark.parametrize(
    "field, value",
    [("is_active", 0), ("is_active", "false"), ("name", 42), ("rate_limit_per_second", "5")],
)
def test_values_of_the_wrong_json_type_are_refused_not_coerced(api, field, value):
    created = api.post(URL, _valid(), format="json").json()

    response = api.patch(f"{URL}/{created['id']}", {field: value}, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]


def test_each_subscriber_gets_its_own_secret(api):
    first = api.post(URL, _valid(), format="json").json()
    second = api.post(URL, _valid(), format="json").json()

    assert first["secret"] != second["secret"]


def test_create_deduplicates_event_type_patterns(api):
    response = api.post(
        URL, _valid(event_types=["order.created", "order.created", "*"]), format="json"
    )

    assert response.status_code == 201
    assert response.json()["event_types"] == ["order.created", "*"]


def test_create_without_rate_limit_stores_null(api):
    response = api.post(URL, _valid(), format="json")

    assert response.status_code == 201
    assert response.json()["rate_limit_per_second"] is None


# --- read -----------------------------------------------------------------------------------------


def test_secret_is_not_shown_in_list_or_detail(api):
    created = api.post(URL, _valid(), format="json").json()

    listed = api.get(URL).json()["results"]
    detail = api.get(_detail(created["id"])).json()

    assert [row["id"] for row in listed] == [created["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in detail
    assert created["secret"] not in str(listed)
    assert created["secret"] not in str(detail)


def test_list_is_paginated_newest_first(api, make_subscriber):
    for index in range(3):
        make_subscriber(name=f"s{index}")

    first = api.get(URL, {"page_size": 2})

    assert first.status_code == 200
    body = first.json()
    assert set(body) >= {"results", "next"}
    assert [row["name"] for row in body["results"]] == ["s2", "s1"]
    assert body["next"]
    second = api.get(body["next"]).json()
    assert [row["name"] for row in second["results"]] == ["s0"]
    assert second["next"] is None


def test_list_filters_by_is_active(api, make_subscriber):
    active = make_subscriber(name="active")
    paused = make_subscriber(name="paused")
    Subscriber.objects.filter(pk=paused.pk).update(is_active=False)

    response = api.get(URL, {"is_active": "true"})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(active.id)]


@pytest.mark.parametrize("value", ["maybe", "yes", "2"])
def test_invalid_is_active_filter_is_400_naming_it(api, make_subscriber, value):
    make_subscriber()

    response = api.get(URL, {"is_active": value})

    _assert_field_error(response, "is_active")


def test_is_active_false_lists_only_inactive_subscribers(api, make_subscriber):
    make_subscriber(name="active")
    paused = make_subscriber(name="paused")
    Subscriber.objects.filter(pk=paused.pk).update(is_active=False)

    response = api.get(URL, {"is_active": "false"})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(paused.id)]


def test_detail_returns_the_subscriber(api, make_subscriber):
    subscriber = make_subscriber(name="shipping", event_types=["shipment.*"])

    response = api.get(_detail(subscriber.id))

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(subscriber.id)
    assert body["name"] == "shipping"
    assert body["event_types"] == ["shipment.*"]
    assert body["is_active"] is True


def test_unknown_id_is_a_json_404(api):
    response = api.get(_detail(uuid.uuid4()))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_malformed_id_is_a_json_404(api, method):
    response = getattr(api, method)(f"{URL}/not-a-uuid", format="json")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"


# --- update ---------------------------------------------------------------------------------------


def test_patch_changes_name_event_types_and_is_active(api, make_subscriber):
    subscriber = make_subscriber(name="old", event_types=["*"])

    response = api.patch(
        _detail(subscriber.id),
        {"name": "new", "event_types": ["invoice.paid"], "is_active": False},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "new"
    assert body["event_types"] == ["invoice.paid"]
    assert body["is_active"] is False
    assert "secret" not in body
    subscriber.refresh_from_db()
    assert (subscriber.name, subscriber.event_types, subscriber.is_active) == (
        "new",
        ["invoice.paid"],
        False,
    )


def test_patch_reactivating_clears_the_deactivation_reason(api, make_subscriber):
    subscriber = make_subscriber()
    Subscriber.objects.filter(pk=subscriber.pk).update(
        is_active=False, deactivated_reason="410 Gone"
    )

    response = api.patch(_detail(subscriber.id), {"is_active": True}, format="json")

    assert response.status_code == 200
    assert response.json()["is_active"] is True
    assert response.json()["deactivated_reason"] == ""


def test_patch_leaves_unsent_fields_and_the_secret_alone(api, make_subscriber):
    subscriber = make_subscriber(name="keep", event_types=["order.*"])

    response = api.patch(_detail(subscriber.id), {"name": "renamed"}, format="json")

    assert response.status_code == 200
    refreshed = Subscriber.objects.get(pk=subscriber.pk)
    assert refreshed.event_types == ["order.*"]
    assert refreshed.secret == subscriber.secret


def test_patch_of_a_subscriber_deleted_meanwhile_is_404_and_does_not_bring_it_back(
    api, make_subscriber, between_lookup_and_write
):
    subscriber = make_subscriber()
    between_lookup_and_write(
        SubscriberViewSet, lambda found: Subscriber.objects.filter(pk=found.pk).delete()
    )

    response = api.patch(_detail(subscriber.id), {"name": "renamed"}, format="json")

    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"
    assert not Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_patch_keeps_the_circuit_a_worker_opened_meanwhile(
    api, make_subscriber, between_lookup_and_write
):
    subscriber = make_subscriber()
    between_lookup_and_write(
        SubscriberViewSet,
        lambda found: Subscriber.objects.filter(pk=found.pk).update(
            circuit_state=Subscriber.Circuit.OPEN, consecutive_failures=5
        ),
    )

    response = api.patch(_detail(subscriber.id), {"name": "renamed"}, format="json")

    assert response.status_code == 200, response.content
    refreshed = Subscriber.objects.get(pk=subscriber.pk)
    assert (refreshed.name, refreshed.circuit_state, refreshed.consecutive_failures) == (
        "renamed",
        Subscriber.Circuit.OPEN,
        5,
    )


def test_patch_resuming_a_subscriber_paused_meanwhile_clears_the_reason(
    api, make_subscriber, between_lookup_and_write
):
    subscriber = make_subscriber()
    between_lookup_and_write(
        SubscriberViewSet,
        lambda found: Subscriber.objects.filter(pk=found.pk).update(
            is_active=False, deactivated_reason="410 Gone"
        ),
    )

    response = api.patch(_detail(subscriber.id), {"is_active": True}, format="json")

    assert response.status_code == 200, response.content
    refreshed = Subscriber.objects.get(pk=subscriber.pk)
    assert (refreshed.is_active, refreshed.deactivated_reason) == (True, "")


def test_rotating_the_secret_of_a_subscriber_deleted_meanwhile_is_404(
    api, make_subscriber, between_lookup_and_write
):
    subscriber = make_subscriber()
    between_lookup_and_write(
        SubscriberViewSet, lambda found: Subscriber.objects.filter(pk=found.pk).delete()
    )

    response = api.post(f"{_detail(subscriber.id)}/rotate-secret", format="json")

    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "not_found"


def test_patch_validates_like_create(api, make_subscriber):
    subscriber = make_subscriber()

    response = api.patch(_detail(subscriber.id), {"event_types": []}, format="json")

    _assert_field_error(response, "event_types")
    assert Subscriber.objects.get(pk=subscriber.pk).event_types == ["*"]


def test_put_is_not_allowed(api, make_subscriber):
    subscriber = make_subscriber()

    response = api.put(_detail(subscriber.id), _valid(), format="json")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


# --- delete ---------------------------------------------------------------------------------------


def test_delete_returns_204_and_then_the_subscriber_is_gone(api, make_subscriber):
    subscriber = make_subscriber()

    deleted = api.delete(_detail(subscriber.id))
    after = api.get(_detail(subscriber.id))

    assert deleted.status_code == 204
    assert after.status_code == 404
    assert after.json()["error"]["code"] == "not_found"
    assert not Subscriber.objects.filter(pk=subscriber.pk).exists()


def test_delete_unknown_id_is_404(api):
    response = api.delete(_detail(uuid.uuid4()))

    assert response.status_code == 404


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint_url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "example.com/hook",
        "http://",
        "",
        42,
        None,
    ],
)
def test_endpoint_url_must_be_an_http_or_https_url(api, endpoint_url):
    response = api.post(URL, _valid(endpoint_url=endpoint_url), format="json")

    _assert_field_error(response, "endpoint_url")
    assert Subscriber.objects.count() == 0


@pytest.mark.parametrize(
    "endpoint_url", ["https://user:secret@example.com/hook", "https://token@example.com/hook"]
)
def test_an_endpoint_url_with_credentials_is_refused(api, endpoint_url):
    response = api.post(URL, _valid(endpoint_url=endpoint_url), format="json")

    message = response.json()["error"]["fields"]["endpoint_url"][0]
    assert "must not carry credentials" in message
    assert Subscriber.objects.count() == 0


def test_an_endpoint_url_that_is_no_url_says_what_would_be(api):
    response = api.post(URL, _valid(endpoint_url="ftp://x"), format="json")

    assert response.json()["error"]["fields"]["endpoint_url"] == [
        "Enter a valid http or https URL, e.g. https://example.com/webhooks."
    ]


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_endpoint_url_port_must_be_deliverable(api, port):
    response = api.post(URL, _valid(endpoint_url=f"https://example.com:{port}/hook"), format="json")

    _assert_field_error(response, "endpoint_url")
    assert Subscriber.objects.count() == 0


@pytest.mark.parametrize("port", ["1", "8443", "65535"])
def test_endpoint_url_with_an_explicit_port_is_accepted(api, port):
    response = api.post(URL, _valid(endpoint_url=f"https://example.com:{port}/hook"), format="json")

    assert response.status_code == 201


@pytest.mark.parametrize(
    "endpoint_url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://224.0.0.1/hook",
        "http://100.64.0.1/hook",
        "http://240.0.0.1/hook",
    ],
)
def test_private_endpoint_urls_are_refused_unless_allowed(api, settings, endpoint_url):
    settings.HERALD_ALLOW_PRIVATE_TARGETS = False

    response = api.post(URL, _valid(endpoint_url=endpoint_url), format="json")

    _assert_field_error(response, "endpoint_url")


def test_private_endpoint_urls_are_accepted_when_allowed(api, settings):
    settings.HERALD_ALLOW_PRIVATE_TARGETS = True

    response = api.post(URL, _valid(endpoint_url="http://127.0.0.1:8000/hook"), format="json")

    assert response.status_code == 201


def test_name_is_required(api):
    body = _valid()
    del body["name"]

    response = api.post(URL, body, format="json")

    _assert_field_error(response, "name")


@pytest.mark.parametrize("name", ["", "x" * 201, None, "nul\x00byte"])
def test_name_must_be_a_non_empty_short_string(api, name):
    response = api.post(URL, _valid(name=name), format="json")

    _assert_field_error(response, "name")


def test_name_with_a_lone_surrogate_is_400(api):
    body = '{"name": "\\ud800", "endpoint_url": "https://e.example/", "event_types": ["*"]}'

    response = api.post(URL, body, content_type="application/json")

    _assert_field_error(response, "name")


def test_endpoint_url_and_event_types_are_required(api):
    response = api.post(URL, {"name": "only a name"}, format="json")

    _assert_field_error(response, "endpoint_url")
    _assert_field_error(response, "event_types")


@pytest.mark.parametrize(
    "event_types",
    [[], "order.created", {"order.created": True}, None, 7],
    ids=["empty-list", "string", "object", "null", "number"],
)
def test_event_types_must_be_a_non_empty_list(api, event_types):
    response = api.post(URL, _valid(event_types=event_types), format="json")

    _assert_field_error(response, "event_types")


@pytest.mark.parametrize(
    "pattern",
    ["Order.Created", "order.**", "*.created", "order.", ".order", "order..created", "", "**"],
)
def test_event_types_patterns_must_be_valid(api, pattern):
    response = api.post(URL, _valid(event_types=["order.created", pattern]), format="json")

    _assert_field_error(response, "event_types")
    assert Subscriber.objects.count() == 0


def test_event_types_entries_must_be_strings(api):
    response = api.post(URL, _valid(event_types=[{"type": "order.created"}]), format="json")

    _assert_field_error(response, "event_types")


@pytest.mark.parametrize("rate", [0, -1, -0.5, "fast", "NaN", "Infinity", [1]])
def test_rate_limit_must_be_a_positive_number(api, rate):
    response = api.post(URL, _valid(rate_limit_per_second=rate), format="json")

    _assert_field_error(response, "rate_limit_per_second")
    assert Subscriber.objects.count() == 0


@pytest.mark.parametrize("body", ['["not", "an", "object"]', '"a string"', "{not json"])
def test_body_that_is_not_a_json_object_is_400(api, body):
    response = api.post(URL, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_form_encoded_body_is_415(api):
    response = api.post(URL, {"name": "x"})

    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
