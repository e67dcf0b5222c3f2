"""Worker heartbeats: each dispatcher says it is alive; health checks and metrics read them.

django-q2 keeps its cluster stats in a cache, which with the ORM broker and Django's default
per-process cache the web process cannot see. A row per worker in the shared database can be
seen from anywhere, costs one small write every HEARTBEAT_INTERVAL, and names the worker
(host:pid) that stopped checking in.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max
from django.utils import timezone

from deliveries.models import WorkerHeartbeat

HEARTBEAT_INTERVAL = 10.0  # seconds between a dispatcher's writes
ALIVE_WITHIN = timedelta(minutes=1)  # a worker seen this recently counts as up
FORGET_AFTER = timedelta(days=1)  # rows of workers gone this long are deleted


def worker_heartbeat(*, worker: str, started_at: datetime, now: datetime) -> None:
    """Record that `worker` is alive (one upsert), and forget workers long gone."""
    WorkerHeartbeat.objects.bulk_create(
        [WorkerHeartbeat(worker=worker, started_at=started_at, seen_at=now, stopped_at=None)],
        update_conflicts=True,
        unique_fields=["worker"],
        update_fields=["seen_at", "stopped_at"],
    )
    WorkerHeartbeat.objects.filter(seen_at__lt=now - FORGET_AFTER).delete()


def worker_stopped(*, worker: str, now: datetime) -> None:
    """`worker` stopped cleanly: /health and the metrics stop counting it at once, rather than
    a minute after its last beat (a restart showed the old workers and the new together)."""
    WorkerHeartbeat.objects.filter(worker=worker).update(seen_at=now, stopped_at=now)


class Heartbeat:
    """Writes this process's heartbeat at most every `interval` seconds, however often called."""

    def __init__(self, interval: float = HEARTBEAT_INTERVAL) -> None:
        self.interval = interval
        self._pid: int | None = None
        self._started_at: datetime | None = None
        self._next = 0.0

    def beat(self) -> None:
        if self._pid != os.getpid():  # a new process (forked after import): a new worker
            self._pid, self._started_at, self._next = os.getpid(), timezone.now(), 0.0
        if time.monotonic() < self._next:
            return
        worker_heartbeat(worker=self._worker(), started_at=self._started_at, now=timezone.now())
        # Only after the write succeeded: a failed one is tried again on the next call.
        self._next = time.monotonic() + self.interval

    def stop(self) -> None:
        if self._pid == os.getpid():  # this process has checked in
            worker_stopped(worker=self._worker(), now=timezone.now())
            self._next = 0.0

    def _worker(self) -> str:
        return f"{socket.gethostname()}:{self._pid}"


_process_heartbeat = Heartbeat()


def beat() -> None:
    """The dispatcher loop calls this on every turn; it writes every HEARTBEAT_INTERVAL."""
    _process_heartbeat.beat()


def stop() -> None:
    """The dispatcher has finished: this worker is no longer alive."""
    _process_heartbeat.stop()


@dataclass(frozen=True)
class ClusterStatus:
    workers_alive: int
    last_seen_at: datetime | None

    def last_seen_age(self, now: datetime) -> float | None:
        return (now - self.last_seen_at).total_seconds() if self.last_seen_at else None

    @property
    def ok(self) -> bool:
        return self.workers_alive > 0


def cluster_status(*, now: datetime) -> ClusterStatus:
    """How many workers checked in within ALIVE_WITHIN, and when the last one did."""
    recent = WorkerHeartbeat.objects.filter(
        seen_at__gte=now - ALIVE_WITHIN, stopped_at__isnull=True
    ).count()
    last = WorkerHeartbeat.objects.aggregate(last=Max("seen_at"))["last"]
    return ClusterStatus(workers_alive=recent, last_seen_at=last)
