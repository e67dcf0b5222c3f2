"""Dispatchers are woken when work commits, and only then: LISTEN/NOTIFY on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, connections, transaction

from deliveries.wakeup import CHANNEL, wake_dispatchers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's"),
]

# Long enough for a NOTIFY sent at once to arrive, on a loaded CI machine too.
ARRIVAL = 2.0


class Listening:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def count(self, seconds: float) -> int:
        """Notifications arriving within `seconds`."""
        arrived = 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            arrived += sum(1 for _ in self._conn.notifies(timeout=left))
        return arrived

    def one_within(self, seconds: float) -> bool:
        return any(True for _ in self._conn.notifies(timeout=seconds, stop_after=1))


@pytest.fixture
def listening() -> Iterator[Listening]:
    params = connections["default"].get_connection_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield Listening(conn)


def test_a_wake_up_asked_for_in_a_transaction_is_sent_once_it_commits(listening):
    with transaction.atomic():
        wake_dispatchers()
        sent_before_commit = listening.count(0.2)

    assert sent_before_commit == 0
    assert listening.one_within(ARRIVAL)


def test_a_rolled_back_transaction_wakes_no_one(listening):
    with pytest.raises(RuntimeError), transaction.atomic():
        wake_dispatchers()
        raise RuntimeError("the work is not committed")

    assert listening.count(0.3) == 0


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/events", {"event_type": "order.created", "payload": {"id": 1}}),
        ("/api/v1/events/batch", {"events": [{"event_type": "order.created", "payload": {}}]}),
    ],
)
def test_an_ingested_event_wakes_the_dispatchers(api, make_subscriber, listening, path, body):
    make_subscriber(event_types=["order.*"])

    response = api.post(path, body, format="json")

    assert response.status_code == 202, response.content
    assert listening.one_within(ARRIVAL)


def test_an_event_no_one_subscribes_to_wakes_no_one(api, make_subscriber, listening):
    make_subscriber(event_types=["invoice.*"])

    response = api.post(
        "/api/v1/events", {"event_type": "order.created", "payload": {}}, format="json"
    )

    assert response.status_code == 202, response.content
    assert listening.count(0.3) == 0
