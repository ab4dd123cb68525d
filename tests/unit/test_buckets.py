"""streams.buckets: market-local day/hour indices, checked against zoneinfo one event at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.buckets import (
    date_to_day,
    day_start_utc,
    day_to_date,
    hour_to_local,
    local_day_hour,
    local_to_hour,
    utc_offsets,
)

ZONES = [
    "Europe/London",
    "UTC",
    "America/New_York",
    "Asia/Kolkata",  # +05:30
    "Asia/Kathmandu",  # +05:45
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/St_Johns",  # -03:30 with DST
    "Pacific/Apia",  # skipped a whole day in Dec 2011
]


def slow_day_hour(ts: float, tz: str) -> tuple[int, int]:
    local = datetime.fromtimestamp(ts, ZoneInfo(tz))
    day = (local.date() - date(1970, 1, 1)).days
    return day, day * 24 + local.hour


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_london_spring_forward_skips_local_hour_one() -> None:
    ts = np.array([utc("2024-03-31T00:59:59"), utc("2024-03-31T01:00:00"), utc("2024-03-31T01:30:00")])
    day, hour = local_day_hour(ts, "Europe/London")
    base = date_to_day(date(2024, 3, 31))
    assert day.tolist() == [base] * 3
    assert (hour - base * 24).tolist() == [0, 2, 2]


def test_london_fall_back_repeats_local_hour_one() -> None:
    ts = np.array(
        [utc("2024-10-27T00:30:00"), utc("2024-10-27T01:00:00"), utc("2024-10-27T01:59:59"), utc("2024-10-27T02:00:00")]
    )
    day, hour = local_day_hour(ts, "Europe/London")
    base = date_to_day(date(2024, 10, 27))
    assert (hour - base * 24).tolist() == [1, 1, 1, 2]
    assert day.tolist() == [base] * 4


def test_local_midnight_starts_a_new_day() -> None:
    # 23:00 UTC in BST is local midnight of the next day
    day, hour = local_day_hour(np.array([utc("2024-06-04T22:59:59"), utc("2024-06-04T23:00:00")]), "Europe/London")
    assert [day_to_date(int(d)) for d in day] == [date(2024, 6, 4), date(2024, 6, 5)]
    assert (hour % 24).tolist() == [23, 0]


def transitions(tz: str, start_year: int = 1900, end_year: int = 2037) -> list[int]:
    """Every UTC second at which ``tz`` changes offset (daily scan, then bisection)."""
    zone = ZoneInfo(tz)

    def offset(t: int) -> timedelta | None:
        return datetime.fromtimestamp(t, zone).utcoffset()

    found = []
    t = int(datetime(start_year, 1, 1, tzinfo=UTC).timestamp())
    end = int(datetime(end_year, 1, 1, tzinfo=UTC).timestamp())
    while t < end:
        if offset(t) != offset(t + 86_400):
            lo, hi = t, t + 86_400  # offset(lo) != offset(hi): find the first second of the new one
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            found.append(hi)
        t += 86_400
    return found


@pytest.mark.parametrize("tz", [*ZONES, "Africa/Monrovia"])  # Monrovia: -0:44:30 until 1972
def test_matches_zoneinfo_around_every_transition(tz: str) -> None:
    edges = transitions(tz)
    assert edges or tz == "UTC"
    deltas = [-1200.0, -60.0, -1.0, -0.5, 0.0, 0.5, 1.0, 59.0, 60.0, 1200.0]
    ts = np.array([e + d for e in edges for d in deltas] + [0.0])
    day, hour = local_day_hour(ts, tz)
    want = np.array([slow_day_hour(float(np.floor(t)), tz) for t in ts])
    assert np.array_equal(day, want[:, 0]) and np.array_equal(hour, want[:, 1])
    if tz == "Africa/Monrovia":  # a transition off the quarter hour: the per-event fallback path
        assert any(e % 900 for e in edges)


@pytest.mark.parametrize("tz", ["Europe/London", "Australia/Lord_Howe", "Africa/Monrovia"])
def test_a_small_batch_within_minutes_matches_zoneinfo_at_transitions(tz: str) -> None:
    # a worker batch: a few events seconds apart (one 15-minute block, the fast path), including
    # blocks that hold a transition
    for edge in transitions(tz):
        for start in (edge - 900.0, edge - 2.0, edge, edge + 600.0):
            ts = start + np.array([0.0, 0.4, 1.0, 3.5])
            day, hour = local_day_hour(ts, tz)
            want = np.array([slow_day_hour(float(np.floor(t)), tz) for t in ts])
            assert np.array_equal(day, want[:, 0]) and np.array_equal(hour, want[:, 1]), (tz, start)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=-2e9, max_value=4e9, allow_nan=False), min_size=1, max_size=40),
    st.sampled_from(ZONES),
)
def test_matches_zoneinfo_for_any_times(times: list[float], tz: str) -> None:
    day, hour = local_day_hour(np.array(times), tz)
    for t, d, h in zip(times, day, hour, strict=True):
        assert (int(d), int(h)) == slow_day_hour(float(np.floor(t)), tz)
        assert int(h) // 24 == int(d)


def test_accepts_aware_datetimes_and_rejects_naive_ones() -> None:
    moments = [datetime(2024, 3, 31, 1, 30, tzinfo=UTC), datetime(2024, 3, 31, 3, 0, tzinfo=ZoneInfo("Europe/London"))]
    _, hour = local_day_hour(moments, "Europe/London")
    base = date_to_day(date(2024, 3, 31)) * 24
    assert (hour - base).tolist() == [2, 3]
    with pytest.raises(ValueError, match="timezone-aware"):
        local_day_hour([datetime(2024, 1, 1)], "UTC")


def test_empty_and_non_finite_input() -> None:
    day, hour = local_day_hour(np.array([], dtype=np.float64), "Europe/London")
    assert day.shape == hour.shape == (0,)
    with pytest.raises(ValueError, match="finite"):
        utc_offsets(np.array([np.nan]), "UTC")


def test_day_and_hour_index_conversions() -> None:
    assert date_to_day(date(1970, 1, 1)) == 0 and day_to_date(-1) == date(1969, 12, 31)
    for d in (date(2011, 12, 9), date(2024, 2, 29)):
        assert day_to_date(date_to_day(d)) == d
    h = local_to_hour(datetime(2024, 10, 27, 1, 45))
    assert hour_to_local(h) == datetime(2024, 10, 27, 1, 0)
    assert day_start_utc(date_to_day(date(2024, 6, 5)), "Europe/London") == datetime(2024, 6, 4, 23, tzinfo=UTC)
    with pytest.raises(ValueError):
        local_to_hour(datetime(2024, 1, 1, tzinfo=UTC))
