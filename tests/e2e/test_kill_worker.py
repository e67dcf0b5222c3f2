"""kill -9 of the whole cluster mid-delivery loses nothing."""

from __future__ import annotations

from collections import Counter

import pytest

from deliveries.models import Delivery
from events.services import event_create
from tests.e2e.cluster import E2E_ENV
from tests.e2e.conftest import wait_until
from tests.receiver import Reply

pytestmark = pytest.mark.e2e

EVENTS = 20


def test_killing_the_cluster_mid_delivery_loses_no_event(cluster, receiver, make_subscriber):
    make_subscriber(endpoint_url=receiver.url("/slow"))
    receiver.default("/slow", Reply(delay=1.0))
    event_ids = {
        str(event_create(event_type="order.created", payload={"n": n}).event.id)
        for n in range(EVENTS)
    }

    receiver.wait_for(3, path="/slow")  # workers are mid-request now
    cluster.kill()
    delivered_before_kill = Delivery.objects.filter(status="delivered").count()
    assert delivered_before_kill < EVENTS
    cluster.start()

    # Leases run out, django-q2 redelivers jobs the dead pusher had taken, the sweeper mops up.
    wait_until(
        lambda: Delivery.objects.filter(status="delivered").count() == EVENTS,
        timeout=150,
        message=f"all {EVENTS} deliveries are delivered after the restart\n{cluster.log()[-3000:]}",
    )
    received = Counter(r.headers["webhook-id"] for r in receiver.received("/slow"))
    assert set(received) == event_ids
    # At-least-once: only requests in flight at the kill may arrive twice.
    duplicates = sum(count - 1 for count in received.values())
    assert duplicates <= int(E2E_ENV["HERALD_WORKERS"])
