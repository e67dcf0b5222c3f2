"""Waking idle dispatchers the moment work is committed, with PostgreSQL LISTEN/NOTIFY.

Wake-ups are sent after the work commits, never inside its transaction: PostgreSQL holds a
database-wide lock from the start of a notifying transaction's commit to its end, so
transactions that NOTIFY commit one at a time however many clients send them (measured with
pgbench, 12 clients each inserting a row: 12,900 commits/s, and 4,400/s when each also
notifies). Each process instead hands its wake-ups to one thread that sends a single NOTIFY for
all that arrived since its last one, at most one every ANNOUNCE_INTERVAL seconds.

Nothing depends on a notification arriving: dispatchers also poll, so a lost notification costs
at most one poll interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import psycopg
from django.db import connection, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "herald_deliveries"
RECONNECT_DELAY = 1.0
# Wake-ups asked for within this many seconds of a NOTIFY wait for the next one. The first after
# a quiet spell goes at once, so only a busy process's wake-ups wait, and for no longer than this.
ANNOUNCE_INTERVAL = 0.005


def wake_dispatchers() -> None:
    """Wake listening dispatchers once the caller's transaction commits (PostgreSQL only).

    Outside a transaction the work is committed already, and the wake-up is asked for at once.
    """
    if connection.vendor == "postgresql":
        transaction.on_commit(_this_process_announcer().announce)


class Announcer:
    """Sends the NOTIFY for every wake-up asked of it, on a connection and thread of its own.

    Wake-ups asked for while a NOTIFY is being sent, or within `interval` after it, fold into the
    next one; the last wake-up of a burst is always followed by a NOTIFY.
    """

    def __init__(self, params: dict, *, interval: float = ANNOUNCE_INTERVAL) -> None:
        # Named, so that pg_stat_activity tells this connection from the request threads'.
        self._params = {"application_name": "herald-wakeup", **params}
        self._interval = interval
        self._asked = threading.Event()
        self._stopping = False
        self._connection: psycopg.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="herald-announce", daemon=True)
        self._thread.start()

    def announce(self) -> None:
        self._asked.set()

    def stop(self) -> None:
        """End the thread and close the connection; a wake-up not yet sent is left to the poll."""
        self._stopping = True
        self._asked.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        try:
            while True:
                self._asked.wait()
                # Cleared before sending: a wake-up asked for from here on gets a NOTIFY after this.
                self._asked.clear()
                if self._stopping:
                    return
                self._notify()
                time.sleep(self._interval)
        finally:
            if self._connection is not None:
                self._connection.close()

    def _notify(self) -> None:
        # A second try on a new connection: the first fails when the database restarted since.
        for attempt in (1, 2):
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = psycopg.connect(**self._params, autocommit=True)
                self._connection.execute(f"NOTIFY {CHANNEL}")
                return
            except psycopg.Error as exc:
                if self._connection is not None:
                    self._connection.close()
                self._connection = None
                if attempt == 2:
                    logger.warning(
                        "could not wake the dispatchers; they find the work when they poll: %s",
                        exc,
                    )


_announcer: Announcer | None = None
_announcer_lock = threading.Lock()


def _this_process_announcer() -> Announcer:
    global _announcer
    if _announcer is None:
        with _announcer_lock:
            if _announcer is None:
                _announcer = Announcer(connections["default"].get_connection_params())
    return _announcer


def stop_announcing() -> None:
    """Close this process's announcer, if it has one; the next wake-up starts another.

    For the tests: a test database cannot be dropped while the announcer is connected to it.
    """
    global _announcer
    with _announcer_lock:
        if _announcer is not None:
            _announcer.stop()
            _announcer = None


# Announcers inherited through fork: kept, never used. Freeing one would close its connection,
# and that sends the server a goodbye on the socket the parent still uses.
_inherited: list[Announcer] = []


def _forget_parents_announcer() -> None:
    # A forked child has the parent's announcer but not its thread.
    global _announcer, _announcer_lock
    if _announcer is not None:
        _inherited.append(_announcer)
    _announcer = None
    _announcer_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_parents_announcer)


def notifications_supported() -> bool:
    return connections["default"].vendor == "postgresql"


class Listener(threading.Thread):
    """Calls `on_wake` for every notification, on its own connection; reconnects after errors."""

    def __init__(self, on_wake: Callable[[], None]) -> None:
        super().__init__(name="herald-listen", daemon=True)
        self._on_wake = on_wake
        self._stopping = threading.Event()
        self._params = connections["default"].get_connection_params()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(**self._params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    # Work committed while we were (re)connecting was not announced to us.
                    self._on_wake()
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._on_wake()
            except psycopg.Error as exc:
                logger.warning("dispatcher listener lost its connection, retrying: %s", exc)
                self._stopping.wait(RECONNECT_DELAY)
