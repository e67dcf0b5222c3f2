"""Every process of a cluster ends with the process that forked it (Linux's parent-death signal).

django-q2's processes never check their parent. A sentinel whose main process was killed (kill -9,
an OOM kill) went on running its workers with nobody to stop them, and a restarted cluster then
ran beside them; workers whose sentinel died went on delivering. Registered in the qcluster
command before it forks, so the sentinel and everything it forks (workers, pusher, monitor)
inherit it: each is sent SIGTERM when its parent dies. Workers take SIGTERM as a stop and finish
their sends first (deliveries.worker); the sentinel, pusher and monitor die of it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
_forking_pid: int | None = None


def end_with_parent() -> None:
    """Arrange, in every process forked from now on, for SIGTERM when its parent dies."""
    if sys.platform == "linux":
        os.register_at_fork(before=_remember_parent, after_in_child=_signal_me_when_parent_dies)


def _remember_parent() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _signal_me_when_parent_dies() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        logger.warning("could not ask to end with the parent process: errno %s", ctypes.get_errno())
        return
    if os.getppid() != _forking_pid:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
