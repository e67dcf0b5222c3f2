"""Stopping the cluster mid-delivery: kill -9 loses nothing; a clean stop also repeats nothing."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

import pytest

from deliveries.models import Delivery, DeliveryAttempt
from events.services import event_create
from tests.e2e.conftest import wait_until
from tests.receiver import Reply

pytestmark = pytest.mark.e2e

EVENTS = 20


@pytest.fixture
def sending(cluster, receiver, make_subscriber):
    """EVENTS events for a receiver that takes a second over each: the cluster is mid-request."""
    make_subscriber(endpoint_url=receiver.url("/slow"))
    receiver.default("/slow", Reply(delay=1.0))
    for n in range(EVENTS):
        event_create(event_type="order.created", payload={"n": n})
    receiver.wait_for(3, path="/slow")


def assert_every_send_recorded() -> None:
    """Nothing left in flight, no attempt without its outcome."""
    assert not Delivery.objects.filter(status="in_flight").exists()
    assert not DeliveryAttempt.objects.filter(finished_at=None).exists()


def test_killing_the_cluster_mid_delivery_loses_no_event(cluster, receiver, make_subscriber):
    make_subscriber(endpoint_url=receiver.url("/slow"))
    receiver.default("/slow", Reply(delay=1.0))
    event_ids = {
        str(event_create(event_type="order.created", payload={"n": n}).event.id)
        for n in range(EVENTS)
    }

    receiver.wait_for(3, path="/slow")  # workers are mid-request now
    cluster.kill()
    # Requests already on the wire are still being read by the receiver: let them land. Nothing
    # new can arrive, the whole cluster is dead.
    time.sleep(0.5)
    sent_before_kill = {r.headers["webhook-id"] for r in receiver.received("/slow")}
    delivered_before_kill = Delivery.objects.filter(status="delivered").count()
    assert delivered_before_kill < EVENTS
    cluster.start()

    # Leases run out and the new cluster's dispatchers reclaim what the dead one had in flight.
    wait_until(
        lambda: Delivery.objects.filter(status="delivered").count() == EVENTS,
        timeout=150,
        message=f"all {EVENTS} deliveries are delivered after the restart\n{cluster.log()[-3000:]}",
    )
    received = Counter(r.headers["webhook-id"] for r in receiver.received("/slow"))
    assert set(received) == event_ids
    # At-least-once: only requests in flight at the kill may arrive twice, and only twice.
    assert {event_id for event_id, count in received.items() if count > 1} <= sent_before_kill
    assert max(received.values()) <= 2


def test_a_clean_stop_finishes_what_is_in_flight_and_repeats_nothing(cluster, sending, receiver):
    cluster.stop()  # SIGTERM to every process of the cluster, as a service manager sends

    assert_every_send_recorded()
    cluster.start()
    wait_until(
        lambda: Delivery.objects.filter(status="delivered").count() == EVENTS,
        timeout=60,
        message=f"all {EVENTS} deliveries are delivered after the restart\n{cluster.log()[-3000:]}",
    )
    received = Counter(r.headers["webhook-id"] for r in receiver.received("/slow"))
    assert len(received) == EVENTS and max(received.values()) == 1


@pytest.mark.parametrize("whole_group", [True, False], ids=["group", "main-process-only"])
def test_a_stopped_cluster_exits_by_itself_once_its_last_sends_are_recorded(
    cluster, sending, whole_group
):
    # Within the dispatchers' drain (1 s connect + 2 s delivery timeout + 5) and the margin: a
    # main process waiting on a sentinel that died (the old hang) would run into this.
    exit_code = cluster.terminate(whole_group=whole_group, timeout=20)

    assert exit_code == 0
    # What a service manager that kills the rest of the group once the main process has gone
    # would find: nothing. Every send in flight at the signal was finished and recorded.
    assert cluster.running_processes() == 0
    assert_every_send_recorded()


def test_workers_whose_sentinel_dies_finish_their_sends_and_exit(cluster, sending):
    # The sentinel dies without stopping its workers (it was killed, or a signal raced its
    # start): each worker is told by the kernel and stops as if it had been sent SIGTERM.
    os.kill(cluster.sentinel_pid(), signal.SIGKILL)

    assert cluster.process.wait(timeout=20) == 0
    assert cluster.running_processes() == 0
    assert_every_send_recorded()


def test_killing_the_main_process_alone_ends_the_cluster_after_its_sends(cluster, sending):
    # An OOM kill of the main process: its sentinel and workers must not run on unsupervised
    # (a restarted cluster would run beside them), and the workers' sends still end recorded.
    cluster.process.kill()
    cluster.process.wait(timeout=5)

    wait_until(
        lambda: cluster.running_processes() == 0,
        timeout=20,
        message=f"every process of the cluster has ended\n{cluster.log()[-3000:]}",
    )
    assert_every_send_recorded()
