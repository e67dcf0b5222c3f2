"""The web process's database connections: closed as their request thread ends, and their
statements bounded in time (`HERALD_WEB_STATEMENT_TIMEOUT`). Installed by config.wsgi only, so
workers and management commands (migrations) keep unbounded statements.

granian retires a request thread after an idle spell (`--blocking-threads-idle-timeout`, 30 s
by default) and starts new ones under load. Django keeps one persistent connection per thread
(`CONN_MAX_AGE`), and a retired thread's connection stayed open until the garbage collector came
round to it: PostgreSQL showed six more idle connections after every quiet spell between bursts,
without bound. A thread's locals are cleared in that thread as it ends, so a closer kept there
closes its connections then, in the thread that opened them.

granian, unlike gunicorn, never kills a stuck request: a statement waiting on a lock would hold
its request thread for good. PostgreSQL ends it after the timeout instead, and the request fails
with a 500 that names nothing of the database.
"""

from __future__ import annotations

import contextlib
import threading

from django.conf import settings
from django.db import connections
from django.db.backends.signals import connection_created

_request_thread = threading.local()


class _ConnectionsCloser:
    def __init__(self) -> None:
        # This thread's wrappers, the same objects Django uses in it for the thread's life.
        # Not SQLite's: closing an sqlite3 connection while granian tears the thread down
        # crashes the worker (a segfault in libpython, measured), and a SQLite connection holds
        # nothing on a server that could pile up: it goes with the thread's other objects.
        self._wrappers = [
            connections[alias] for alias in connections if connections[alias].vendor != "sqlite"
        ]

    def __del__(self) -> None:
        for wrapper in self._wrappers:
            with contextlib.suppress(Exception):
                wrapper.close()


def track_request_thread() -> None:
    """Called at the start of every request: the first in a thread leaves the closer there."""
    if not hasattr(_request_thread, "closer"):
        _request_thread.closer = _ConnectionsCloser()


def _bound_statements(sender, connection, **kwargs) -> None:
    timeout = settings.HERALD_WEB_STATEMENT_TIMEOUT
    if connection.vendor == "postgresql" and timeout > 0:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{timeout}s"])


def install() -> None:
    connection_created.connect(_bound_statements, dispatch_uid="herald-web-statement-timeout")
