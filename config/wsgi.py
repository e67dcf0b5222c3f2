"""WSGI entry point for granian (`granian config.wsgi:application --interface wsgi`).

Each request thread's database connections are closed when the thread ends. granian retires a
request thread after an idle spell (`--blocking-threads-idle-timeout`, 30 s by default) and
starts new ones under load. Django keeps one persistent connection per thread (`CONN_MAX_AGE`),
and a retired thread's connection stayed open until the garbage collector came round to it:
PostgreSQL showed six more idle connections after every quiet spell between bursts, without
bound. A thread's locals are cleared in that thread as it ends, so a closer kept there closes
its connections then, in the thread that opened them.
"""

import contextlib
import os
import threading

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application = get_wsgi_application()

from django.db import connections  # noqa: E402  (after Django is set up)

_request_thread = threading.local()


class _ConnectionsCloser:
    def __init__(self) -> None:
        # This thread's wrappers, the same objects Django uses in it for the thread's life.
        self._wrappers = [connections[alias] for alias in connections]

    def __del__(self) -> None:
        for wrapper in self._wrappers:
            with contextlib.suppress(Exception):
                wrapper.close()


def application(environ, start_response):
    if not hasattr(_request_thread, "closer"):
        _request_thread.closer = _ConnectionsCloser()
    return django_application(environ, start_response)
