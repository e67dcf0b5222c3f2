"""Scopes: a key may do only what it was granted, and says so with a 403 in the one error shape."""

from __future__ import annotations

import importlib
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.test import APIClient

from config.apikeys import api_key_authenticate, api_key_create
from config.models import ApiKey
from config.scopes import ALL_SCOPES
from deadletters.models import DeadLetter
from deliveries.models import Delivery
from events.models import Event, Source
from events.services import event_create
from subscribers.models import Subscriber

pytestmark = pytest.mark.django_db

EVENT = {"event_type": "order.created", "payload": {"order_id": 1}}


def client_with(*scopes: str) -> APIClient:
    client = APIClient()
    issued = api_key_create(name="client", scopes=scopes)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def assert_forbidden(response, scope: str) -> None:
    assert response.status_code == 403, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == "insufficient_scope"
    assert repr(scope) in body["error"]["message"]


@pytest.fixture
def history(make_subscriber):
    subscriber = make_subscriber(event_types=["*"])
    event = event_create(event_type="order.created", payload={"card": "other-teams-data"}).event
    delivery = Delivery.objects.get(event=event)
    letter = DeadLetter.objects.create(delivery=delivery, reason="all attempts failed")
    return {"subscriber": subscriber, "event": event, "delivery": delivery, "letter": letter}


# --- a producer's key ----------------------------------------------------------------------------


def test_a_publish_only_key_publishes_events_and_batches():
    producer = client_with("events:publish")

    single = producer.post("/api/v1/events", EVENT, format="json")
    batch = producer.post("/api/v1/events/batch", {"events": [EVENT]}, format="json")

    assert single.status_code == 202
    assert batch.status_code == 202
    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events",
        "/api/v1/events/{event}",
        "/api/v1/deliveries",
        "/api/v1/deliveries/{delivery}",
        "/api/v1/dead-letters",
        "/api/v1/dead-letters/{letter}",
        "/api/v1/subscribers",
        "/api/v1/subscribers/{subscriber}",
        "/api/v1/subscribers/{subscriber}/health",
        "/api/v1/sources",
        "/api/v1/metrics",
    ],
)
def test_a_publish_only_key_cannot_read_anything(history, path):
    producer = client_with("events:publish")
    url = path.format(**{name: obj.pk for name, obj in history.items()})

    response = producer.get(url)

    assert_forbidden(response, "read")
    assert "other-teams-data" not in response.content.decode()


def test_a_publish_only_key_cannot_change_subscribers(history):
    producer = client_with("events:publish")
    subscriber = history["subscriber"]
    detail = f"/api/v1/subscribers/{subscriber.pk}"

    created = producer.post(
        "/api/v1/subscribers",
        {"name": "spy", "endpoint_url": "http://127.0.0.1:9/x", "event_types": ["*"]},
        format="json",
    )
    changed = producer.patch(detail, {"endpoint_url": "http://127.0.0.1:9/spy"}, format="json")
    opened = producer.post(f"{detail}/open-circuit", {"reason": "x"}, format="json")
    deleted = producer.delete(detail)

    for response in (created, changed, opened, deleted):
        assert_forbidden(response, "subscribers:manage")
    assert Subscriber.objects.count() == 1
    subscriber.refresh_from_db()
    assert subscriber.endpoint_url == "http://127.0.0.1:9/hook"
    assert subscriber.circuit_state == "closed"


def test_a_publish_only_key_cannot_replay_dead_letters_or_manage_sources(history):
    producer = client_with("events:publish")

    replay = producer.post(f"/api/v1/dead-letters/{history['letter'].pk}/replay")
    source = producer.post(
        "/api/v1/sources", {"slug": "gh", "name": "GitHub", "scheme": "github"}, format="json"
    )

    assert_forbidden(replay, "deadletters:manage")
    assert_forbidden(source, "sources:manage")
    history["letter"].refresh_from_db()
    assert history["letter"].resolved_at is None
    assert not Source.objects.exists()


# --- other narrow keys ---------------------------------------------------------------------------


def test_a_read_only_key_reads_but_cannot_publish_or_change(history):
    reader = client_with("read")

    assert reader.get("/api/v1/events").status_code == 200
    assert reader.get(f"/api/v1/deliveries/{history['delivery'].pk}").status_code == 200
    assert_forbidden(reader.post("/api/v1/events", EVENT, format="json"), "events:publish")
    assert_forbidden(
        reader.patch(
            f"/api/v1/subscribers/{history['subscriber'].pk}", {"name": "x"}, format="json"
        ),
        "subscribers:manage",
    )
    assert_forbidden(
        reader.post(f"/api/v1/dead-letters/{history['letter'].pk}/resolve"), "deadletters:manage"
    )


