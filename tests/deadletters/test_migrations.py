"""Migrations that move data: run backwards and forwards on real rows."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from deadletters.models import DeadLetter
from deliveries.models import Delivery
from events.services import event_create

BEFORE_SNAPSHOT = ("deadletters", "0002_deadletter_resolution_idx")
SNAPSHOT = ("deadletters", "0003_snapshot_attempts_and_error")


@pytest.mark.django_db(transaction=True)
def test_letters_written_before_the_snapshot_take_their_deliverys_attempts_and_error(
    make_subscriber,
):
    make_subscriber(event_types=["*"])
    delivery = Delivery.objects.get(event=event_create(event_type="a.b", payload={}).event)
    Delivery.objects.filter(pk=delivery.pk).update(
        status="failed", attempt_count=7, last_error="HTTP 502"
    )
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE_SNAPSHOT])
    old_state = executor.loader.project_state([BEFORE_SNAPSHOT])
    OldDeadLetter = old_state.apps.get_model("deadletters", "DeadLetter")
    letter = OldDeadLetter.objects.create(delivery_id=delivery.pk, reason="all 7 attempts failed")

    executor = MigrationExecutor(connection)  # the graph as it is now
    executor.migrate([SNAPSHOT])

    migrated = DeadLetter.objects.get(pk=letter.pk)
    assert (migrated.attempt_count, migrated.last_error) == (7, "HTTP 502")


@pytest.mark.django_db
def test_a_letter_inserted_without_the_snapshot_columns_gets_their_defaults(make_subscriber):
    # Code from before the snapshot, still running while the migration is released.
    make_subscriber(event_types=["*"])
    delivery = Delivery.objects.get(event=event_create(event_type="a.b", payload={}).event)
    letter_id = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO deadletters_deadletter (id, delivery_id, reason, created_at, resolution)"
            " VALUES (%s, %s, 'all 12 attempts failed', %s, '')",
            [letter_id.hex, delivery.pk.hex, timezone.now()],
        )

    letter = DeadLetter.objects.get(pk=letter_id)
    assert (letter.attempt_count, letter.last_error) == (0, "")
