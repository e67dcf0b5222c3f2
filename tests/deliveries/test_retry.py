from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from hypothesis import given
from hypothesis import strategies as st

from deliveries.retry import RetryPolicy, parse_retry_after

DEFAULT = RetryPolicy(delays=(5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 43200))
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_attempts_allowed_is_one_more_than_delays():
    assert DEFAULT.max_attempts == 12


def test_default_schedule_spans_about_a_day_and_a_half():
    total = sum(DEFAULT.delay_after(n, rand=lambda: 0.0) for n in range(1, DEFAULT.max_attempts))
    assert timedelta(seconds=total) == timedelta(hours=39, minutes=42, seconds=35)


def test_delay_follows_the_schedule_without_jitter():
    assert [DEFAULT.delay_after(n, rand=lambda: 0.0) for n in (1, 2, 3)] == [5, 30, 120]


def test_no_delay_after_the_last_attempt():
    assert DEFAULT.delay_after(12) is None
    assert RetryPolicy(delays=()).delay_after(1) is None


@given(attempt=st.integers(min_value=1, max_value=11), roll=st.floats(min_value=0, max_value=1))
def test_jitter_adds_at_most_ten_percent(attempt, roll):
    base = DEFAULT.delays[attempt - 1]
    delay = DEFAULT.delay_after(attempt, rand=lambda: roll)
    assert base <= delay <= base * 1.1


def test_retry_after_longer_than_the_schedule_is_honoured():
    assert DEFAULT.delay_after(1, retry_after=20, rand=lambda: 0.0) == 20


def test_retry_after_is_capped_at_the_delay_after_next():
    assert DEFAULT.delay_after(1, retry_after=86_400, rand=lambda: 0.0) == 30
    # On the last retry there is no "next-but-one": the last delay is the cap.
    assert DEFAULT.delay_after(11, retry_after=86_400, rand=lambda: 0.0) == 43200


def test_short_retry_after_does_not_shorten_the_schedule():
    assert DEFAULT.delay_after(3, retry_after=1, rand=lambda: 0.0) == 120


def test_parse_retry_after_seconds_and_http_date():
    assert parse_retry_after("120", now=NOW) == 120
    assert (
        parse_retry_after(format_datetime(NOW + timedelta(seconds=90), usegmt=True), now=NOW) == 90
    )


def test_parse_retry_after_in_the_past_is_zero():
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), now=NOW) == 0


def test_parse_retry_after_ignores_junk():
    for junk in (None, "", "soon", "-5", "1.5e3"):
        assert parse_retry_after(junk, now=NOW) is None
