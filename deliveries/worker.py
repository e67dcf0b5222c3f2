"""Runs a delivery dispatcher inside every qcluster worker process.

django-q2 sends `post_spawn` in each worker process it starts (and restarts), so every
`manage.py qcluster`, on any machine, delivers with `HERALD_WORKERS` dispatchers and nothing else to
run. The dispatcher lives in a thread beside django-q2's own task loop, which keeps running the
engine's jobs (probes, releases, the sweeper). When the worker stops, the dispatcher finishes the
sends in flight and records them before the process exits, so a restart sends nothing twice.
"""

from __future__ import annotations

import logging
import signal
import threading
from multiprocessing import util

logger = logging.getLogger(__name__)

_EXIT_PRIORITY = 100  # before multiprocessing's own clean-up at process exit


def start_dispatcher(**kwargs) -> None:
    from deliveries.dispatcher import Dispatcher

    dispatcher = Dispatcher.from_settings()
    thread = threading.Thread(target=dispatcher.run, name="herald-dispatch")
    thread.start()

    def finish() -> None:
        dispatcher.stop()
        thread.join()

    util.Finalize(None, finish, exitpriority=_EXIT_PRIORITY)
    # django-q2 leaves SIGTERM fatal in workers. A service manager stopping the whole process
    # group (systemd, docker, honcho) would then cut sends off mid-request; exiting normally
    # instead runs `finish` first.
    signal.signal(signal.SIGTERM, _exit_normally)
    logger.info(
        "delivery dispatcher started",
        extra={"proc": kwargs.get("proc_name"), "concurrency": dispatcher.concurrency},
    )


def _exit_normally(signum, frame) -> None:
    # Once: a second SIGTERM (the stopping qcluster signals its group again, see its command)
    # would otherwise interrupt `finish` while it waits for the sends in flight.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(0)
