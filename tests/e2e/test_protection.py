"""Receiver protection with a real cluster: circuit breaker, rate limit, SSRF at send time."""

from __future__ import annotations

import time

import pytest

from deliveries.models import Delivery, DeliveryAttempt
from events.services import event_create
from subscribers.models import Subscriber
from tests.e2e.conftest import wait_until
from tests.receiver import Reply

pytestmark = pytest.mark.e2e

COOLDOWN = 3.0


@pytest.fixture
def cluster_env():
    return {
        "HERALD_BREAKER_THRESHOLD": "3",
        "HERALD_BREAKER_COOLDOWN": str(COOLDOWN),
        "HERALD_RETRY_SCHEDULE": "1,1,1,1,1,1,1,1",
    }


def _circuit(subscriber) -> Subscriber:
    return Subscriber.objects.get(pk=subscriber.pk)


def test_failing_receiver_gets_threshold_requests_then_silence_until_one_probe(
    cluster, api, receiver, make_subscriber
):
    subscriber = make_subscriber(endpoint_url=receiver.url("/down"))
    receiver.default("/down", Reply(status=500))
    for n in range(3):
        event_create(event_type="order.created", payload={"n": n})

    wait_until(
        lambda: _circuit(subscriber).circuit_state == "open", timeout=15, message="circuit opens"
    )
    at_opening = len(receiver.received("/down"))
    probe_at = _circuit(subscriber).circuit_next_probe_at.timestamp()
    assert at_opening == 3  # three failures open it
    for n in range(3, 6):  # published while open: held, not sent
        event_create(event_type="order.created", payload={"n": n})
    time.sleep(max(0.0, probe_at - time.time() - 0.3))
    assert len(receiver.received("/down")) == at_opening  # silence while open

    receiver.wait_for(at_opening + 1, path="/down", timeout=COOLDOWN + 5)
    probe = receiver.received("/down")[at_opening]
    assert probe.at >= probe_at - 0.05
    wait_until(
        lambda: _circuit(subscriber).circuit_state == "open", timeout=10, message="probe re-opens"
    )
    reopened = _circuit(subscriber)
    assert reopened.circuit_cooldown_seconds == COOLDOWN * 2
    time.sleep(COOLDOWN)
    assert len(receiver.received("/down")) == at_opening + 1  # exactly one probe went out

    receiver.default("/down", Reply(status=200))
    response = api.post(f"/api/v1/subscribers/{subscriber.pk}/reset-circuit")

    assert response.status_code == 200 and response.json()["circuit_state"] == "closed"
    wait_until(
        lambda: Delivery.objects.filter(status="delivered").count() == 6,
        timeout=20,
        message=f"all 6 held deliveries are delivered after the reset\n{cluster.log()[-2000:]}",
    )
    health = api.get(f"/api/v1/subscribers/{subscriber.pk}/health").json()
    assert health["circuit_state"] == "closed" and health["held_deliveries"] == 0


def test_rate_limited_subscriber_gets_a_hundred_events_evenly_at_five_a_second(
    cluster, receiver, make_subscriber
):
    make_subscriber(endpoint_url=receiver.url("/limited"), rate_limit_per_second=5)
    for n in range(100):
        event_create(event_type="order.created", payload={"n": n})

    arrivals = sorted(r.at for r in receiver.wait_for(100, path="/limited", timeout=60))

    time.sleep(0.5)
    assert len(receiver.received("/limited")) == 100
    assert len({r.headers["webhook-id"] for r in receiver.received("/limited")}) == 100
    # Herald's own record of when each request started: never more than 5 a second, plus the
    # one tolerated burst.
    starts = sorted(
        started.timestamp()
        for started in DeliveryAttempt.objects.values_list("started_at", flat=True)
    )
    assert len(starts) == 100  # nothing was spent on being limited: one attempt each
    assert _busiest(starts, window=1.0) <= 6
    # At the receiver, network jitter of a few milliseconds is added.
    assert _busiest(arrivals, window=0.95) <= 6
    assert arrivals[-1] - arrivals[0] >= (100 - 2) / 5 - 0.2


def _busiest(times: list[float], *, window: float) -> int:
    return max(sum(1 for t in times[i:] if t < start + window) for i, start in enumerate(times))


@pytest.fixture
def private_targets_refused(cluster_env):
    cluster_env["HERALD_ALLOW_PRIVATE_TARGETS"] = "false"


def test_private_target_is_refused_at_send_time(
    private_targets_refused, cluster, receiver, make_subscriber
):
    # Saved while allowed (or DNS changed since): the check at connect time still refuses it.
    make_subscriber(endpoint_url=receiver.url("/internal"))

    event_create(event_type="order.created", payload={})

    wait_until(lambda: DeliveryAttempt.objects.exists(), timeout=10, message="an attempt")
    attempt = DeliveryAttempt.objects.get()
    wait_until(
        lambda: DeliveryAttempt.objects.get().finished_at is not None, timeout=10, message="done"
    )
    attempt.refresh_from_db()
    assert "refused: 127.0.0.1 resolves to 127.0.0.1" in attempt.error
    assert receiver.received() == []
