"""The published contract: a valid OpenAPI schema documenting every operation, parameter, error
and example; Swagger UI served offline; lists that page, filter and order the same way."""

from __future__ import annotations

import base64
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command

from events.services import event_create

LISTS = ["events", "deliveries", "dead-letters", "subscribers", "sources"]


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    out = StringIO()
    with django_db_blocker.unblock():
        # Raises on any warning or on a schema that does not validate against OpenAPI 3.
        call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return yaml.safe_load(out.getvalue())


def _operations(schema: dict):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield f"{method.upper()} {path}", operation


def _examples(content: dict) -> dict:
    return content.get("examples") or ({"": content["example"]} if "example" in content else {})


def test_every_operation_has_a_summary_described_parameters_and_examples(schema):
    problems = []
    for name, operation in _operations(schema):
        if not operation.get("summary"):
            problems.append(f"{name}: no summary")
        for parameter in operation.get("parameters", []):
            if not parameter.get("description"):
                problems.append(f"{name}: parameter {parameter['name']} undescribed")
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            if not _examples(content):
                problems.append(f"{name}: no request example for {media_type}")
        for code, response in operation["responses"].items():
            if not response.get("description"):
                problems.append(f"{name} {code}: no description")
            for media_type, content in response.get("content", {}).items():
                if not _examples(content):
                    problems.append(f"{name} {code}: no example for {media_type}")
    assert problems == []


def test_every_error_has_the_one_shape(schema):
    error = {"$ref": "#/components/schemas/Error"}
    for name, operation in _operations(schema):
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")) and name != "GET /api/v1/health":
                assert response["content"]["application/json"]["schema"] == error, (name, code)
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message", "fields"}


def test_every_keyed_operation_documents_401_and_its_scope(schema):
    for name, operation in _operations(schema):
        if operation.get("security") in (None, [{}]) or name.startswith("GET /metrics"):
            continue
        assert "401" in operation["responses"], name
        assert "403" in operation["responses"], name
        assert "Needs an API key with the scope" in operation["description"], name


def test_keyless_operations_say_so(schema):
    ingest = schema["paths"]["/api/v1/ingest/{slug}"]["post"]
    health = schema["paths"]["/api/v1/health"]["get"]

    assert "No API key needed." in ingest["description"]
    assert set(health["responses"]) == {"200", "503"}


@pytest.mark.parametrize("resource", LISTS)
def test_every_list_pages_filters_by_time_and_orders_by_time(schema, resource):
    operation = schema["paths"][f"/api/v1/{resource}"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}

    assert {"cursor", "page_size", "ordering", "created_after", "created_before"} <= set(parameters)
    assert parameters["ordering"]["schema"]["enum"] == ["-created_at", "created_at"]
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    paginated = schema["components"]["schemas"][page.rsplit("/", 1)[1]]
    assert "next" in paginated["properties"]


def test_lists_filter_by_status_subscriber_and_event_type(schema):
    def names(resource: str) -> set[str]:
        return {p["name"] for p in schema["paths"][f"/api/v1/{resource}"]["get"]["parameters"]}

    assert {"status", "subscriber_id", "event_id", "event_type"} <= names("deliveries")
    assert {"subscriber_id", "event_type", "resolved"} <= names("dead-letters")
    assert {"event_type", "source"} <= names("events")
    assert {"is_active"} <= names("subscribers")
    assert {"is_active", "scheme"} <= names("sources")


