"""Worker heartbeats: each dispatcher checks in every few seconds, cheaply, from the loop."""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries import heartbeat, policy
from deliveries.dispatcher import Dispatcher
from deliveries.heartbeat import Heartbeat, cluster_status, worker_heartbeat
from deliveries.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db

THIS_WORKER = f"{socket.gethostname()}:{os.getpid()}"


def test_a_beat_records_this_process_and_repeats_only_after_the_interval():
    beats = Heartbeat(interval=60)

    beats.beat()
    first = WorkerHeartbeat.objects.get(worker=THIS_WORKER)
    WorkerHeartbeat.objects.update(seen_at=first.seen_at - timedelta(seconds=30))
    beats.beat()  # within the interval: no write

    assert WorkerHeartbeat.objects.get().seen_at == first.seen_at - timedelta(seconds=30)

    Heartbeat(interval=0).beat()
    assert WorkerHeartbeat.objects.get().seen_at > first.seen_at
    assert WorkerHeartbeat.objects.count() == 1


def test_workers_gone_for_a_day_are_forgotten_and_recent_ones_counted():
    now = timezone.now()
    worker_heartbeat(worker="old:1", started_at=now, now=now - timedelta(days=2))
    worker_heartbeat(worker="quiet:2", started_at=now, now=now - timedelta(minutes=5))
    worker_heartbeat(worker="busy:3", started_at=now, now=now)

    status = cluster_status(now=now)

    assert set(WorkerHeartbeat.objects.values_list("worker", flat=True)) == {"quiet:2", "busy:3"}
    assert status.workers_alive == 1
    assert status.last_seen_at == now


def test_the_dispatcher_loop_checks_in(monkeypatch):
    monkeypatch.setattr(heartbeat, "_process_heartbeat", Heartbeat())
    dispatcher = Dispatcher(concurrency=1, poll=0.01, send_options=policy.send_options())

    dispatcher._cycle()

    row = WorkerHeartbeat.objects.get(worker=THIS_WORKER)
    assert timezone.now() - row.seen_at < timedelta(seconds=5)


def test_a_worker_that_stopped_is_not_counted_but_still_shows_when_it_was_last_up():
    beats = Heartbeat(interval=60)
    beats.beat()
    assert cluster_status(now=timezone.now()).workers_alive == 1

    beats.stop()

    status = cluster_status(now=timezone.now())
    assert status.workers_alive == 0
    row = WorkerHeartbeat.objects.get(worker=THIS_WORKER)
    assert row.stopped_at is not None
    assert status.last_seen_at == row.stopped_at
    # Beating again (the next beat is due at once) counts it alive again.
    beats.beat()
    assert cluster_status(now=timezone.now()).workers_alive == 1


@pytest.mark.django_db(transaction=True)
def test_a_dispatcher_that_finishes_says_its_worker_stopped(monkeypatch):
    monkeypatch.setattr(heartbeat, "_process_heartbeat", Heartbeat())
    dispatcher = Dispatcher(concurrency=1, poll=0.01, send_options=policy.send_options())
    loop = threading.Thread(target=dispatcher.run)
    loop.start()
    deadline = time.monotonic() + 10
    while not WorkerHeartbeat.objects.filter(worker=THIS_WORKER).exists():
        assert time.monotonic() < deadline, "the dispatcher never checked in"
        time.sleep(0.05)
    assert cluster_status(now=timezone.now()).workers_alive == 1

    dispatcher.stop()
    loop.join(timeout=10)

    assert not loop.is_alive()
    assert cluster_status(now=timezone.now()).workers_alive == 0
