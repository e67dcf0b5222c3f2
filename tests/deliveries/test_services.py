from __future__ import annotations

from datetime import timedelta
from importlib import import_module
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from deadletters.models import DeadLetter
from deadletters.services import dead_letters_replay
from deliveries.claims import deliveries_claim, delivery_claim
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.outcomes import (
    LOST_WORKER_ERROR,
    Sent,
    deliveries_record_outcomes,
    delivery_record_outcome,
)
from deliveries.sender import SendResult
from deliveries.services import deliveries_requeue
from deliveries.sweeper import deliveries_sweep
from events.services import event_create
from tests.queue import queued

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _schedule(settings):
    settings.HERALD_RETRY_SCHEDULE = [5, 30, 600]


@pytest.fixture
def delivery(make_subscriber) -> Delivery:
    make_subscriber(event_types=["order.*"])
    event_create(event_type="order.created", payload={"order_id": 1})
    return Delivery.objects.get()


def _ok(status: int = 200, **fields) -> SendResult:
    return SendResult(status_code=status, duration_ms=12, **fields)


def test_fan_out_queues_each_delivery_due_now(make_subscriber):
    make_subscriber(event_types=["order.*"])
    make_subscriber(event_types=["*"])
    make_subscriber(event_types=["invoice.paid"])

    ingested = event_create(event_type="order.created", payload={})

    deliveries = Delivery.objects.filter(event=ingested.event)
    assert ingested.delivery_count == 2 == deliveries.count()
    assert sorted(queued()) == sorted((str(d.pk), ingested.event.created_at) for d in deliveries)


def test_claim_writes_the_attempt_before_sending(delivery):
    now = timezone.now()

    claim = delivery_claim(delivery_id=delivery.pk, now=now)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.IN_FLIGHT
    assert delivery.attempt_count == 1
    assert delivery.lease_until > now
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.number == 1 and attempt.finished_at is None
    assert attempt.request_headers["webhook-id"] == str(delivery.event_id)
    assert claim.request.headers["webhook-id"] == str(delivery.event_id)


def test_second_claim_of_an_in_flight_delivery_gets_nothing(delivery):
    now = timezone.now()
    assert delivery_claim(delivery_id=delivery.pk, now=now) is not None

    assert delivery_claim(delivery_id=delivery.pk, now=now) is None
    assert DeliveryAttempt.objects.count() == 1


def test_delivery_not_yet_due_is_not_claimed(delivery):
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.RETRYING, next_attempt_at=timezone.now() + timedelta(minutes=5)
    )

    assert delivery_claim(delivery_id=delivery.pk, now=timezone.now()) is None


def test_delivery_to_an_inactive_subscriber_is_held_without_spending_an_attempt(delivery):
    delivery.subscriber.is_active = False
    delivery.subscriber.save()

    assert delivery_claim(delivery_id=delivery.pk, now=timezone.now()) is None

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING
    assert delivery.attempt_count == 0
    assert delivery.enqueued_at is None  # held: resuming the subscriber queues it again


def test_2xx_marks_delivered(delivery):
    now = timezone.now()
    claim = delivery_claim(delivery_id=delivery.pk, now=now)

    outcome = delivery_record_outcome(claim=claim, result=_ok(204), now=now)

    delivery.refresh_from_db()
    assert outcome == "delivered"
    assert delivery.status == Delivery.Status.DELIVERED
    assert delivery.delivered_at == now
    assert delivery.next_attempt_at is None
    assert DeliveryAttempt.objects.get().status_code == 204


def test_failure_queues_a_retry_at_its_exact_time(delivery):
    now = timezone.now()
    claim = delivery_claim(delivery_id=delivery.pk, now=now)

    outcome = delivery_record_outcome(
        claim=claim, result=_ok(500, response_excerpt="boom"), now=now
    )

    delivery.refresh_from_db()
    assert outcome == "retrying"
    assert delivery.status == Delivery.Status.RETRYING
    assert delivery.last_status_code == 500
    assert delivery.last_error == "HTTP 500"
    assert now + timedelta(seconds=5) <= delivery.next_attempt_at <= now + timedelta(seconds=5.5)
    assert queued() == [(str(delivery.pk), delivery.next_attempt_at)]
    assert deliveries_claim(limit=10, now=now + timedelta(seconds=4.9)) == []
    assert len(deliveries_claim(limit=10, now=delivery.next_attempt_at)) == 1


