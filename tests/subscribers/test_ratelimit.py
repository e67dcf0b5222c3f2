from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from subscribers.ratelimit import gcra_reserve

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
rates = st.floats(min_value=0.5, max_value=200, allow_nan=False)


def _reserve_all(rate: float, arrivals: list[float]) -> list[float]:
    """Slots (seconds after T0) for requests arriving at the given offsets, in order."""
    tat, slots = None, []
    for offset in arrivals:
        reservation = gcra_reserve(
            tat=tat, now=T0 + timedelta(seconds=offset), rate_per_second=rate
        )
        tat = reservation.tat
        slots.append((reservation.slot - T0).total_seconds())
    return slots


@given(
    rate=rates, arrivals=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=300)
)
def test_no_window_of_one_second_holds_more_than_the_rate_plus_one_burst(rate, arrivals):
    slots = sorted(_reserve_all(rate, sorted(arrivals)))

    for i, start in enumerate(slots):
        in_window = sum(1 for slot in slots[i:] if slot < start + 1 - 1e-5)
        assert in_window <= math.ceil(rate) + 1


@given(
    rate=rates, arrivals=st.lists(st.floats(min_value=0, max_value=30), min_size=1, max_size=300)
)
def test_a_request_is_never_scheduled_before_it_arrives(rate, arrivals):
    arrivals = sorted(arrivals)
    for arrival, slot in zip(arrivals, _reserve_all(rate, arrivals), strict=True):
        assert slot >= arrival - 1e-6  # datetimes have microsecond resolution


@given(rate=rates, backlog=st.integers(min_value=2, max_value=500))
def test_a_backlog_drains_evenly_at_exactly_the_rate(rate, backlog):
    slots = _reserve_all(rate, [0.0] * backlog)

    assert slots[:2] == [0.0, 0.0]  # the tolerated burst of one
    gaps = [b - a for a, b in itertools.pairwise(slots[1:])]
    assert all(math.isclose(gap, 1 / rate, abs_tol=2e-6) for gap in gaps)
    # Each interval is rounded to the microsecond, so the end may drift by a microsecond a slot.
    assert math.isclose(slots[-1], (backlog - 2) / rate, abs_tol=backlog * 1e-6)


def test_idle_limiter_lets_a_request_go_at_once():
    first = gcra_reserve(tat=None, now=T0, rate_per_second=5)
    later = gcra_reserve(tat=first.tat, now=T0 + timedelta(seconds=10), rate_per_second=5)

    assert first.slot == T0
    assert later.slot == T0 + timedelta(seconds=10)
    assert later.tat == T0 + timedelta(seconds=10.2)
