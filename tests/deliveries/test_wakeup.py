"""Dispatchers are woken after work commits, by one NOTIFY for all of a process's recent work."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, connections, transaction

from deliveries.wakeup import CHANNEL, Announcer, wake_dispatchers

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="LISTEN/NOTIFY is PostgreSQL's"),
]

# Long enough for a NOTIFY sent at once to arrive, on a loaded CI machine too.
ARRIVAL = 2.0


class Listening:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn
        self.arrived_at: list[float] = []

    def collect(self, seconds: float) -> int:
        """Notifications arriving within `seconds`, counted (and their times kept)."""
        before = len(self.arrived_at)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            for _ in self._conn.notifies(timeout=left):
                self.arrived_at.append(time.monotonic())
        return len(self.arrived_at) - before

    def first_within(self, seconds: float) -> bool:
        for _ in self._conn.notifies(timeout=seconds, stop_after=1):
            self.arrived_at.append(time.monotonic())
            return True
        return False


@pytest.fixture
def make_announcer() -> Iterator:
    made: list[Announcer] = []

    def make(*, interval: float = 0, **params) -> Announcer:
        default = connections["default"].get_connection_params()
        announcer = Announcer({**default, **params}, interval=interval)
        made.append(announcer)
        return announcer

    yield make
    for announcer in made:
        announcer.stop()


@pytest.fixture
def listening() -> Iterator[Listening]:
    params = connections["default"].get_connection_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield Listening(conn)


def test_a_wake_up_asked_for_in_a_transaction_is_sent_once_it_commits(listening):
    with transaction.atomic():
        wake_dispatchers()
        sent_before_commit = listening.collect(0.2)

    assert sent_before_commit == 0
    assert listening.first_within(ARRIVAL)


def test_a_rolled_back_transaction_wakes_no_one(listening):
    with pytest.raises(RuntimeError), transaction.atomic():
        wake_dispatchers()
        raise RuntimeError("the work is not committed")

    assert listening.collect(0.3) == 0


def test_a_burst_of_wake_ups_folds_into_few_notifies_and_the_last_is_announced(
    listening, make_announcer
):
    announcer = make_announcer(interval=0.05)
    asked = 0
    started = time.monotonic()
    while time.monotonic() - started < 0.5:
        announcer.announce()
        asked += 1
        time.sleep(0.001)
    last_asked_at = time.monotonic()

    arrived = listening.collect(0.5)

    assert asked > 100
    # One at once, then at most one per interval while the burst lasted, and the trailing one.
    assert 2 <= arrived <= 0.5 / 0.05 + 2
    assert listening.arrived_at[-1] > last_asked_at


def test_an_announcer_whose_connection_was_closed_by_the_server_reconnects(
    listening, make_announcer
):
    announcer = make_announcer(application_name="herald-wakeup-test")
    announcer.announce()
    assert listening.first_within(ARRIVAL)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'herald-wakeup-test'"
        )
        assert cursor.fetchall() == [(True,)]
    announcer.announce()

    assert listening.first_within(ARRIVAL)


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
    assert listening.first_within(ARRIVAL)


def test_an_event_no_one_subscribes_to_wakes_no_one(api, make_subscriber, listening):
    make_subscriber(event_types=["invoice.*"])

    response = api.post(
        "/api/v1/events", {"event_type": "order.created", "payload": {}}, format="json"
    )

    assert response.status_code == 202, response.content
    assert listening.collect(0.3) == 0
