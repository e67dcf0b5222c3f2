"""Retention: old finished history goes in batches; work in play and open dead letters stay."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.models import Schedule

from deadletters.models import DeadLetter
from deliveries.models import Delivery, DeliveryAttempt
from events.models import Event
from events.retention import history_prune
from events.schedules import PRUNE_SCHEDULE_NAME
from events.services import event_create
from events.tasks import prune_history

pytestmark = pytest.mark.django_db

OLD = timedelta(days=40)


def _event(*, age: timedelta, statuses: list[str], attempts: int = 1) -> Event:
    """An event of `age` with one delivery per status (one subscriber each), with attempts."""
    event = event_create(event_type="order.created", payload={}).event
    created = timezone.now() - age
    Event.objects.filter(pk=event.pk).update(created_at=created)
    deliveries = list(Delivery.objects.filter(event=event).order_by("subscriber__name"))
    for delivery, status in zip(deliveries, statuses, strict=True):
        Delivery.objects.filter(pk=delivery.pk).update(status=status, created_at=created)
        for number in range(1, attempts + 1):
            DeliveryAttempt.objects.create(delivery=delivery, number=number, started_at=created)
    return event


@pytest.fixture
def two_subscribers(make_subscriber):
    make_subscriber(name="a")
    make_subscriber(name="b")


def test_old_finished_events_go_with_their_deliveries_attempts_and_resolved_letters(
    two_subscribers,
):
    done = _event(age=OLD, statuses=["delivered", "failed"], attempts=2)
    failed = Delivery.objects.get(event=done, status="failed")
    DeadLetter.objects.create(delivery=failed, reason="x", resolved_at=timezone.now())

    pruned = history_prune(older_than=timezone.now() - timedelta(days=30))

    assert (pruned.events, pruned.deliveries, pruned.attempts, pruned.dead_letters) == (1, 2, 4, 1)
    assert not Event.objects.exists()
    assert not Delivery.objects.exists()
    assert not DeliveryAttempt.objects.exists()
    assert not DeadLetter.objects.exists()


@pytest.mark.parametrize("status", ["pending", "in_flight", "retrying"])
def test_undelivered_work_is_kept_whole_however_old(two_subscribers, status):
    kept = _event(age=OLD, statuses=["delivered", status])

    pruned = history_prune(older_than=timezone.now() - timedelta(days=30))

    assert (pruned.events, pruned.kept) == (0, 1)
    assert Delivery.objects.filter(event=kept).count() == 2
    assert DeliveryAttempt.objects.filter(delivery__event=kept).count() == 2


def test_an_unresolved_dead_letter_keeps_its_event_deliveries_and_attempts(two_subscribers):
    kept = _event(age=OLD, statuses=["delivered", "failed"])
    DeadLetter.objects.create(
        delivery=Delivery.objects.get(event=kept, status="failed"), reason="x"
    )

    history_prune(older_than=timezone.now() - timedelta(days=30))

    assert Event.objects.filter(pk=kept.pk).exists()
    assert DeadLetter.objects.filter(resolved_at=None).count() == 1
    assert DeliveryAttempt.objects.filter(delivery__event=kept).count() == 2


def test_recent_history_is_kept(two_subscribers):
    recent = _event(age=timedelta(days=3), statuses=["delivered", "delivered"])

    pruned = history_prune(older_than=timezone.now() - timedelta(days=30))

    assert pruned.events == 0
    assert Event.objects.filter(pk=recent.pk).exists()


def test_batches_are_small_transactions_and_every_old_event_is_seen_once(two_subscribers):
    for _ in range(5):
        _event(age=OLD, statuses=["delivered", "delivered"])
    keep = _event(age=OLD + timedelta(days=1), statuses=["pending", "delivered"])

    with CaptureQueriesContext(connection) as queries:
        pruned = history_prune(older_than=timezone.now() - timedelta(days=30), batch_size=2)

    assert (pruned.events, pruned.kept) == (5, 1)
    assert list(Event.objects.values_list("pk", flat=True)) == [keep.pk]
    selects = [q for q in queries if 'FROM "events_event"' in q["sql"] and "LIMIT 2" in q["sql"]]
    assert len(selects) == 4  # 6 old events, 2 per batch, and the empty look that ends it


def test_dry_run_counts_and_deletes_nothing(two_subscribers):
    _event(age=OLD, statuses=["delivered", "delivered"], attempts=3)

    pruned = history_prune(older_than=timezone.now() - timedelta(days=30), dry_run=True)

    assert (pruned.events, pruned.deliveries, pruned.attempts) == (1, 2, 6)
    assert Event.objects.count() == 1
    assert DeliveryAttempt.objects.count() == 6


def test_the_command_prunes_older_than_the_days_given(two_subscribers):
    _event(age=timedelta(days=10), statuses=["delivered", "delivered"])
    _event(age=timedelta(days=2), statuses=["delivered", "delivered"])
    stdout = StringIO()

    call_command("prune_history", "--older-than", "7", stdout=stdout)

    assert Event.objects.count() == 1
    assert stdout.getvalue().startswith("Deleted 1 event(s), 2 delivery(ies), 2 attempt(s)")


def test_the_command_refuses_a_negative_age():
    with pytest.raises(CommandError, match="older-than"):
        call_command("prune_history", "--older-than", "-1", stdout=StringIO())


def test_the_daily_job_uses_the_retention_setting(two_subscribers, settings):
    settings.HERALD_RETENTION_DAYS = 5
    _event(age=timedelta(days=6), statuses=["delivered", "delivered"])
    _event(age=timedelta(days=4), statuses=["delivered", "delivered"])

    result = prune_history()

    assert result.startswith("events=1 ")
    assert Event.objects.count() == 1


def test_migrate_installs_the_daily_schedule():
    schedule = Schedule.objects.get(name=PRUNE_SCHEDULE_NAME)

    assert schedule.func == "events.tasks.prune_history"
    assert schedule.schedule_type == Schedule.DAILY
    assert schedule.repeats == -1
