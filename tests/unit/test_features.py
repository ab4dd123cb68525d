"""Calendar features (known ahead, per horizon step) and model inputs."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from model.baselines import seasonal_naive
from model.features import (
    CALENDAR_FEATURES,
    N_CALENDAR,
    calendar_features,
    day_index,
    days_to_christmas,
    index_to_date,
    make_inputs,
)

HOLIDAY = CALENDAR_FEATURES.index("uk_bank_holiday")
XMAS = CALENDAR_FEATURES.index("days_to_christmas_scaled")


def col(name: str) -> int:
    return CALENDAR_FEATURES.index(name)


def test_day_index_round_trip() -> None:
    assert day_index(date(1970, 1, 1)) == 0
    assert index_to_date(day_index(date(2011, 12, 25))) == date(2011, 12, 25)


def test_day_of_week_one_hot() -> None:
    # 2011-12-05 was a Monday.
    days = np.arange(day_index(date(2011, 12, 5)), day_index(date(2011, 12, 5)) + 7)
    dow = calendar_features(days)[:, : col("dow_sun") + 1]
    np.testing.assert_array_equal(dow, np.eye(7, dtype=np.float32))


def test_uk_bank_holidays_including_substitute_days_and_one_offs() -> None:
    flagged = {
        date(2010, 12, 27),  # Christmas Day (observed)
        date(2011, 4, 29),  # royal wedding
        date(2011, 8, 29),  # late summer bank holiday
        date(2011, 12, 26),
    }
    not_flagged = {date(2011, 8, 30), date(2011, 12, 24), date(2011, 7, 12)}  # 12 July: N. Ireland only
    days = np.array([day_index(d) for d in sorted(flagged | not_flagged)])
    flags = calendar_features(days)[:, HOLIDAY]
    expected = [1.0 if d in flagged else 0.0 for d in sorted(flagged | not_flagged)]
    assert flags.tolist() == expected


def test_days_to_christmas_counts_down_and_wraps_after_christmas() -> None:
    days = np.array(
        [day_index(d) for d in (date(2011, 12, 22), date(2011, 12, 25), date(2011, 12, 26), date(2012, 2, 29))]
    )
    assert days_to_christmas(days).tolist() == [3, 0, 365, 300]  # 2012 is a leap year
    scaled = calendar_features(days)[:, XMAS]
    assert scaled[1] == 0.0 and scaled[2] == 1.0 and 0.0 < scaled[0] < 0.05


def test_cyclic_features_are_unit_circles() -> None:
    feats = calendar_features(np.arange(15000, 15400))
    for a, b in (("month_sin", "month_cos"), ("doy_sin", "doy_cos")):
        np.testing.assert_allclose(feats[:, col(a)] ** 2 + feats[:, col(b)] ** 2, 1.0, rtol=1e-5)


def test_calendar_features_keep_any_batch_shape() -> None:
    days = np.arange(15000, 15024).reshape(2, 3, 4)
    assert calendar_features(days).shape == (2, 3, 4, N_CALENDAR)
    np.testing.assert_array_equal(calendar_features(days)[1, 2, 3], calendar_features(np.array([15023]))[0])


def test_each_horizon_step_sees_its_own_day() -> None:
    """Christmas Day is step 3 of a forecast made on Dec 22: only that step carries it."""
    end = date(2011, 12, 22)
    x = make_inputs(np.ones((1, 56), np.float32), np.array([day_index(end)]), horizon=14)
    future = x["future_calendar"][0]
    assert future.shape == (14, N_CALENDAR)
    assert np.flatnonzero(future[:, XMAS] == 0.0).tolist() == [2]  # 0-based step 2 = Dec 25 = "step 3"
    holiday_steps = np.flatnonzero(future[:, HOLIDAY]).tolist()
    # Christmas Sun 25, Boxing Day Mon 26, Christmas observed Tue 27, New Year Sun 1, observed Mon 2.
    assert holiday_steps == [2, 3, 4, 9, 10]
    for k in range(14):
        np.testing.assert_array_equal(
            future[k], calendar_features(np.array([day_index(end + timedelta(days=k + 1))]))[0]
        )


def test_past_calendar_ends_on_end_day_and_rows_are_independent() -> None:
    ends = np.array([day_index(date(2011, 1, 3)), day_index(date(2011, 6, 1))])
    x = make_inputs(np.zeros((2, 56), np.float32), ends, horizon=14)
    assert x["past_calendar"].shape == (2, 56, N_CALENDAR)
    for i, end in enumerate(ends):
        np.testing.assert_array_equal(x["past_calendar"][i, -1], calendar_features(np.array([end]))[0])
        np.testing.assert_array_equal(x["past_calendar"][i, 0], calendar_features(np.array([end - 55]))[0])
    assert x["past_calendar"][0, -1, HOLIDAY] == 1.0  # 3 Jan 2011: New Year observed


def test_scaling_is_window_mean_floored_at_one() -> None:
    history = np.array([[2.0] * 28 + [6.0] * 28, [0.0] * 55 + [14.0], [0.0] * 56], dtype=np.float32)
    x = make_inputs(history, np.array([15000, 15000, 15000]), horizon=7)
    np.testing.assert_allclose(x["scale"], [4.0, 1.0, 1.0])
    np.testing.assert_allclose(x["log_scale"], np.log1p([4.0, 0.25, 0.0]), rtol=1e-6)
    np.testing.assert_allclose(x["history"][0, :2], [0.5, 0.5])
    assert all(v.dtype == np.float32 for v in x.values())


def test_make_inputs_rejects_mismatched_rows() -> None:
    with pytest.raises(ValueError, match="one end_day per row"):
        make_inputs(np.zeros((2, 56), np.float32), np.array([1, 2, 3]), horizon=14)


def test_seasonal_naive_repeats_last_week() -> None:
    history = np.arange(2 * 21, dtype=np.float32).reshape(2, 21)
    out = seasonal_naive(history, horizon=10)
    assert out.shape == (2, 10)
    assert out[0].tolist() == [14, 15, 16, 17, 18, 19, 20, 14, 15, 16]
    with pytest.raises(ValueError):
        seasonal_naive(history[:, :5], horizon=3)


def test_repeated_calls_share_the_calendar_but_never_its_memory() -> None:
    from model.features import FeatureSpec

    spec = FeatureSpec(market="UK")
    ends = np.array([day_index(date(2011, 11, 20)), day_index(date(2011, 11, 25))])
    first = make_inputs(np.ones((2, 56), np.float32), ends, horizon=14, spec=spec)
    first["past_calendar"][:] = -1.0  # a caller scribbling on its inputs
    again = make_inputs(np.ones((2, 56), np.float32), ends, horizon=14, spec=spec)
    for i, end in enumerate(ends):
        days = np.arange(end - 55, end + 15)
        np.testing.assert_array_equal(again["past_calendar"][i], spec.calendar(days[:56]))
        np.testing.assert_array_equal(again["future_calendar"][i], spec.calendar(days[56:]))
