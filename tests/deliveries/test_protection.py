"""The claim gate: circuit breaker, Retry-After back-off and rate limit, seen from deliveries."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from deliveries.claims import delivery_claim
from deliveries.models import Delivery, DeliveryAttempt
from deliveries.outcomes import delivery_record_outcome
from deliveries.sender import SendResult
from deliveries.services import held_deliveries_release
from deliveries.sweeper import deliveries_sweep
from events.models import Event
from events.services import event_create
from subscribers.models import Subscriber
from tests.queue import queued

Circuit = Subscriber.Circuit


@pytest.fixture(autouse=True)
def _protection(settings):
    settings.HERALD_RETRY_SCHEDULE = [5, 30, 600]
    settings.HERALD_BREAKER_THRESHOLD = 2
    settings.HERALD_BREAKER_COOLDOWN = 30


def _jobs() -> list[tuple[str, str, object]]:
    """(task, argument, lock) of every queued job."""
    jobs = []
    for job in OrmQ.objects.all():
        package = SignedPackage.loads(job.payload)
        jobs.append((package["func"].rsplit(".", 1)[-1], package["args"][0], job.lock))
    return jobs


def _deliveries(subscriber, count: int) -> list[Delivery]:
    for n in range(count):
        event_create(event_type="order.created", payload={"n": n})
    return list(Delivery.objects.filter(subscriber=subscriber).order_by("created_at"))


def _attempt(delivery, now, status=500, **result):
    claim = delivery_claim(delivery_id=delivery.pk, now=now)
    assert claim is not None
    delivery_record_outcome(
        claim=claim, result=SendResult(status_code=status, duration_ms=5, **result), now=now
    )
    return claim


@pytest.mark.django_db
def test_failures_open_the_circuit_and_queue_a_probe_at_the_cooldown(make_subscriber):
    subscriber = make_subscriber()
    first, second = _deliveries(subscriber, 2)
    now = timezone.now()
    OrmQ.objects.all().delete()

    _attempt(first, now)
    _attempt(second, now)

    assert Subscriber.objects.get(pk=subscriber.pk).circuit_state == Circuit.OPEN
    probes = [job for job in _jobs() if job[0] == "probe"]
    assert probes == [("probe", str(subscriber.pk), now + timedelta(seconds=30))]


@pytest.mark.django_db
def test_open_circuit_holds_deliveries_without_spending_attempts(make_subscriber):
    subscriber = make_subscriber()
    (delivery,) = _deliveries(subscriber, 1)
    Subscriber.objects.filter(pk=subscriber.pk).update(
        circuit_state=Circuit.OPEN, circuit_next_probe_at=timezone.now() + timedelta(minutes=5)
    )

    assert delivery_claim(delivery_id=delivery.pk, now=timezone.now()) is None

    delivery.refresh_from_db()
    assert delivery.attempt_count == 0 and delivery.enqueued_at is None
    assert DeliveryAttempt.objects.count() == 0


@pytest.mark.django_db
def test_only_one_held_delivery_goes_out_as_the_probe(make_subscriber):
    subscriber = make_subscriber()
    first, second = _deliveries(subscriber, 2)
    now = timezone.now()
    Subscriber.objects.filter(pk=subscriber.pk).update(
        circuit_state=Circuit.OPEN, circuit_next_probe_at=now
    )

    probe = delivery_claim(delivery_id=first.pk, now=now)
    other = delivery_claim(delivery_id=second.pk, now=now)

    assert probe is not None and probe.probe
    assert other is None
    assert Subscriber.objects.get(pk=subscriber.pk).circuit_state == Circuit.HALF_OPEN


@pytest.mark.django_db
def test_successful_probe_closes_the_circuit_and_releases_what_it_held(make_subscriber):
    subscriber = make_subscriber()
    first, second = _deliveries(subscriber, 2)
    now = timezone.now()
    Subscriber.objects.filter(pk=subscriber.pk).update(
        circuit_state=Circuit.OPEN, circuit_next_probe_at=now
    )
    probe = delivery_claim(delivery_id=first.pk, now=now)
    assert delivery_claim(delivery_id=second.pk, now=now) is None  # held: the probe is out
    OrmQ.objects.all().delete()

    delivery_record_outcome(claim=probe, result=SendResult(status_code=200, duration_ms=5), now=now)

    assert Subscriber.objects.get(pk=subscriber.pk).circuit_state == Circuit.CLOSED
    assert [(task, arg) for task, arg, _ in _jobs()] == [("release_held", str(subscriber.pk))]
    assert held_deliveries_release(subscriber_id=subscriber.pk, now=now) == 1
    assert (str(second.pk), second.next_attempt_at) in queued()


@pytest.mark.django_db
def test_fan_out_queues_nothing_for_an_open_circuit(make_subscriber):
    subscriber = make_subscriber()
    Subscriber.objects.filter(pk=subscriber.pk).update(circuit_state=Circuit.OPEN)
    OrmQ.objects.all().delete()

    (delivery,) = _deliveries(subscriber, 1)

    assert delivery.enqueued_at is None
    assert queued() == [] and _jobs() == []


@pytest.mark.django_db
def test_sweeper_leaves_held_deliveries_alone_but_queues_a_due_probe(make_subscriber):
    subscriber = make_subscriber()
    _deliveries(subscriber, 3)
    now = timezone.now()
    Subscriber.objects.filter(pk=subscriber.pk).update(
        circuit_state=Circuit.OPEN, circuit_next_probe_at=now
    )
    Delivery.objects.update(enqueued_at=None)
    OrmQ.objects.all().delete()

    assert deliveries_sweep(now=now + timedelta(hours=1)) == 0

    assert [(task, arg) for task, arg, _ in _jobs()] == [("probe", str(subscriber.pk))]


@pytest.mark.django_db
def test_retry_after_backs_off_the_whole_subscriber(make_subscriber):
    subscriber = make_subscriber()
    first, second = _deliveries(subscriber, 2)
    now = timezone.now()

    _attempt(first, now, status=429, headers={"Retry-After": "20"})
    postponed = delivery_claim(delivery_id=second.pk, now=now + timedelta(seconds=1))

    assert postponed is None
    second.refresh_from_db()
    assert second.next_attempt_at == now + timedelta(seconds=20)
    assert second.attempt_count == 0
    assert (str(second.pk), now + timedelta(seconds=20)) in queued()


@pytest.mark.django_db
def test_fan_out_schedules_rate_limited_deliveries_at_their_slots(make_subscriber):
    subscriber = make_subscriber(rate_limit_per_second=2)
    OrmQ.objects.all().delete()

    deliveries = _deliveries(subscriber, 4)

    starts = [d.next_attempt_at - deliveries[0].next_attempt_at for d in deliveries]
    # The burst of one goes when its event arrives; the rest at 0.5 s intervals.
    assert [s.total_seconds() for s in starts] == pytest.approx([0, 0, 0.5, 1.0], abs=0.05)
    assert all(d.rate_slot_at == d.next_attempt_at for d in deliveries)
    # Each is queued for its slot: no claim that would only learn it has to wait.
    assert sorted(due_at for _, due_at in queued()) == [d.next_attempt_at for d in deliveries]


@pytest.mark.django_db
def test_rate_limit_postpones_to_a_reserved_slot_then_admits_it_there(make_subscriber):
    subscriber = make_subscriber()
    deliveries = _deliveries(subscriber, 4)  # e.g. retries or replays: no slot reserved yet
    Subscriber.objects.filter(pk=subscriber.pk).update(rate_limit_per_second=2)
    now = timezone.now()

    claims = [delivery_claim(delivery_id=d.pk, now=now) for d in deliveries]

    assert [claim is not None for claim in claims] == [True, True, False, False]
    slots = [Delivery.objects.get(pk=d.pk).rate_slot_at for d in deliveries[2:]]
    assert slots == [now + timedelta(seconds=0.5), now + timedelta(seconds=1)]
    assert DeliveryAttempt.objects.count() == 2
    # At its slot the delivery goes, without queueing behind the limiter again.
    tat_before = Subscriber.objects.get(pk=subscriber.pk).rate_limit_tat
    assert delivery_claim(delivery_id=deliveries[2].pk, now=slots[0]) is not None
    assert Subscriber.objects.get(pk=subscriber.pk).rate_limit_tat == tat_before


@pytest.mark.django_db
def test_default_rate_limit_applies_to_subscribers_without_one(make_subscriber, settings):
    subscriber = make_subscriber()
    deliveries = _deliveries(subscriber, 3)
    settings.HERALD_DEFAULT_RATE_LIMIT = 1
    now = timezone.now()

    admitted = [delivery_claim(delivery_id=d.pk, now=now) is not None for d in deliveries]

    assert admitted == [True, True, False]


@pytest.mark.django_db
def test_releasing_a_backlog_spreads_it_over_the_rate_limit(make_subscriber):
    subscriber = make_subscriber()
    _deliveries(subscriber, 100)
    Delivery.objects.update(enqueued_at=None)  # held while the circuit was open
    Subscriber.objects.filter(pk=subscriber.pk).update(rate_limit_per_second=5)
    OrmQ.objects.all().delete()
    now = timezone.now()

    assert held_deliveries_release(subscriber_id=subscriber.pk, now=now) == 100

    slots = sorted(Delivery.objects.values_list("next_attempt_at", flat=True))
    assert slots[0] == slots[1] == now
    assert slots[-1] == now + timedelta(seconds=19.6)
    assert len(queued()) == 100


@pytest.mark.django_db
def test_late_deliveries_after_a_stall_do_not_burst(make_subscriber):
    subscriber = make_subscriber(rate_limit_per_second=5)
    deliveries = _deliveries(subscriber, 10)  # slots reserved 0.2 s apart
    stall_over = deliveries[-1].next_attempt_at + timedelta(seconds=5)  # all slots have passed

    sent = [delivery_claim(delivery_id=d.pk, now=stall_over) is not None for d in deliveries]

    assert sent.count(True) == 2  # the rate's one tolerated burst, not ten at once
    reslotted = sorted(
        Delivery.objects.filter(attempt_count=0).values_list("next_attempt_at", flat=True)
    )
    assert len(set(reslotted)) == 8 and reslotted[0] > stall_over


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_get_distinct_evenly_spaced_slots(make_subscriber):
    """Ten workers on their own connections claim at once: two go, no slot is shared."""
    subscriber = make_subscriber()
    deliveries = _deliveries(subscriber, 10)
    Subscriber.objects.filter(pk=subscriber.pk).update(rate_limit_per_second=10)
    now = timezone.now()
    start = threading.Barrier(10)
    sent = []

    def worker(delivery):
        try:
            start.wait()
            if delivery_claim(delivery_id=delivery.pk, now=now) is not None:
                sent.append(delivery.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(d,)) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(sent) == 2
    offsets = sorted(
        round((slot - now).total_seconds(), 6)
        for slot in Delivery.objects.exclude(pk__in=sent).values_list("rate_slot_at", flat=True)
    )
    assert offsets == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]


@pytest.mark.django_db
def test_a_backlog_of_ten_thousand_drains_evenly_at_the_rate(make_subscriber):
    subscriber = make_subscriber(rate_limit_per_second=50)
    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(event_type="order.created", payload={"n": n}) for n in range(10_000)
    )
    Delivery.objects.bulk_create(
        Delivery(event=event, subscriber=subscriber, next_attempt_at=now, enqueued_at=None)
        for event in events
    )
    OrmQ.objects.all().delete()

    assert held_deliveries_release(subscriber_id=subscriber.pk, now=now) == 10_000

    offsets = sorted(
        (slot - now).total_seconds()
        for slot in Delivery.objects.values_list("next_attempt_at", flat=True)
    )
    gaps = {round(b - a, 3) for a, b in itertools.pairwise(offsets[1:])}
    assert offsets[:2] == [0, 0] and gaps == {0.02}  # no two share a slot after the burst of one
    assert offsets[-1] == pytest.approx(9_998 / 50, abs=0.01)
    assert len(queued()) == 10_000 and OrmQ.objects.count() == 0
