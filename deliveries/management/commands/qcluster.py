"""`manage.py qcluster`: django-q2's, but a stop ends only once every process it started has.

Service managers stop a program by signalling its whole process group (systemd, `tini -g`, a
shell's `kill -- -PGID`), and some then kill whatever is left of the group once the main
process has exited. django-q2's sentinel dies of that SIGTERM at once, which went wrong in two
ways: the main process either exited while the worker processes were still finishing their
sends (deliveries.worker), so that those were cut off mid-request and sent again after the
restart, or it hung until killed, asking the dead sentinel to stop through a lock the sentinel
had died holding.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import time

from django.conf import settings
from django_q.cluster import Cluster
from django_q.management.commands import qcluster

from deliveries import policy
from deliveries.dispatcher import drain_seconds
from deliveries.lifetime import end_with_parent

logger = logging.getLogger(__name__)

# Beyond the dispatchers' own drain: recording the last outcomes, and the processes exiting.
EXIT_MARGIN_SECONDS = 5.0
# A SIGTERM sent to the whole group kills the sentinel within this; one sent to this process
# alone leaves it running, to be asked to stop.
SENTINEL_GRACE_SECONDS = 1.0


class Command(qcluster.Command):
    help = "Starts Herald's workers (a django-q2 cluster); a stop waits for their last sends."

    def handle(self, *args, **options) -> None:
        settings.SECRET_KEY  # noqa: B018 (as django-q2's command: signing needs it)
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        # Every process of the cluster is forked from this one and inherits the write end: the
        # read end reaches end-of-file when the last of them has exited, whoever its parent is.
        lifeline, held_by_the_cluster = os.pipe()
        end_with_parent()
        cluster = Cluster()
        # In place of django-q2's handlers, which ask the sentinel to stop whether or not it is
        # still alive. Only a flag: a handler that took a lock could find this thread holding it.
        signalled: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, frame: signalled.append(signum))
        try:
            cluster.start()
        except RuntimeError:
            if not signalled:
                raise
            # Signalled while starting: the sentinel died of it, which start() takes for a crash.
        finally:
            os.close(held_by_the_cluster)
        while cluster.sentinel.is_alive():
            if signalled or options.get("run_once"):
                _stop(cluster)
                break
            time.sleep(0.2)
        else:
            # Died unasked (killed, crashed), or of the signal while starting: its workers stop
            # with it (deliveries.worker), but its pusher and monitor would linger.
            if not signalled:
                logger.error("the cluster's sentinel died; stopping the cluster")
            _stop(cluster)
        _wait_for_end_of_file(
            lifeline, seconds=drain_seconds(policy.send_options()["timeouts"]) + EXIT_MARGIN_SECONDS
        )


def _stop(cluster: Cluster) -> None:
    deadline = time.monotonic() + SENTINEL_GRACE_SECONDS
    while cluster.sentinel.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if cluster.sentinel.is_alive():
        cluster.stop()  # the sentinel stops its workers, and they finish their sends first
    elif os.getpgid(0) == os.getpid():
        # A worker the sentinel was forking as the group's SIGTERM arrived never got it; it
        # would outlive the cluster. Signal the group again: it is this command's alone, as it
        # leads it. (A worker that got the first SIGTERM is finishing its sends already.)
        os.killpg(os.getpid(), signal.SIGTERM)


def _wait_for_end_of_file(fd: int, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([fd], [], [], left)
        if readable and os.read(fd, 1) == b"":
            return
    logger.warning(
        "cluster processes still running %.0f s after the stop; exiting without them", seconds
    )
