"""Model inputs, pure numpy and batch-first.

Days are integer indices since 1970-01-01 (``date.toordinal() - 719163``); every calendar
feature is known ahead, so a forecast for day ``d`` uses the features of ``d`` itself
(horizon step k sees step k's holidays, never step 1's).

Scaling: each row's ``scale`` is the mean daily units of its history window, floored at 1 unit/day
(``max(mean, 1)``) so a quiet or brand-new SKU is not blown up by a tiny divisor. The model sees
``history / scale`` and ``log1p(mean)`` (the SKU's level) as a static input, and predicts in
scaled units; multiply by ``scale`` to get units.

Example::

    >>> import numpy as np
    >>> x = make_inputs(np.ones((2, 56), np.float32), np.array([15000, 15001]), horizon=14)
    >>> x["future_calendar"].shape
    (2, 14, 13)
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache

import holidays
import numpy as np

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
CHRISTMAS_WINDOW_DAYS = 90.0
"""Days-to-Christmas is clipped here and scaled to [0, 1] (0 = Christmas Day)."""

CALENDAR_FEATURES: tuple[str, ...] = (
    "dow_mon",
    "dow_tue",
    "dow_wed",
    "dow_thu",
    "dow_fri",
    "dow_sat",
    "dow_sun",
    "month_sin",
    "month_cos",
    "doy_sin",
    "doy_cos",
    "uk_bank_holiday",
    "days_to_christmas_scaled",
)
N_CALENDAR = len(CALENDAR_FEATURES)


def day_index(d: date) -> int:
    """Integer day index of a calendar date (days since 1970-01-01)."""
    return d.toordinal() - EPOCH_ORDINAL


def index_to_date(day: int) -> date:
    return date.fromordinal(int(day) + EPOCH_ORDINAL)


@lru_cache(maxsize=64)
def _uk_holidays_of_year(year: int) -> frozenset[int]:
    # England & Wales bank holidays (the shop is in England), incl. substitute days.
    return frozenset(day_index(d) for d in holidays.country_holidays("GB", subdiv="ENG", years=year))


def uk_bank_holiday(days: np.ndarray) -> np.ndarray:
    """1.0 where the day is an England bank holiday, else 0.0 (same shape as ``days``)."""
    years = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    holiday_days = sorted(set().union(*(_uk_holidays_of_year(int(y)) for y in np.unique(years))))
    return np.isin(days, np.asarray(holiday_days, dtype=np.int64)).astype(np.float32)


def days_to_christmas(days: np.ndarray) -> np.ndarray:
    """Days until the next Christmas Day (0 on the day itself, 364 or 365 the day after)."""
    as_dates = days.astype("datetime64[D]")
    year_start = as_dates.astype("datetime64[Y]")
    # Dec 25 built from the month (not a day-of-year offset, which leap years shift).
    christmas = (year_start.astype("datetime64[M]") + 11).astype("datetime64[D]") + 24
    next_year = ((year_start + 1).astype("datetime64[M]") + 11).astype("datetime64[D]") + 24
    target = np.where(as_dates <= christmas, christmas, next_year)
    return (target - as_dates).astype(np.int64)


def calendar_features(days: np.ndarray) -> np.ndarray:
    """Known-ahead calendar features of integer day indices: shape ``days.shape + (F,)``.

    Columns are :data:`CALENDAR_FEATURES`, float32.
    """
    days = np.asarray(days, dtype=np.int64)
    flat = days.reshape(-1)
    as_dates = flat.astype("datetime64[D]")
    dow = (flat + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    month0 = as_dates.astype("datetime64[M]").astype(np.int64) % 12
    doy0 = (as_dates - as_dates.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64)
    out = np.zeros((flat.size, N_CALENDAR), dtype=np.float32)
    out[np.arange(flat.size), dow] = 1.0
    month_angle = 2.0 * np.pi * month0 / 12.0
    doy_angle = 2.0 * np.pi * doy0 / 365.25
    out[:, 7] = np.sin(month_angle)
    out[:, 8] = np.cos(month_angle)
    out[:, 9] = np.sin(doy_angle)
    out[:, 10] = np.cos(doy_angle)
    out[:, 11] = uk_bank_holiday(flat)
    out[:, 12] = np.minimum(days_to_christmas(flat), CHRISTMAS_WINDOW_DAYS) / CHRISTMAS_WINDOW_DAYS
    return out.reshape(*days.shape, N_CALENDAR)


def window_scale(history_units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, log_level)`` per row: ``max(mean, 1)`` and ``log1p(mean)`` of the window."""
    level = history_units.mean(axis=1, dtype=np.float64)
    scale = np.maximum(level, 1.0).astype(np.float32)
    return scale, np.log1p(level).astype(np.float32)


def make_inputs(history_units: np.ndarray, end_day: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    """Everything the model needs for rows of ``(n, L)`` history ending on ``end_day`` (n,).

    Returns float32 arrays: ``history`` (n, L) scaled units, ``past_calendar`` (n, L, F) for the
    history days, ``future_calendar`` (n, H, F) for days ``end_day + 1 .. end_day + H``,
    ``log_scale`` (n,) and ``scale`` (n,).
    """
    history_units = np.asarray(history_units, dtype=np.float32)
    end_day = np.asarray(end_day, dtype=np.int64).reshape(-1)
    if history_units.ndim != 2 or history_units.shape[0] != end_day.shape[0]:
        raise ValueError(
            f"history must be (n, L) with one end_day per row; got {history_units.shape} and {end_day.shape}"
        )
    n, lookback = history_units.shape
    scale, log_scale = window_scale(history_units)
    # Calendar once over the span of all rows, then gathered: rows share most days.
    first = int(end_day.min()) - lookback + 1 if n else 0
    span = calendar_features(np.arange(first, int(end_day.max()) + horizon + 1 if n else 0))
    offsets = end_day - first
    past_idx = offsets[:, None] + np.arange(-lookback + 1, 1)[None, :]
    future_idx = offsets[:, None] + np.arange(1, horizon + 1)[None, :]
    return {
        "history": history_units / scale[:, None],
        "past_calendar": span[past_idx],
        "future_calendar": span[future_idx],
        "log_scale": log_scale,
        "scale": scale,
    }
