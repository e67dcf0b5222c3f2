"""Requests Django refuses before any view runs still get the API's JSON error shape under /api/."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_too_many_query_parameters_is_a_json_400(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    query = "&".join(f"event_type=a{n}" for n in range(11))

    response = api.get(f"/api/v1/events?{query}")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    assert "More than 10 query parameters" in error["message"]


def test_a_forbidden_host_is_a_json_400_that_says_no_more(api):
    response = api.get("/api/v1/events", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "bad_request",
        "message": "Bad request.",
        "fields": {},
    }


def test_pages_outside_the_api_keep_djangos_400(client):
    response = client.get("/admin/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