@pytest.mark.django_db
def test_swagger_ui_is_served_without_any_cdn(client):
    response = client.get("/api/docs/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn." not in page and "unpkg" not in page
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


# --- the lists at work ------------------------------------------------------------------------


@pytest.fixture
def ten_events(make_subscriber):
    make_subscriber()
    return [event_create(event_type=f"order.n{n}", payload={"n": n}).event for n in range(10)]


@pytest.mark.parametrize(
    "query, field",
    [
        ("page_size=abc", "page_size"),
        ("page_size=0", "page_size"),
        ("page_size=501", "page_size"),
        ("cursor=not-a-cursor", "cursor"),
        (f"cursor={base64.b64encode(b'p=yesterday').decode()}", "cursor"),
        ("ordering=name", "ordering"),
        ("ordering=", "ordering"),
    ],
)
@pytest.mark.parametrize("resource", LISTS)
def test_bad_paging_or_ordering_is_a_400_naming_it(api, resource, query, field):
    response = api.get(f"/api/v1/{resource}?{query}")

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_oldest_first_with_ordering_and_the_next_link_continues_it(api, ten_events):
    first = api.get("/api/v1/events?ordering=created_at&page_size=4").json()
    next_url = urlsplit(first["next"])
    second = api.get(f"{next_url.path}?{next_url.query}").json()

    assert parse_qs(next_url.query)["ordering"] == ["created_at"]
    seen = [e["payload"]["n"] for e in first["results"] + second["results"]]
    assert seen == list(range(8))


def test_newest_first_by_default(api, ten_events):
    results = api.get("/api/v1/events?page_size=3").json()["results"]

    assert [e["payload"]["n"] for e in results] == [9, 8, 7]


def test_event_type_filters_take_prefix_patterns(api, make_subscriber):
    make_subscriber()
    event_create(event_type="order.created", payload={})
    event_create(event_type="order.line.added", payload={})
    event_create(event_type="invoice.paid", payload={})

    events = api.get("/api/v1/events?event_type=order.*").json()["results"]
    deliveries = api.get("/api/v1/deliveries?event_type=order.*").json()["results"]
    exact = api.get("/api/v1/deliveries?event_type=invoice.paid").json()["results"]
    bad = api.get("/api/v1/deliveries?event_type=Order!")

    assert sorted(e["event_type"] for e in events) == ["order.created", "order.line.added"]
    assert len(deliveries) == 2
    assert len(exact) == 1
    assert bad.status_code == 400
    assert "event_type" in bad.json()["error"]["fields"]


@pytest.mark.parametrize("resource", LISTS)
@pytest.mark.parametrize(
    "value, status",
    [
        ("2187-05-01T13:12:56-20:22", 200),  # past PostgreSQL's ±15:59: converted to UTC first
        ("1304-12-29T05:59:35.6+18:25", 200),
        ("9999-12-31T23:00:00-05:00", 400),  # past year 9999 in UTC
        ("0001-01-01T00:30:00+01:00", 400),
    ],
)
def test_time_filters_take_any_iso_offset(api, resource, value, status):
    response = api.get(f"/api/v1/{resource}", {"created_after": value})

    assert response.status_code == status, response.content


@pytest.mark.parametrize(
    "query", ["status=", "status=pending&status=failed", "page_size=5&page_size=6"]
)
def test_empty_or_repeated_parameters_are_a_400(api, query):
    response = api.get(f"/api/v1/deliveries?{query}")

    assert response.status_code == 400


@pytest.mark.parametrize("resource", LISTS)
def test_an_unknown_query_parameter_is_a_400_naming_it_and_what_the_list_takes(api, resource):
    response = api.get(f"/api/v1/{resource}?stauts=failed")

    assert response.status_code == 400, response.content
    message = response.json()["error"]["fields"]["stauts"][0]
    assert message.startswith("Unknown query parameter; this endpoint takes: ")
    assert "created_after" in message and "page_size" in message and "ordering" in message


def test_a_detail_takes_no_query_parameters(api, ten_events):
    response = api.get(f"/api/v1/events/{ten_events[0].pk}?page_size=5")

    assert response.status_code == 400
    assert "page_size" in response.json()["error"]["fields"]


def test_a_value_a_choice_filter_does_not_take_is_a_400_listing_those_it_does(api):
    response = api.get("/api/v1/deliveries?status=bogus")

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["status"] == [
        "bogus is not one of the values this takes: pending, in_flight, retrying, delivered, "
        "failed."
    ]
