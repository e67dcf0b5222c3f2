"""API keys: stored hashed, checked on every request, issued by a management command."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone
from rest_framework.test import APIClient

from config.apikeys import api_key_authenticate, api_key_create, api_keys_revoke
from config.models import ApiKey
from deliveries.heartbeat import worker_heartbeat
from events.models import Event

PROTECTED_URLS = [
    "/api/v1/subscribers",
    "/api/v1/events",
    "/api/v1/deliveries",
    "/api/v1/dead-letters",
]


def _secret_of(plaintext: str) -> str:
    return plaintext.split("_", 2)[2]


def _assert_error_shape(body: dict) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]


# --- storage and checking ---------------------------------------------------------------------


@pytest.mark.django_db
def test_issued_key_has_the_documented_shape():
    issued = api_key_create(name="billing-service")

    marker, prefix, secret = issued.plaintext.split("_", 2)

    assert marker == "hrld"
    assert prefix == issued.api_key.prefix
    assert len(secret) >= 32


@pytest.mark.django_db
def test_key_is_stored_hashed_and_the_plaintext_appears_nowhere_in_the_row():
    issued = api_key_create(name="billing-service")
    secret = _secret_of(issued.plaintext)

    row = ApiKey.objects.filter(pk=issued.api_key.pk).values().get()

    stored = [str(value) for value in row.values()]
    assert not any(issued.plaintext in value for value in stored)
    assert not any(secret in value for value in stored)
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.django_db
def test_authenticate_accepts_the_issued_key_and_records_its_use():
    issued = api_key_create(name="billing-service")

    found = api_key_authenticate(plaintext=issued.plaintext)

    assert found is not None
    assert found.pk == issued.api_key.pk
    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at is not None


@pytest.mark.django_db
def test_authenticate_rejects_a_wrong_secret():
    issued = api_key_create(name="billing-service")
    wrong = f"hrld_{issued.api_key.prefix}_{'x' * len(_secret_of(issued.plaintext))}"

    assert api_key_authenticate(plaintext=wrong) is None


@pytest.mark.django_db
def test_authenticate_rejects_an_unknown_prefix():
    issued = api_key_create(name="billing-service")
    unknown = f"hrld_00000000_{_secret_of(issued.plaintext)}"
    assert issued.api_key.prefix != "00000000"

    assert api_key_authenticate(plaintext=unknown) is None


@pytest.mark.django_db
@pytest.mark.parametrize("plaintext", ["", "hrld", "hrld_abc", "sk_live_abc", "Bearer hrld_a_b"])
def test_authenticate_rejects_malformed_keys(plaintext):
    api_key_create(name="billing-service")

    assert api_key_authenticate(plaintext=plaintext) is None


@pytest.mark.django_db
def test_authenticate_rejects_a_revoked_key():
    issued = api_key_create(name="billing-service")

    revoked = api_keys_revoke(
        api_keys=ApiKey.objects.filter(pk=issued.api_key.pk), now=timezone.now()
    )

    assert revoked == 1
    assert api_key_authenticate(plaintext=issued.plaintext) is None


# --- the management command --------------------------------------------------------------------


@pytest.mark.django_db
def test_create_api_key_prints_the_key_alone_on_the_last_stdout_line_and_it_authenticates():
    stdout, stderr = StringIO(), StringIO()

    call_command("create_api_key", "billing-service", stdout=stdout, stderr=stderr)

    last_line = stdout.getvalue().strip().splitlines()[-1]
    assert last_line.startswith("hrld_")
    assert " " not in last_line
    api_key = api_key_authenticate(plaintext=last_line)
    assert api_key is not None
    assert api_key.name == "billing-service"
    assert ApiKey.objects.count() == 1


@pytest.mark.django_db
def test_create_api_key_key_works_against_the_api():
    stdout = StringIO()
    call_command("create_api_key", "ops", stdout=stdout, stderr=StringIO())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {stdout.getvalue().strip().splitlines()[-1]}")

    response = client.get("/api/v1/subscribers")

    assert response.status_code == 200


# --- the API's authentication ------------------------------------------------------------------


def test_authenticated_client_is_let_in(api):
    response = api.get("/api/v1/subscribers")

    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("url", PROTECTED_URLS)
def test_request_without_a_key_is_401_with_the_json_error_shape(url):
    response = APIClient().get(url)

    assert response.status_code == 401
    _assert_error_shape(response.json())
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_post_without_a_key_is_401_and_creates_nothing():
    response = APIClient().post(
        "/api/v1/events", {"event_type": "order.created", "payload": {}}, format="json"
    )

    assert response.status_code == 401
    _assert_error_shape(response.json())
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    "header",
    [
        "Token {key}",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer   ",
        "{key}",
        "Bearer not-a-herald-key",
        "Bearer hrld_deadbeef_nosuchsecret",
    ],
)
def test_request_with_a_malformed_or_wrong_authorization_header_is_401(issued_key, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.format(key=issued_key.plaintext))

    response = client.get("/api/v1/subscribers")

    assert response.status_code == 401
    _assert_error_shape(response.json())
    assert response.json()["error"]["code"] == "authentication_failed"


def test_request_with_a_tampered_secret_is_401(issued_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued_key.plaintext}x")

    response = client.get("/api/v1/subscribers")

    assert response.status_code == 401
    _assert_error_shape(response.json())


def test_request_with_a_revoked_key_is_401(api, issued_key):
    assert api.get("/api/v1/subscribers").status_code == 200
    api_keys_revoke(api_keys=ApiKey.objects.filter(pk=issued_key.api_key.pk), now=timezone.now())

    response = api.get("/api/v1/subscribers")

    assert response.status_code == 401
    _assert_error_shape(response.json())
    assert "revoked" in response.json()["error"]["message"].lower()


def test_request_with_a_nul_byte_in_the_key_is_401_not_500(issued_key):
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer hrld_ab\x00cd_{_secret_of(issued_key.plaintext)}"
    )

    response = client.get("/api/v1/subscribers")

    assert response.status_code == 401
    _assert_error_shape(response.json())


# --- health --------------------------------------------------------------------------------------


@pytest.fixture
def worker_alive(db):
    worker_heartbeat(worker="test:1", started_at=timezone.now(), now=timezone.now())


def test_health_needs_no_key_and_reports_ok(worker_alive):
    response = APIClient().get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"


@pytest.mark.django_db
def test_health_reports_503_when_the_database_is_unreachable(monkeypatch):
    class BrokenConnection:
        def cursor(self):
            raise DatabaseError("connection refused")

    monkeypatch.setattr("config.api.health.connection", BrokenConnection())

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "connection refused" in response.json()["database"]


def test_health_ignores_a_bad_key(worker_alive):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer hrld_deadbeef_nosuchsecret")

    response = client.get("/api/v1/health")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.django_db
def test_unknown_api_path_is_a_json_404_without_a_key():
    response = APIClient().get("/api/v1/no-such-thing")

    assert response.status_code == 404
    _assert_error_shape(response.json())
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unknown_api_path_is_a_json_404_for_every_method(method):
    # enforce_csrf_checks: the test client otherwise skips what a real client meets.
    from django.test import Client

    response = getattr(Client(enforce_csrf_checks=True), method)("/api/v1/nope")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_openapi_schema_declares_bearer_api_keys(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    schema = response.json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `manage.py create_api_key NAME` or the admin.",
    }
    assert {"ApiKey": []} in schema["paths"]["/api/v1/events"]["post"]["security"]


# --- the per-process cache of active keys -----------------------------------------------------


def _revoke_behind_this_process(api_key: ApiKey) -> None:
    # What a revocation in another web process looks like from here: the row changes, and this
    # process's cache is not told.
    ApiKey.objects.filter(pk=api_key.pk).update(revoked_at=timezone.now())


@pytest.mark.django_db
def test_a_key_found_active_is_not_read_again_within_the_cache_time(
    settings, django_assert_num_queries
):
    settings.HERALD_API_KEY_CACHE_SECONDS = 60
    issued = api_key_create(name="billing-service")
    assert api_key_authenticate(plaintext=issued.plaintext) is not None

    with django_assert_num_queries(0):
        again = api_key_authenticate(plaintext=issued.plaintext)

    assert again is not None and again.pk == issued.api_key.pk


@pytest.mark.django_db
def test_a_cached_key_still_checks_the_secret(settings):
    settings.HERALD_API_KEY_CACHE_SECONDS = 60
    issued = api_key_create(name="billing-service")
    assert api_key_authenticate(plaintext=issued.plaintext) is not None

    assert api_key_authenticate(plaintext=f"{issued.plaintext}x") is None


@pytest.mark.django_db
def test_a_key_revoked_elsewhere_is_refused_once_the_cache_time_is_up(settings):
    settings.HERALD_API_KEY_CACHE_SECONDS = 0.3
    issued = api_key_create(name="billing-service")
    assert api_key_authenticate(plaintext=issued.plaintext) is not None
    _revoke_behind_this_process(issued.api_key)

    trusted_meanwhile = api_key_authenticate(plaintext=issued.plaintext)
    time.sleep(0.4)

    assert trusted_meanwhile is not None
    assert api_key_authenticate(plaintext=issued.plaintext) is None


@pytest.mark.django_db
def test_with_no_cache_time_a_key_revoked_elsewhere_is_refused_at_once(settings):
    settings.HERALD_API_KEY_CACHE_SECONDS = 0
    issued = api_key_create(name="billing-service")
    assert api_key_authenticate(plaintext=issued.plaintext) is not None
    _revoke_behind_this_process(issued.api_key)

    assert api_key_authenticate(plaintext=issued.plaintext) is None


@pytest.mark.django_db
def test_revoking_in_this_process_is_immediate_despite_the_cache(settings):
    settings.HERALD_API_KEY_CACHE_SECONDS = 60
    issued = api_key_create(name="billing-service")
    assert api_key_authenticate(plaintext=issued.plaintext) is not None

    api_keys_revoke(api_keys=ApiKey.objects.filter(pk=issued.api_key.pk), now=timezone.now())

    assert api_key_authenticate(plaintext=issued.plaintext) is None


@pytest.mark.django_db
def test_changed_scopes_apply_to_the_next_request_in_this_process(settings):
    settings.HERALD_API_KEY_CACHE_SECONDS = 60
    issued = api_key_create(name="producer", scopes=["events:publish"])
    assert api_key_authenticate(plaintext=issued.plaintext).scopes == ["events:publish"]

    issued.api_key.scopes = ["events:publish", "read"]
    issued.api_key.save()

    assert api_key_authenticate(plaintext=issued.plaintext).scopes == ["events:publish", "read"]


@pytest.mark.django_db
def test_a_cached_key_records_its_use_once_a_minute_not_per_request(
    settings, django_assert_num_queries
):
    settings.HERALD_API_KEY_CACHE_SECONDS = 600
    issued = api_key_create(name="billing-service")
    start = timezone.now()
    api_key_authenticate(plaintext=issued.plaintext, now=start)  # reads, and records the use

    with django_assert_num_queries(0):
        api_key_authenticate(plaintext=issued.plaintext, now=start + timedelta(seconds=30))
    with django_assert_num_queries(1):
        api_key_authenticate(plaintext=issued.plaintext, now=start + timedelta(seconds=61))

    issued.api_key.refresh_from_db()
    assert issued.api_key.last_used_at == start + timedelta(seconds=61)
