"""Waking idle dispatchers the moment work is committed, with PostgreSQL LISTEN/NOTIFY.

A NOTIFY issued inside a transaction is delivered when (and only if) it commits, so a dispatcher
never wakes for deliveries it cannot see yet. Nothing depends on a notification arriving:
dispatchers also poll, so a lost notification costs at most one poll interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from django.db import connection, connections

logger = logging.getLogger(__name__)

CHANNEL = "herald_deliveries"
RECONNECT_DELAY = 1.0


def wake_dispatchers() -> None:
    """Notify listening dispatchers when the caller's transaction commits (PostgreSQL only)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {CHANNEL}")


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