def test_a_subscriber_manager_changes_subscribers_without_reading_events(history):
    manager = client_with("subscribers:manage")

    created = manager.post(
        "/api/v1/subscribers",
        {"name": "new", "endpoint_url": "http://127.0.0.1:9/new", "event_types": ["order.*"]},
        format="json",
    )

    assert created.status_code == 201
    assert_forbidden(manager.get("/api/v1/events"), "read")


def test_a_key_without_scopes_is_refused_everywhere_but_health_and_ingest():
    nobody = client_with()

    assert_forbidden(nobody.get("/api/v1/subscribers"), "read")
    assert_forbidden(nobody.post("/api/v1/events", EVENT, format="json"), "events:publish")
    assert nobody.get("/api/v1/health").status_code in (200, 503)
    # Inbound webhooks need no key at all: an unknown source is a 404, not a 401 or 403.
    assert (
        nobody.post("/api/v1/ingest/nosuch", b"{}", content_type="application/json").status_code
        == 404
    )


def test_a_metrics_key_reads_metrics_and_nothing_else():
    scraper = client_with("metrics")

    assert scraper.get("/api/v1/metrics").status_code == 200
    assert_forbidden(scraper.get("/api/v1/events"), "read")


def test_without_a_key_the_answer_is_still_401_not_403():
    response = APIClient().get("/api/v1/events")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


# --- issuing keys with scopes ---------------------------------------------------------------


def test_create_api_key_grants_the_scopes_asked_for():
    stdout = StringIO()

    call_command(
        "create_api_key",
        "billing",
        "--scope",
        "events:publish",
        "--scope",
        "read",
        stdout=stdout,
        stderr=StringIO(),
    )

    api_key = api_key_authenticate(plaintext=stdout.getvalue().strip().splitlines()[-1])
    assert api_key.scopes == ["events:publish", "read"]


def test_create_api_key_without_scope_options_grants_every_scope():
    stdout = StringIO()

    call_command("create_api_key", "ops", stdout=stdout, stderr=StringIO())

    api_key = api_key_authenticate(plaintext=stdout.getvalue().strip().splitlines()[-1])
    assert api_key.scopes == list(ALL_SCOPES)


def test_create_api_key_refuses_an_unknown_scope():
    with pytest.raises(CommandError, match="admin"):
        call_command("create_api_key", "x", "--scope", "admin", stdout=StringIO())

    assert not ApiKey.objects.exists()


def test_keys_issued_before_scopes_existed_keep_every_scope():
    migration = importlib.import_module("config.migrations.0002_api_key_scopes")
    old = ApiKey.objects.create(name="old", prefix="0ld", secret_hash="x" * 64)

    migration.grant_existing_keys_every_scope(apps, None)

    old.refresh_from_db()
    assert old.scopes == list(ALL_SCOPES)
    assert list(ALL_SCOPES) == migration.SCOPES_AT_INTRODUCTION


# --- the admin ------------------------------------------------------------------------------


@pytest.fixture
def operator_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("operator", "op@example.com", "pw")
    client.force_login(user)
    return client


def test_admin_grants_scopes_on_creation_and_narrows_them_later(operator_client):
    operator_client.post(
        reverse("admin:config_apikey_add"),
        {"name": "billing", "scopes": ["events:publish", "read"]},
    )
    api_key = ApiKey.objects.get(name="billing")
    assert api_key.scopes == ["events:publish", "read"]

    operator_client.post(
        reverse("admin:config_apikey_change", args=[api_key.pk]),
        {"name": "billing", "scopes": ["events:publish"]},
    )

    api_key.refresh_from_db()
    assert api_key.scopes == ["events:publish"]


def test_admin_refuses_a_key_without_scopes(operator_client):
    response = operator_client.post(reverse("admin:config_apikey_add"), {"name": "useless"})

    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert not ApiKey.objects.exists()


def test_admin_revoke_action_reports_and_logs(operator_client):
    issued = api_key_create(name="leaked")

    response = operator_client.post(
        reverse("admin:config_apikey_changelist"),
        {"action": "revoke_api_keys", "_selected_action": [issued.api_key.pk]},
        follow=True,
    )

    assert "Revoked 1 API key(s)." in response.content.decode()
    assert api_key_authenticate(plaintext=issued.plaintext) is None
    assert LogEntry.objects.filter(
        object_id=str(issued.api_key.pk), change_message="Revoked."
    ).exists()
