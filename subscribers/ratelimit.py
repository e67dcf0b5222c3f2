"""GCRA (generic cell rate algorithm) with slot reservation: arithmetic only, no database.

A theoretical arrival time (TAT) per subscriber is the limiter's state. A request at `now` may go
at `max(now, tat - tolerance)` and moves the TAT one interval on. A request that may not go yet
is given that future time as its reserved slot, so a backlog drains at exactly the rate, evenly,
with no herd of retries.

Reserved slots are only a schedule: a job can run late (workers restarting, a busy queue), and
late deliveries arriving together would burst. So each actual send must also conform to a second
TAT that only sends advance (see deliveries.admission).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings


@dataclass(frozen=True)
class Reservation:
    slot: datetime  # when the request may be sent (== now when it may go at once)
    tat: datetime  # the subscriber's new theoretical arrival time


def gcra_interval(rate_per_second: float) -> timedelta:
    return timedelta(seconds=1 / rate_per_second)


def gcra_reserve(*, tat: datetime | None, now: datetime, rate_per_second: float) -> Reservation:
    """Reserve the next slot. Tolerance is one interval: a burst of one extra request is allowed."""
    interval = gcra_interval(rate_per_second)
    tolerance = interval
    current = max(tat or now, now)
    slot = max(now, current - tolerance)
    return Reservation(slot=slot, tat=current + interval)


def gcra_conforms(*, tat: datetime | None, now: datetime, rate_per_second: float) -> bool:
    """Whether a send at `now` keeps within the rate (plus the one tolerated burst)."""
    return tat is None or now >= tat - gcra_interval(rate_per_second)


def gcra_after_send(*, tat: datetime | None, now: datetime, rate_per_second: float) -> datetime:
    return max(tat or now, now) + gcra_interval(rate_per_second)


def effective_rate_limit(rate_limit_per_second: float | None) -> float | None:
    """The subscriber's own limit, else the default (HERALD_DEFAULT_RATE_LIMIT); None: unlimited."""
    return rate_limit_per_second or settings.HERALD_DEFAULT_RATE_LIMIT