def test_retry_after_on_429_pushes_the_retry_back(delivery):
    now = timezone.now()
    claim = delivery_claim(delivery_id=delivery.pk, now=now)

    delivery_record_outcome(claim=claim, result=_ok(429, headers={"Retry-After": "20"}), now=now)

    delivery.refresh_from_db()
    assert delivery.next_attempt_at == now + timedelta(seconds=20)


def test_410_fails_at_once_deactivates_the_subscriber_and_dead_letters(delivery):
    now = timezone.now()
    claim = delivery_claim(delivery_id=delivery.pk, now=now)

    outcome = delivery_record_outcome(claim=claim, result=_ok(410), now=now)

    delivery.refresh_from_db()
    delivery.subscriber.refresh_from_db()
    assert outcome == "gone"
    assert delivery.status == Delivery.Status.FAILED
    assert not delivery.subscriber.is_active
    assert "410" in delivery.subscriber.deactivated_reason
    assert DeadLetter.objects.get(delivery=delivery).last_status_code == 410


def test_exhausted_attempts_fail_and_dead_letter(delivery):
    now = timezone.now()
    for _ in range(4):
        claim = delivery_claim(delivery_id=delivery.pk, now=now)
        outcome = delivery_record_outcome(claim=claim, result=_ok(503), now=now)
        now = Delivery.objects.get(pk=delivery.pk).next_attempt_at or now

    delivery.refresh_from_db()
    assert outcome == "exhausted"
    assert delivery.status == Delivery.Status.FAILED
    assert delivery.attempt_count == 4
    letter = DeadLetter.objects.get(delivery=delivery)
    assert letter.reason == "all 4 attempts failed; last: HTTP 503"
    assert (letter.attempt_count, letter.last_status_code, letter.last_error) == (
        4,
        503,
        "HTTP 503",
    )
    assert letter.resolved_at is None


def test_expired_lease_is_reclaimed_and_the_lost_attempt_counts(delivery, caplog):
    now = timezone.now()
    delivery_claim(delivery_id=delivery.pk, now=now)
    later = now + timedelta(hours=1)

    claim = delivery_claim(delivery_id=delivery.pk, now=later)

    assert claim is not None and claim.attempt.number == 2
    lost = DeliveryAttempt.objects.get(delivery=delivery, number=1)
    assert lost.error == LOST_WORKER_ERROR and lost.finished_at == later
    # The lost attempt gets its log line, as every attempt does.
    (line,) = [r for r in caplog.records if r.getMessage() == "delivery attempt"]
    assert (line.delivery_id, line.attempt, line.status) == (str(delivery.pk), 1, "lost")


def test_outcome_from_a_superseded_worker_is_ignored(delivery):
    now = timezone.now()
    stale = delivery_claim(delivery_id=delivery.pk, now=now)
    current = delivery_claim(delivery_id=delivery.pk, now=now + timedelta(hours=1))

    assert delivery_record_outcome(claim=stale, result=_ok(200), now=now) == "superseded"
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.IN_FLIGHT
    assert delivery_record_outcome(claim=current, result=_ok(200), now=now) == "delivered"


def test_a_batch_of_successes_moves_on_only_the_deliveries_its_claims_still_hold(
    make_subscriber,
):
    make_subscriber(name="first")
    make_subscriber(name="second")
    event_create(event_type="order.created", payload={})
    now = timezone.now()
    stale = deliveries_claim(limit=2, now=now)
    later = now + timedelta(hours=1)
    taken_over = delivery_claim(delivery_id=stale[0].delivery.pk, now=later)

    outcomes = deliveries_record_outcomes([Sent(claim, _ok(200)) for claim in stale], now=later)

    assert outcomes == ["superseded", "delivered"]
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses == {stale[0].delivery.pk: "in_flight", stale[1].delivery.pk: "delivered"}
    assert delivery_record_outcome(claim=taken_over, result=_ok(200), now=later) == "delivered"


