from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from subscribers.circuit import (
    BreakerSettings,
    circuit_claim_probe,
    circuit_record_failure,
    circuit_record_success,
    circuits_open,
    circuits_reset,
)
from subscribers.models import Subscriber

BREAKER = BreakerSettings(threshold=3, cooldown=30, max_cooldown=100, probe_lease=45)
Circuit = Subscriber.Circuit


def _fail(subscriber, now, times=1):
    result = None
    for _ in range(times):
        result = circuit_record_failure(
            subscriber_id=subscriber.pk, now=now, reason="HTTP 500", breaker=BREAKER
        )
    return result


def _state(subscriber) -> Subscriber:
    return Subscriber.objects.get(pk=subscriber.pk)


@pytest.mark.django_db
def test_circuit_opens_after_threshold_consecutive_failures(make_subscriber):
    subscriber = make_subscriber()
    now = timezone.now()

    assert _fail(subscriber, now, times=2) is None
    assert _state(subscriber).circuit_state == Circuit.CLOSED

    probe_at = _fail(subscriber, now)

    opened = _state(subscriber)
    assert opened.circuit_state == Circuit.OPEN
    assert probe_at == opened.circuit_next_probe_at == now + timedelta(seconds=30)
    assert opened.circuit_reason == "HTTP 500"


@pytest.mark.django_db
def test_a_success_resets_the_failure_count(make_subscriber):
    subscriber = make_subscriber()
    now = timezone.now()
    _fail(subscriber, now, times=2)

    assert circuit_record_success(subscriber_id=subscriber.pk, now=now) is False
    _fail(subscriber, now, times=2)

    assert _state(subscriber).circuit_state == Circuit.CLOSED
    assert _state(subscriber).consecutive_failures == 2


@pytest.mark.django_db
def test_no_probe_before_the_cooldown_and_exactly_one_after(make_subscriber):
    subscriber = make_subscriber()
    now = timezone.now()
    _fail(subscriber, now, times=3)

    assert not circuit_claim_probe(subscriber_id=subscriber.pk, now=now, breaker=BREAKER)
    later = now + timedelta(seconds=31)
    assert circuit_claim_probe(subscriber_id=subscriber.pk, now=later, breaker=BREAKER)
    assert not circuit_claim_probe(subscriber_id=subscriber.pk, now=later, breaker=BREAKER)
    assert _state(subscriber).circuit_state == Circuit.HALF_OPEN


@pytest.mark.django_db
def test_successful_probe_closes_the_circuit(make_subscriber):
    subscriber = make_subscriber()
    now = timezone.now()
    _fail(subscriber, now, times=3)
    circuit_claim_probe(
        subscriber_id=subscriber.pk, now=now + timedelta(minutes=1), breaker=BREAKER
    )

    assert circuit_record_success(subscriber_id=subscriber.pk, now=now) is True

    closed = _state(subscriber)
    assert closed.circuit_state == Circuit.CLOSED
    assert closed.consecutive_failures == 0 and closed.circuit_next_probe_at is None


@pytest.mark.django_db
def test_failed_probe_reopens_with_the_cooldown_doubled_up_to_the_maximum(make_subscriber):
    subscriber = make_subscriber()
    now = timezone.now()
    _fail(subscriber, now, times=3)
    cooldowns = []
    for _ in range(3):
        now = _state(subscriber).circuit_next_probe_at
        assert circuit_claim_probe(subscriber_id=subscriber.pk, now=now, breaker=BREAKER)
        probe_at = _fail(subscriber, now)
        cooldowns.append((probe_at - now).total_seconds())

    assert cooldowns == [60, 100, 100]
    assert _state(subscriber).circuit_state == Circuit.OPEN


@pytest.mark.django_db
def test_a_lost_probe_is_replaced_after_its_lease(make_subscriber):
    subscriber = make_subscriber()
    now = timezone.now() + timedelta(minutes=1)
    _fail(subscriber, now - timedelta(minutes=1), times=3)
    assert circuit_claim_probe(subscriber_id=subscriber.pk, now=now, breaker=BREAKER)

    assert not circuit_claim_probe(
        subscriber_id=subscriber.pk, now=now + timedelta(seconds=44), breaker=BREAKER
    )
    assert circuit_claim_probe(
        subscriber_id=subscriber.pk, now=now + timedelta(seconds=46), breaker=BREAKER
    )


@pytest.mark.django_db
def test_circuit_opened_by_hand_sends_no_probe_until_reset(make_subscriber):
    subscriber = make_subscriber()
    now = timezone.now()
    OrmQ.objects.all().delete()

    circuits_open(subscribers=Subscriber.objects.filter(pk=subscriber.pk), reason="maint", now=now)

    assert not circuit_claim_probe(
        subscriber_id=subscriber.pk, now=now + timedelta(days=1), breaker=BREAKER
    )
    reset = circuits_reset(subscribers=Subscriber.objects.filter(pk=subscriber.pk), now=now)
    assert reset == [subscriber.pk]
    assert _state(subscriber).circuit_state == Circuit.CLOSED
    (job,) = OrmQ.objects.all()
    package = SignedPackage.loads(job.payload)
    assert package["func"] == "deliveries.tasks.release_held"
    assert package["args"] == (str(subscriber.pk),)


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_agree_on_a_single_probe(make_subscriber):
    """Eight workers, each on its own database connection, race for the probe: one wins."""
    subscriber = make_subscriber()
    now = timezone.now()
    _fail(subscriber, now, times=3)
    probe_time = now + timedelta(seconds=31)
    start = threading.Barrier(8)
    wins = []

    def worker():
        try:
            start.wait()
            if circuit_claim_probe(subscriber_id=subscriber.pk, now=probe_time, breaker=BREAKER):
                wins.append(threading.get_ident())
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(wins) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_failures_open_the_circuit_exactly_once(make_subscriber):
    subscriber = make_subscriber()
    now = timezone.now()
    start = threading.Barrier(10)
    openings = []

    def worker():
        try:
            start.wait()
            if _fail(subscriber, now) is not None:
                openings.append(1)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(openings) == 1
    assert _state(subscriber).circuit_state == Circuit.OPEN
