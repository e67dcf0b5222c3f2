from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from deadletters.models import DeadLetter
from deliveries.models import Delivery
from events.services import event_create
from tests.queue import queued

pytestmark = pytest.mark.django_db


@pytest.fixture
def dead(make_subscriber):
    """Make a dead letter for an event of `event_type` to `subscriber` (a new one by default)."""

    def make(event_type="order.created", subscriber=None):
        subscriber = subscriber or make_subscriber(event_types=["*"])
        event = event_create(event_type=event_type, payload={}).event
        delivery = Delivery.objects.get(event=event, subscriber=subscriber)
        Delivery.objects.filter(pk=delivery.pk).update(status="failed", attempt_count=12)
        return DeadLetter.objects.create(delivery=delivery, reason="all 12 attempts failed")

    return make


def _replay(*args) -> str:
    out = StringIO()
    call_command("replay_deadletters", *args, stdout=out)
    return out.getvalue()


def test_replays_every_unresolved_dead_letter_by_default(dead):
    letters = [dead(), dead()]
    already = dead()
    DeadLetter.objects.filter(pk=already.pk).update(
        resolved_at=timezone.now(), resolution="resolved"
    )

    output = _replay()

    assert "Replayed 2 dead letter(s)" in output
    for letter in letters:
        letter.refresh_from_db()
        assert letter.resolution == "replayed" and letter.resolved_at is not None
        delivery = letter.delivery
        delivery.refresh_from_db()
        assert delivery.status == "pending" and delivery.attempt_count == 0
    queued_ids = {delivery_id for delivery_id, _ in queued()}
    assert {str(letter.delivery_id) for letter in letters} <= queued_ids
    assert str(already.delivery_id) not in queued_ids


def test_dry_run_lists_and_changes_nothing(dead):
    letter = dead()

    output = _replay("--dry-run")

    assert f"Would replay {letter.pk}" in output
    assert "1 dead letter(s) would be replayed" in output
    letter.refresh_from_db()
    assert letter.resolved_at is None
    assert len(queued()) == 0


def test_selects_by_ids(dead):
    chosen, other = dead(), dead()

    _replay(str(chosen.pk))

    assert DeadLetter.objects.get(pk=chosen.pk).resolution == "replayed"
    assert DeadLetter.objects.get(pk=other.pk).resolved_at is None


def test_ids_that_cannot_be_replayed_are_named_and_fail_the_command(dead):
    replayable, resolved = dead(), dead()
    _replay(str(resolved.pk))
    unknown = "8f5e6c1a-0000-4000-8000-000000000000"
    errors = StringIO()

    with pytest.raises(CommandError, match="2 of the ids given cannot be replayed"):
        call_command(
            "replay_deadletters",
            str(replayable.pk),
            str(resolved.pk),
            unknown,
            stdout=StringIO(),
            stderr=errors,
        )

    # What can be replayed still is; the rest is explained, one line each.
    assert DeadLetter.objects.get(pk=replayable.pk).resolution == "replayed"
    assert f"Cannot replay {unknown}: no dead letter has this id." in errors.getvalue()
    assert f"Cannot replay {resolved.pk}: already resolved (replayed at" in errors.getvalue()


def test_ids_left_out_by_the_other_options_are_named_but_not_an_error(dead, make_subscriber):
    subscriber = make_subscriber(event_types=["*"])
    mine, theirs = dead(subscriber=subscriber), dead()
    errors = StringIO()

    call_command(
        "replay_deadletters",
        str(mine.pk),
        str(theirs.pk),
        "--subscriber",
        str(subscriber.pk),
        stdout=StringIO(),
        stderr=errors,
    )

    assert DeadLetter.objects.get(pk=mine.pk).resolution == "replayed"
    assert DeadLetter.objects.get(pk=theirs.pk).resolved_at is None
    assert f"Left out {theirs.pk}: not selected by --subscriber" in errors.getvalue()


def test_selects_by_subscriber(dead, make_subscriber):
    subscriber = make_subscriber(event_types=["*"])
    mine = dead(subscriber=subscriber)
    theirs = dead()

    _replay("--subscriber", str(subscriber.pk))

    assert DeadLetter.objects.get(pk=mine.pk).resolution == "replayed"
    assert DeadLetter.objects.get(pk=theirs.pk).resolved_at is None


def test_selects_by_event_type_pattern(dead):
    order, invoice = dead("order.created"), dead("invoice.paid")

    _replay("--event-type", "order.*")

    assert DeadLetter.objects.get(pk=order.pk).resolution == "replayed"
    assert DeadLetter.objects.get(pk=invoice.pk).resolved_at is None


def test_selects_by_age_and_limits_oldest_first(dead):
    old, older, new = dead(), dead(), dead()
    now = timezone.now()
    DeadLetter.objects.filter(pk=older.pk).update(created_at=now - timedelta(days=3))
    DeadLetter.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=2))

    _replay("--since", (now - timedelta(days=2, hours=1)).isoformat(), "--limit", "1")

    assert DeadLetter.objects.get(pk=old.pk).resolution == "replayed"
    assert DeadLetter.objects.get(pk=older.pk).resolved_at is None
    assert DeadLetter.objects.get(pk=new.pk).resolved_at is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--event-type", "Order.*"], "is not a type or pattern"),
        (["--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_bad_arguments_are_clear_errors(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("replay_deadletters", *args)


@pytest.mark.parametrize("args", [["not-a-uuid"], ["--since", "yesterday"]])
def test_malformed_ids_and_dates_are_refused(db, args):
    with pytest.raises(CommandError, match="is not"):
        call_command("replay_deadletters", *args)
