"""GET /api/v1/health: 200 when Herald can take and deliver events, 503 with the reasons."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from rest_framework.test import APIClient

from config.api.health import migration_check
from deliveries.heartbeat import worker_heartbeat
from deliveries.models import Delivery
from events.services import event_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_migration_check():
    migration_check.all_applied = False
    yield
    migration_check.all_applied = False


@pytest.fixture
def worker_alive():
    now = timezone.now()
    worker_heartbeat(worker="host:1", started_at=now, now=now)


def test_healthy_when_a_worker_checked_in_and_nothing_waits(worker_alive):
    response = APIClient().get("/api/v1/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert (body["database"], body["migrations"]) == ("ok", "ok")
    assert body["cluster"]["status"] == "ok"
    assert body["cluster"]["workers_alive"] == 1
    assert body["cluster"]["last_heartbeat_age_seconds"] < 5
    assert body["queue"] == {
        "status": "ok",
        "depth": 0,
        "oldest_age_seconds": 0.0,
        "jobs": 0,
        "oldest_job_age_seconds": 0.0,
        "max_lag_seconds": 300.0,
    }
    assert body["reasons"] == []


def test_503_when_no_worker_checked_in_within_a_minute():
    long_ago = timezone.now() - timedelta(minutes=2)
    worker_heartbeat(worker="host:1", started_at=long_ago, now=long_ago)

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["cluster"]["workers_alive"] == 0
    assert body["cluster"]["last_heartbeat_age_seconds"] >= 120
    assert body["reasons"] == [
        "cluster: no delivery worker running (none checked in within 60 s, or the last stopped)"
    ]


def test_503_when_due_work_waits_longer_than_the_limit(worker_alive, make_subscriber, settings):
    settings.HERALD_HEALTH_MAX_QUEUE_LAG = 60
    make_subscriber()
    event_create(event_type="order.created", payload={})
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=90))

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    body = response.json()
    assert body["queue"]["depth"] == 1
    assert 90 <= body["queue"]["oldest_age_seconds"] < 100
    assert body["reasons"][0].startswith("queue: work due 9")


def test_work_within_the_limit_is_healthy(worker_alive, make_subscriber):
    make_subscriber()
    event_create(event_type="order.created", payload={})

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 200
    assert response.json()["queue"]["depth"] == 1


def test_503_names_an_unapplied_migration(worker_alive):
    # The newest one: an applied migration after it would hide it from the plan.
    (_, newest), *_ = MigrationLoader(connection).graph.leaf_nodes("deliveries")
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM django_migrations WHERE app = 'deliveries' AND name = %s", [newest]
        )

    response = APIClient().get("/api/v1/health")

    assert response.status_code == 503
    assert response.json()["migrations"] == f"1 unapplied: deliveries.{newest}"
