"""Migrations that move data: run backwards and forwards on real rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

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
