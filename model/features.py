"""Model inputs, pure numpy and batch-first.

Days are integer indices since 1970-01-01 (``date.toordinal() - 719163``); every calendar
feature is known ahead, so a forecast for day ``d`` uses the features of ``d`` itself
(horizon step k sees step k's holidays, never step 1's).

Scaling: each row's ``scale`` is the mean daily units of its history window, floored at 1 unit/day
(``max(mean, 1)``) so a quiet or brand-new SKU is not blown up by a tiny divisor. The model sees
``history / scale`` and ``log1p(mean)`` (the SKU's level) as a static input, and predicts in
scaled units; multiply by ``scale`` to get units.

A :class:`FeatureSpec` says which covariates a model uses: the base :data:`CALENDAR_FEATURES`,
the festival features of a market (:mod:`model.festivals`) and user campaigns, and optionally the
*same season last year* (``season_lag`` days back): two extra channels, last year's units on each
past and future day (scaled like the history) and a 0/1 "available" flag, zero when the history
given is shorter than ``lookback + season_lag`` days (the model is trained with such rows too).
The spec's :meth:`FeatureSpec.names` go into the model metadata, so a model and the code that
feeds it can be checked against each other.

Example::

    >>> import numpy as np
    >>> x = make_inputs(np.ones((2, 56), np.float32), np.array([15000, 15001]), horizon=14)
    >>> x["future_calendar"].shape
    (2, 14, 13)
    >>> spec = FeatureSpec(market="UK")
    >>> make_inputs(np.ones((2, 56), np.float32), np.array([15000, 15001]), 14, spec)["future_calendar"].shape
    (2, 14, 33)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import holidays
import numpy as np

from model.festivals import BUILTIN, Festival, campaigns_from_json, campaigns_to_json, feature_names, festival_features

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


SEASON_FEATURES: tuple[str, ...] = ("season_lag_scaled", "season_lag_available")


@dataclass(frozen=True)
class FeatureSpec:
    """Which known-ahead covariates a model sees (see the module docstring)."""

    market: str | None = None
    campaigns: tuple[Festival, ...] = ()
    season_lag: int | None = None

    def __post_init__(self) -> None:
        if self.market is not None and self.market not in BUILTIN:
            raise ValueError(f"unknown market {self.market!r}; built-in markets: {', '.join(sorted(BUILTIN))}")

    @property
    def festivals(self) -> tuple[Festival, ...]:
        return (BUILTIN[self.market] if self.market else ()) + self.campaigns

    def calendar_names(self) -> tuple[str, ...]:
        return CALENDAR_FEATURES + feature_names(self.festivals)

    def names(self) -> tuple[str, ...]:
        return self.calendar_names() + (SEASON_FEATURES if self.season_lag else ())

    def calendar(self, days: np.ndarray) -> np.ndarray:
        """Calendar + festival features of day indices: ``days.shape + (len(calendar_names),)``."""
        base = calendar_features(days)
        if not self.festivals:
            return base
        return np.concatenate([base, festival_features(days, self.festivals)], axis=-1)

    def to_metadata(self, years: Sequence[int]) -> dict[str, Any]:
        """JSON-able form; campaigns are stored as dated entries for ``years``."""
        return {
            "market": self.market,
            "campaigns": campaigns_to_json(self.campaigns, years),
            "season_lag": self.season_lag,
        }

    @classmethod
    def from_metadata(cls, meta: dict[str, Any] | None) -> FeatureSpec:
        if not meta:
            return cls()
        return cls(meta.get("market"), campaigns_from_json(meta.get("campaigns", [])), meta.get("season_lag"))


def add_season_channels(
    long_history: np.ndarray,
    lookback: int,
    horizon: int,
    scale: np.ndarray,
    past_cov: np.ndarray,
    future_cov: np.ndarray,
    season_lag: int,
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Append last year's scaled units and an availability flag to past and future covariates.

    ``long_history`` (n, W) ends on the origin day. Day ``t``'s season value is the units of day
    ``t - season_lag``: for the past days that is columns ``W-L-lag .. W-lag-1``, for horizon steps
    the next H columns (``season_lag >= horizon``, so they are all history). Rows with ``W <
    L + lag``, a silent last year, or ``keep`` False get zeros and flag 0.
    """
    if season_lag < horizon:
        raise ValueError(f"season_lag {season_lag} must be at least the horizon {horizon}")
    n, width = long_history.shape
    segment = np.zeros((n, lookback + horizon), dtype=np.float32)
    if width >= lookback + season_lag:
        lo = width - lookback - season_lag
        segment = long_history[:, lo : lo + lookback + horizon] / scale[:, None]
    available = segment.sum(axis=1) > 0
    if keep is not None:
        available &= keep
    segment = np.where(available[:, None], segment, 0.0).astype(np.float32)
    flag = available.astype(np.float32)
    past = np.concatenate(
        [past_cov, segment[:, :lookback, None], np.broadcast_to(flag[:, None, None], (n, lookback, 1))], axis=-1
    )
    future = np.concatenate(
        [future_cov, segment[:, lookback:, None], np.broadcast_to(flag[:, None, None], (n, horizon, 1))], axis=-1
    )
    return past.astype(np.float32), future.astype(np.float32)


