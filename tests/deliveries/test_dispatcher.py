"""The delivery loop: batched claims, concurrent sends to a real receiver, batched outcomes."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from deadletters.models import DeadLetter
from deliveries import dispatcher as dispatcher_module
from deliveries import policy
from deliveries.claims import deliveries_claim
from deliveries.dispatcher import COALESCE_WINDOW, Dispatcher
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.outcomes import LOST_WORKER_ERROR
from events.services import event_create
from subscribers.models import Subscriber
from tests.receiver import Reply


@pytest.fixture(autouse=True)
def _schedule(settings):
    settings.HERALD_RETRY_SCHEDULE = [5, 30]


def _dispatcher(concurrency: int = 8, poll: float = 0.2) -> Dispatcher:
    return Dispatcher(concurrency=concurrency, poll=poll, send_options=policy.send_options())


def _publish(count: int, event_type: str = "order.created") -> None:
    for n in range(count):
        event_create(event_type=event_type, payload={"n": n})


@pytest.mark.django_db
def test_delivers_every_due_delivery_once_signed_and_recorded(make_subscriber, receiver):
    subscriber = make_subscriber(endpoint_url=receiver.url())
    _publish(40)

    _dispatcher(concurrency=8).run_until_idle(timeout=30)

    requests = receiver.received()
    assert len(requests) == 40
    assert len({r.headers["webhook-id"] for r in requests}) == 40
    webhook = Webhook(subscriber.secret)
    assert sorted(webhook.verify(r.body, r.headers)["data"]["n"] for r in requests) == list(
        range(40)
    )
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.DELIVERED}
    assert DeliveryAttempt.objects.filter(status_code=200, finished_at__isnull=False).count() == 40


@pytest.mark.django_db
def test_one_batch_records_each_outcome_on_its_own_terms(make_subscriber, receiver):
    make_subscriber(endpoint_url=receiver.url("/ok"))
    make_subscriber(endpoint_url=receiver.url("/flaky"))
    gone = make_subscriber(endpoint_url=receiver.url("/gone"))
    receiver.default("/flaky", Reply(status=500, body=b"down"))
    receiver.default("/gone", Reply(status=410))
    _publish(1)

    _dispatcher().run_until_idle(timeout=30)

    by_path = {
        d.subscriber.endpoint_url.rsplit("/", 1)[-1]: d
        for d in Delivery.objects.select_related("subscriber")
    }
    assert by_path["ok"].status == Delivery.Status.DELIVERED
    assert by_path["flaky"].status == Delivery.Status.RETRYING
    assert by_path["flaky"].last_error == "HTTP 500"
    assert by_path["flaky"].attempts.get().response_excerpt == "down"
    assert by_path["gone"].status == Delivery.Status.FAILED
    assert DeadLetter.objects.get().delivery_id == by_path["gone"].pk
    assert not Subscriber.objects.get(pk=gone.pk).is_active


@pytest.mark.django_db
def test_batch_claim_takes_the_oldest_due_and_skips_held_and_future_work(make_subscriber):
    make_subscriber()
    _publish(5)
    oldest_first = list(Delivery.objects.order_by("created_at"))
    now = timezone.now()
    Delivery.objects.filter(pk=oldest_first[0].pk).update(enqueued_at=None)  # held
    Delivery.objects.filter(pk=oldest_first[1].pk).update(
        next_attempt_at=now + timedelta(minutes=1)
    )

    claims = deliveries_claim(limit=2, now=now)

    assert [c.delivery.pk for c in claims] == [d.pk for d in oldest_first[2:4]]
    assert [c.attempt.number for c in claims] == [1, 1]
    assert Delivery.objects.filter(status=Delivery.Status.IN_FLIGHT).count() == 2
    assert DeliveryAttempt.objects.filter(finished_at=None).count() == 2


@pytest.mark.django_db
def test_batch_claim_reclaims_deliveries_whose_worker_died(make_subscriber):
    make_subscriber()
    _publish(2)
    now = timezone.now()
    first = deliveries_claim(limit=2, now=now)
    assert len(first) == 2
    after_lease = now + policy.lease() + timedelta(seconds=1)

    assert deliveries_claim(limit=5, now=after_lease, reclaim_expired=False) == []
    again = deliveries_claim(limit=5, now=after_lease)

    assert sorted(c.delivery.pk for c in again) == sorted(c.delivery.pk for c in first)
    assert [c.attempt.number for c in again] == [2, 2]
    lost = DeliveryAttempt.objects.filter(number=1)
    assert {a.error for a in lost} == {LOST_WORKER_ERROR}


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_hand_out_the_same_delivery(make_subscriber):
    make_subscriber()
    _publish(60)
    now = timezone.now()
    start = threading.Barrier(4)
    claimed: list = []

    def worker():
        try:
            start.wait()
            for _ in range(10):
                claimed.extend(c.delivery.pk for c in deliveries_claim(limit=7, now=now))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(claimed) == len(set(claimed)) == 60
    assert DeliveryAttempt.objects.count() == 60


@pytest.mark.django_db(transaction=True)
def test_new_work_wakes_an_idle_dispatcher_without_waiting_for_its_poll(make_subscriber, receiver):
    if connection.vendor != "postgresql":
        pytest.skip("wake-ups use PostgreSQL LISTEN/NOTIFY; SQLite relies on polling")
    make_subscriber(endpoint_url=receiver.url())
    dispatcher = _dispatcher(poll=30)
    thread = threading.Thread(target=dispatcher.run)
    thread.start()
    try:
        time.sleep(0.5)  # idle, listening
        _publish(3)
        receiver.wait_for(3, timeout=5)  # far sooner than the 30 s poll
    finally:
        dispatcher.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert Delivery.objects.filter(status=Delivery.Status.DELIVERED).count() == 3


def _timed_claims(dispatcher: Dispatcher, monkeypatch, *, then=None) -> list[float]:
    """Record when each claim starts; `then` runs after each (e.g. a commit announcing work)."""
    claimed_at: list[float] = []
    claim = dispatcher._claim

    def timed(wanted: int) -> int:
        claimed_at.append(time.monotonic())
        claimed = claim(wanted)
        if then:
            then()
        return claimed

    monkeypatch.setattr(dispatcher, "_claim", timed)
    return claimed_at


@pytest.mark.django_db
def test_work_announced_soon_after_a_claim_waits_out_the_window(monkeypatch):
    dispatcher = _dispatcher(poll=30)
    # A commit announces more work while each claim runs.
    claimed_at = _timed_claims(dispatcher, monkeypatch, then=dispatcher.wake)

    dispatcher._cycle()
    dispatcher._cycle()

    assert claimed_at[1] - claimed_at[0] >= COALESCE_WINDOW


@pytest.mark.django_db
def test_work_announced_after_a_quiet_spell_is_claimed_at_once(monkeypatch):
    dispatcher = _dispatcher(poll=0.5)
    claimed_at = _timed_claims(dispatcher, monkeypatch)
    woken_at: list[float] = []
    threading.Timer(0.05, lambda: woken_at.append(time.monotonic()) or dispatcher.wake()).start()

    dispatcher._cycle()  # the first claim, then a quiet spell (longer than the window) until woken
    dispatcher._cycle()

    assert len(claimed_at) == 2
    assert claimed_at[1] - woken_at[0] < COALESCE_WINDOW


@pytest.mark.django_db
def test_a_finished_send_alone_starts_no_claim(make_subscriber, receiver):
    """Nothing announced and no backlog: a claim would find nothing, so none is made."""
    make_subscriber(endpoint_url=receiver.url())
    _publish(1)
    dispatcher = _dispatcher(poll=30)
    dispatcher._cycle()  # claims the one delivery and sends it; wakes when the send finishes
    receiver.wait_for(1, timeout=5)

    # What the next cycle decides before it sleeps:
    dispatcher._take_all_waiting()
    assert dispatcher._record_due()  # nothing else in flight: record now
    dispatcher._record()
    assert not dispatcher._claim_due()
    assert Delivery.objects.get().status == Delivery.Status.DELIVERED


@pytest.mark.django_db
def test_a_retry_is_claimed_when_it_comes_due_without_an_announcement(
    make_subscriber, receiver, settings
):
    settings.HERALD_RETRY_SCHEDULE = [0.3, 30]
    make_subscriber(endpoint_url=receiver.url())
    receiver.then("/hook", Reply(status=500), Reply(status=200))
    _publish(1)
    dispatcher = _dispatcher(poll=2)  # the retry must go at its time, not at the next poll

    deadline = time.monotonic() + 5
    while Delivery.objects.get().status != Delivery.Status.DELIVERED:
        assert time.monotonic() < deadline, "the retry was not claimed"
        dispatcher._cycle()

    first, second = (request.at for request in receiver.received())
    assert 0.3 <= second - first < 1.0


@pytest.mark.django_db
def test_outcomes_finishing_together_are_recorded_together(make_subscriber, receiver, monkeypatch):
    make_subscriber(endpoint_url=receiver.url())
    receiver.default("/hook", Reply(together=threading.Barrier(8)))
    _publish(8)
    dispatcher = _dispatcher(concurrency=8, poll=30)
    batches: list[int] = []
    record = dispatcher_module.deliveries_record_outcomes

    def counted(outcomes, *, now):
        batches.append(len(outcomes))
        return record(outcomes, now=now)

    monkeypatch.setattr(dispatcher_module, "deliveries_record_outcomes", counted)

    dispatcher.run_until_idle(timeout=10)

    assert sum(batches) == 8
    assert len(batches) < 8


@pytest.mark.django_db(transaction=True)
def test_stopping_finishes_and_records_the_sends_in_flight(make_subscriber, receiver):
    make_subscriber(endpoint_url=receiver.url())
    receiver.default("/hook", Reply(delay=0.5))
    _publish(6)
    dispatcher = _dispatcher(concurrency=6)
    thread = threading.Thread(target=dispatcher.run)
    thread.start()
    receiver.wait_for(6, timeout=10)  # all six are in flight now

    dispatcher.stop()
    thread.join(timeout=30)

    assert not thread.is_alive()
    statuses = Delivery.objects.values_list("status", flat=True)
    assert list(statuses) == [Delivery.Status.DELIVERED] * 6
    assert not DeliveryAttempt.objects.filter(finished_at=None).exists()


@pytest.mark.django_db
def test_concurrency_bounds_the_requests_in_flight(make_subscriber, receiver):
    make_subscriber(endpoint_url=receiver.url())
    receiver.default("/hook", Reply(delay=0.3))
    _publish(12)

    _dispatcher(concurrency=4).run_until_idle(timeout=30)

    arrivals = sorted(r.at for r in receiver.received())
    assert len(arrivals) == 12
    # With 4 in flight and 0.3 s each, the 5th request cannot start before the 1st finished.
    assert arrivals[4] - arrivals[0] >= 0.25
    bodies = [json.loads(r.body)["data"]["n"] for r in receiver.received()]
    assert sorted(bodies) == list(range(12))


@pytest.mark.django_db
def test_a_response_body_with_nul_bytes_is_recorded(make_subscriber, receiver):
    make_subscriber(endpoint_url=receiver.url())
    receiver.default("/hook", Reply(body=b"ok\x00\x01binary"))
    _publish(3)

    _dispatcher().run_until_idle(timeout=30)

    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.DELIVERED}
    assert set(DeliveryAttempt.objects.values_list("response_excerpt", flat=True)) == {
        "ok\ufffd\x01binary"
    }
