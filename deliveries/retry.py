"""When to try again after a failed attempt. Pure functions of the attempt number and response."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

JITTER = 0.1


@dataclass(frozen=True)
class RetryPolicy:
    """`delays[i]` seconds pass between attempts i+1 and i+2; one more attempt than delays."""

    delays: Sequence[float]

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def delay_after(
        self,
        attempt_number: int,
        *,
        retry_after: float | None = None,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait after attempt `attempt_number` (1-based) failed; None when exhausted.

        Up to +10% jitter spreads out retries of deliveries that failed together. A receiver's
        Retry-After is honoured, but only up to the delay after next, so a receiver cannot park a
        delivery for days.
        """
        if attempt_number >= self.max_attempts or not self.delays:
            return None
        delay = self.delays[attempt_number - 1] * (1 + JITTER * rand())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap(attempt_number)))
        return delay

    def retry_after_cap(self, attempt_number: int) -> float:
        """The longest Retry-After honoured after attempt `attempt_number`: the delay after next."""
        if not self.delays:
            return 0.0
        return self.delays[min(attempt_number, len(self.delays) - 1)]


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date; None if absent or junk."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
