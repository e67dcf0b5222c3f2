"""Runs a delivery dispatcher inside every qcluster worker process.

django-q2 sends `post_spawn` in each worker process it starts (and restarts), so every
`manage.py qcluster`, on any machine, delivers with `HERALD_WORKERS` dispatchers and nothing else to
run. The dispatcher lives in a thread beside django-q2's own task loop, which keeps running the
engine's jobs (probes, releases, the sweeper). When the worker stops, the dispatcher finishes the
sends in flight and records them before the process exits, so a restart sends nothing twice.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing import util

logger = logging.getLogger(__name__)

_EXIT_PRIORITY = 100  # before multiprocessing's own clean-up at process exit
_PR_SET_PDEATHSIG = 1  # <sys/prctl.h>


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
    _stop_with_the_sentinel()
    logger.info(
        "delivery dispatcher started",
        extra={"proc": kwargs.get("proc_name"), "concurrency": dispatcher.concurrency},
    )


def _stop_with_the_sentinel() -> None:
    """SIGTERM this worker when the sentinel that forked it dies (Linux's parent-death signal).

    A stop signals the whole process group, and the sentinel dies of it at once; a worker it
    forked just then, or one a racing signal missed, would otherwise outlive its cluster,
    delivering with nobody to stop it (the e2e stop test found one). The sentinel stops its
    workers before it exits when stopped cleanly, so this only fires when it did not.
    """
    parent = multiprocessing.parent_process()
    if sys.platform != "linux" or parent is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        logger.warning(
            "could not ask to be stopped with the sentinel: errno %s", ctypes.get_errno()
        )
        return
    if os.getppid() != parent.pid:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _exit_normally(signum, frame) -> None:
    # Once: a second SIGTERM (the stopping qcluster signals its group again, see its command)
    # would otherwise interrupt `finish` while it waits for the sends in flight.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(0)