def test_outcome_from_a_worker_superseded_before_a_requeue_is_ignored(delivery):
    # The replacement's attempt failed, an operator requeued the delivery and it was claimed
    # again: its attempt count is back to the stale worker's, but it is not the same claim.
    now = timezone.now()
    stale = delivery_claim(delivery_id=delivery.pk, now=now)
    later = now + timedelta(hours=1)
    replacement = delivery_claim(delivery_id=delivery.pk, now=later)
    delivery_record_outcome(claim=replacement, result=_ok(500), now=later)
    deliveries_requeue(deliveries=Delivery.objects.filter(pk=delivery.pk), now=later)
    current = delivery_claim(delivery_id=delivery.pk, now=later)
    assert current.delivery.attempt_count == stale.delivery.attempt_count == 1

    assert delivery_record_outcome(claim=stale, result=_ok(200), now=later) == "superseded"
    assert delivery_record_outcome(claim=stale, result=_ok(500), now=later) == "superseded"
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.IN_FLIGHT
    assert delivery_record_outcome(claim=current, result=_ok(200), now=later) == "delivered"


def test_sweeper_requeues_held_deliveries_of_a_subscriber_sending_again(delivery):
    # e.g. the subscriber was resumed, but the release job failed while the database was down
    Delivery.objects.filter(pk=delivery.pk).update(enqueued_at=None)
    much_later = timezone.now() + timedelta(hours=1)

    assert deliveries_sweep(now=much_later) == 1
    assert deliveries_sweep(now=much_later) == 0
    assert [job_id for job_id, _ in queued()] == [str(delivery.pk)]


def test_sweeper_leaves_inactive_subscribers_alone(delivery):
    Delivery.objects.filter(pk=delivery.pk).update(enqueued_at=None)
    delivery.subscriber.is_active = False
    delivery.subscriber.save()

    assert deliveries_sweep(now=timezone.now() + timedelta(hours=1)) == 0
    assert queued() == []


def test_replayed_delivery_numbers_attempts_on_from_its_history(delivery):
    now = timezone.now()
    delivery_record_outcome(
        claim=delivery_claim(delivery_id=delivery.pk, now=now), result=_ok(500), now=now
    )
    deliveries_requeue(deliveries=Delivery.objects.filter(pk=delivery.pk), now=now)

    claim = delivery_claim(delivery_id=delivery.pk, now=now)

    assert claim.attempt.number == 2
    assert claim.delivery.attempt_count == 1  # a fresh set of attempts
    delivery.refresh_from_db()
    assert (delivery.attempt_count, delivery.attempts_made) == (1, 2)


def test_dead_letter_replay_numbers_attempts_on_and_counts_lost_ones(delivery):
    now = timezone.now()
    delivery_claim(delivery_id=delivery.pk, now=now)  # its worker dies: the attempt is lost
    now += timedelta(hours=1)  # the lease has run out
    for _ in range(3):
        claim = delivery_claim(delivery_id=delivery.pk, now=now)
        delivery_record_outcome(claim=claim, result=_ok(503), now=now)
        now = Delivery.objects.get(pk=delivery.pk).next_attempt_at or now
    assert Delivery.objects.get(pk=delivery.pk).status == Delivery.Status.FAILED
    dead_letters_replay(dead_letters=DeadLetter.objects.all(), now=now)

    claims = [delivery_claim(delivery_id=delivery.pk, now=now)]
    delivery_record_outcome(claim=claims[0], result=_ok(503), now=now)
    claims.append(delivery_claim(delivery_id=delivery.pk, now=now + timedelta(minutes=1)))

    assert [claim.attempt.number for claim in claims] == [5, 6]
    assert list(delivery.attempts.values_list("number", flat=True)) == [1, 2, 3, 4, 5, 6]
    delivery.refresh_from_db()
    assert (delivery.attempt_count, delivery.attempts_made) == (2, 6)


def test_migration_backfills_attempts_made_from_the_history(delivery, make_subscriber):
    backfill = import_module("deliveries.migrations.0007_delivery_attempts_made")
    untried = Delivery.objects.create(event=delivery.event, subscriber=make_subscriber())
    for number in (1, 2, 3):
        DeliveryAttempt.objects.create(delivery=delivery, number=number, started_at=timezone.now())
    Delivery.objects.update(attempts_made=0)

    backfill.backfill_attempts_made(apps, SimpleNamespace(connection=connection))

    assert Delivery.objects.get(pk=delivery.pk).attempts_made == 3
    assert Delivery.objects.get(pk=untried.pk).attempts_made == 0
