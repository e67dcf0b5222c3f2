"""The delivery loop each worker process runs: claim due deliveries in batches, send them
concurrently, record their outcomes in batches.

One thread talks to the database; a pool of sender threads (deliveries.workpool) does the HTTP
over keep-alive connections shared per receiver (deliveries.transport). Sends finishing and new
work being committed both wake the loop through one queue, so it never sleeps while there is
something to do and never spins while there is not.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from datetime import datetime

from django.conf import settings
from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
)
from django.utils import timezone

from deliveries import heartbeat, policy
from deliveries.claims import Claim, deliveries_claim, next_due_at
from deliveries.outcomes import Sent, deliveries_record_outcomes
from deliveries.selectors import queued
from deliveries.sender import SendResult, Timeouts, send
from deliveries.wakeup import Listener, notifications_supported
from deliveries.workpool import WorkPool

logger = logging.getLogger(__name__)

WAKE = object()  # a wake-up in the loop's queue, as opposed to a finished send
LEASE_CHECK_INTERVAL = 1.0  # seconds between looks for deliveries whose worker died
MIN_WAIT = 0.005
# New work announced this soon after the last claim waits out the rest of this window, so that
# under a stream of commits one claim takes what several announced; after a quiet spell the
# claim is immediate.
COALESCE_WINDOW = 0.005
# Outcomes are recorded together: once this many are waiting, or the oldest has waited this
# long, or nothing else is in flight. The receiver already has its request, so waiting adds no
# delivery latency; it turns a stream of one-row transactions into a few larger ones.
RECORD_BATCH = 32
RECORD_WINDOW = 0.02
MAX_DB_BACKOFF = 5.0


def drain_seconds(timeouts: Timeouts) -> float:
    """How long a stopping dispatcher waits for its sends in flight: no send takes longer."""
    return timeouts.connect + timeouts.total + 5


class Dispatcher:
    def __init__(self, *, concurrency: int, poll: float, send_options: dict) -> None:
        self.concurrency = concurrency
        self.poll = poll
        self._send_options = send_options
        self._drain_seconds = drain_seconds(send_options["timeouts"])
        self._pool = WorkPool(concurrency, self._send, name="herald-send")
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_pending = threading.Event()
        self._stopping = threading.Event()
        self._in_flight = 0
        self._unrecorded: list[Sent] = []
        self._next_lease_check = 0.0
        self._last_claim = 0.0  # time.monotonic() when the last claim ended
        # Claiming is worth a query only when something may be due: new work was announced, the
        # last claim filled every slot (a backlog), or the earliest queued delivery's time came.
        self._woken = True
        self._backlog = False
        self._claim_at = 0.0  # time.monotonic() by which to claim again whatever happens
        self._first_unrecorded_at = 0.0
        self._db_backoff = 0.0

    @classmethod
    def from_settings(cls) -> Dispatcher:
        return cls(
            concurrency=settings.HERALD_DELIVERY_CONCURRENCY,
            poll=settings.HERALD_QUEUE_POLL,
            send_options=policy.send_options(),
        )

    def wake(self) -> None:
        """New work may be due (any thread). Wake-ups before the loop runs again fold into one."""
        if not self._wake_pending.is_set():
            self._wake_pending.set()
            self._inbox.put(WAKE)

    def stop(self) -> None:
        """Finish: claim nothing more, let the sends in flight end, record them."""
        self._stopping.set()
        self._inbox.put(WAKE)

    def run(self) -> None:
        listener = Listener(self.wake) if notifications_supported() else None
        if listener:
            listener.start()
        try:
            while not self._stopping.is_set():
                self._guarded(self._cycle)
            self._drain(deadline=time.monotonic() + self._drain_seconds)
        finally:
            if listener:
                listener.stop()
            self._pool.shutdown()
            # A worker whose database is away cannot say it stopped; its beats age out instead.
            with contextlib.suppress(DatabaseError):
                heartbeat.stop()
            connection.close()

    def _drain(self, *, deadline: float) -> None:
        """Wait for the sends in flight and record them; a lease covers what is left at the end."""
        while (self._in_flight or self._unrecorded) and time.monotonic() < deadline:
            if self._in_flight:
                with contextlib.suppress(queue.Empty):
                    self._take(self._inbox.get(timeout=0.5))
            self._take_all_waiting()
            self._guarded(self._record)

    def run_until_idle(self, *, timeout: float) -> None:
        """Deliver everything due now and wait for its outcomes; for the shell and tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            wanted = self.concurrency - self._in_flight
            claimed = self._claim(wanted) if wanted else 0
            idle = not claimed and not self._in_flight and not self._unrecorded
            # A claim can come back empty while work is due: it set aside what it took (held,
            # or postponed by a rate limit), so look again until nothing due is left.
            if idle and not queued(timezone.now()).exists():
                return
            if self._in_flight:
                self._take(self._inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            self._take_all_waiting()
            self._record()

    def _cycle(self) -> None:
        heartbeat.beat()  # rate-limited inside: one small write every few seconds
        self._take_all_waiting()
        if self._record_due():
            self._record()
        wanted = self.concurrency - self._in_flight
        if wanted and self._claim_due():
            self._claim(wanted)
        with contextlib.suppress(queue.Empty):
            item = self._inbox.get(timeout=self._wait_seconds())
            self._take(item)
            if item is WAKE:
                self._gather(until=self._last_claim + COALESCE_WINDOW)

    def _claim_due(self) -> bool:
        return self._woken or self._backlog or time.monotonic() >= self._claim_at

    def _record_due(self) -> bool:
        return bool(self._unrecorded) and (
            not self._in_flight
            or len(self._unrecorded) >= RECORD_BATCH
            or time.monotonic() - self._first_unrecorded_at >= RECORD_WINDOW
        )

    def _wait_seconds(self) -> float:
        """How long the loop may sleep if nothing arrives: until the next claim or record is due."""
        now = time.monotonic()
        until = now + self.poll
        if self._in_flight < self.concurrency:
            until = min(until, self._claim_at)
        if self._unrecorded:
            until = min(until, self._first_unrecorded_at + RECORD_WINDOW)
        return max(0.0, until - now)

    def _gather(self, *, until: float) -> None:
        """Take what arrives (sends finishing, more wake-ups) until `until` (monotonic)."""
        while (left := until - time.monotonic()) > 0:
            try:
                self._take(self._inbox.get(timeout=left))
            except queue.Empty:
                return

    def _claim(self, wanted: int) -> int:
        now = timezone.now()
        reclaim = time.monotonic() >= self._next_lease_check
        if reclaim:
            self._next_lease_check = time.monotonic() + LEASE_CHECK_INTERVAL
        self._woken = False
        claims = deliveries_claim(limit=wanted, now=now, reclaim_expired=reclaim)
        self._last_claim = time.monotonic()
        # Fewer than wanted means nothing else is due now (what admission set aside is due
        # later): the next claim waits for an announcement, or for the earliest due time.
        self._backlog = len(claims) == wanted
        if not self._backlog:
            self._claim_at = self._last_claim + self._idle_wait()
        for claim in claims:
            self._in_flight += 1
            self._pool.submit(claim)
        return len(claims)

    def _send(self, claim: Claim) -> None:
        try:
            result = send(claim.request, **self._send_options)
        except Exception as exc:  # a bug must not strand the claim: record it as a failure
            logger.exception(
                "sending failed unexpectedly", extra={"delivery_id": str(claim.delivery.pk)}
            )
            result = SendResult(status_code=None, duration_ms=0, error=f"internal error: {exc}")
        self._inbox.put(Sent(claim, result))

    def _take(self, item) -> None:
        if item is WAKE:
            self._wake_pending.clear()
            self._woken = True
        else:
            self._in_flight -= 1
            if not self._unrecorded:
                self._first_unrecorded_at = time.monotonic()
            self._unrecorded.append(item)

    def _take_all_waiting(self) -> None:
        while True:
            try:
                self._take(self._inbox.get_nowait())
            except queue.Empty:
                return

    def _record(self) -> None:
        if not self._unrecorded:
            return
        batch, now = self._unrecorded, timezone.now()
        try:
            outcomes = deliveries_record_outcomes(batch, now=now)
        except (OperationalError, InterfaceError):
            raise  # the database is away: keep the batch and try again (see _guarded)
        except DatabaseError:
            # Something in one outcome the database refuses must not block the rest forever.
            logger.exception(
                "recording a batch of %s outcomes failed; recording one by one", len(batch)
            )
            outcomes = [self._record_alone(sent, now=now) for sent in batch]
        self._unrecorded = []
        for sent, outcome in zip(batch, outcomes, strict=True):
            log_attempt(sent, outcome)
        if any(outcome == "retrying" for outcome in outcomes):
            # A retry this batch scheduled may come due before the claim planned last.
            self._claim_at = min(self._claim_at, time.monotonic() + self._idle_wait())

    def _record_alone(self, sent: Sent, *, now: datetime) -> str:
        try:
            return deliveries_record_outcomes([sent], now=now)[0]
        except (OperationalError, InterfaceError):
            raise
        except DatabaseError:
            # Left in flight: when its lease runs out it is reclaimed and attempted again.
            logger.exception("outcome of delivery_id=%s not recorded", sent.claim.delivery.pk)
            return "unrecorded"

    def _idle_wait(self) -> float:
        """Seconds until the next queued delivery is due, at most one poll interval."""
        next_due = next_due_at()
        if next_due is None:
            return self.poll
        return min(self.poll, max(MIN_WAIT, (next_due - timezone.now()).total_seconds()))

    def _guarded(self, step) -> None:
        """Run a step; if the database is unreachable, wait and try again (results are kept)."""
        try:
            step()
            self._db_backoff = 0.0
        except DatabaseError as exc:
            self._db_backoff = min(MAX_DB_BACKOFF, max(0.1, self._db_backoff * 2))
            logger.warning(
                "dispatcher database error, retrying in %.1fs: %s", self._db_backoff, exc
            )
            close_old_connections()
            connection.close()
            time.sleep(self._db_backoff)


def log_attempt(sent: Sent, outcome: str) -> None:
    """One line per attempt, its ids as fields (see config.logging); `status` is the outcome."""
    if not logger.isEnabledFor(logging.INFO):
        return  # building the fields was 2-3% of a dispatcher's CPU, logged or not
    delivery = sent.claim.delivery
    logger.info(
        "delivery attempt",
        extra={
            "event_id": str(delivery.event_id),
            "delivery_id": str(delivery.pk),
            "subscriber_id": str(delivery.subscriber_id),
            "attempt": sent.claim.attempt.number,
            "status": outcome,
            "status_code": sent.result.status_code,
            "duration_ms": sent.result.duration_ms,
            **({"error": sent.result.error[:500]} if sent.result.error else {}),
        },
    )