@lru_cache(maxsize=32)
def _calendar_span(spec: FeatureSpec, first: int, stop: int) -> np.ndarray:
    """``spec.calendar`` of days ``first .. stop - 1``, read-only. Cached: the worker's batches of
    a day all ask for the same span, and building it was a quarter of a small model call."""
    span = spec.calendar(np.arange(first, stop))
    span.flags.writeable = False
    return span


def make_inputs(
    history_units: np.ndarray,
    end_day: np.ndarray,
    horizon: int,
    spec: FeatureSpec | None = None,
    lookback: int | None = None,
) -> dict[str, np.ndarray]:
    """Everything the model needs for rows of ``(n, W)`` history ending on ``end_day`` (n,).

    The model window is the last ``lookback`` days (default: all ``W``); with a ``season_lag``
    in ``spec``, rows at least ``lookback + season_lag`` days long also give last year's values.
    Returns float32 arrays: ``history`` (n, L) scaled units, ``past_calendar`` (n, L, F) for the
    history days, ``future_calendar`` (n, H, F) for days ``end_day + 1 .. end_day + H``,
    ``log_scale`` (n,) and ``scale`` (n,).
    """
    spec = spec or FeatureSpec()
    long_history = np.asarray(history_units, dtype=np.float32)
    end_day = np.asarray(end_day, dtype=np.int64).reshape(-1)
    if long_history.ndim != 2 or long_history.shape[0] != end_day.shape[0]:
        raise ValueError(
            f"history must be (n, L) with one end_day per row; got {long_history.shape} and {end_day.shape}"
        )
    n = long_history.shape[0]
    lookback = lookback or long_history.shape[1]
    history_units = long_history[:, -lookback:]
    scale, log_scale = window_scale(history_units)
    # Calendar once over the span of all rows, then gathered: rows share most days.
    first = int(end_day.min()) - lookback + 1 if n else 0
    span = _calendar_span(spec, first, int(end_day.max()) + horizon + 1 if n else 0)
    offsets = end_day - first
    past_idx = offsets[:, None] + np.arange(-lookback + 1, 1)[None, :]
    future_idx = offsets[:, None] + np.arange(1, horizon + 1)[None, :]
    past, future = span[past_idx], span[future_idx]
    if spec.season_lag:
        past, future = add_season_channels(long_history, lookback, horizon, scale, past, future, spec.season_lag)
    return {
        "history": history_units / scale[:, None],
        "past_calendar": past,
        "future_calendar": future,
        "log_scale": log_scale,
        "scale": scale,
    }
