"""Backtest data sets as panels: Online Retail, M5 levels 1-3, Stallion, and a user's long file.

Each loader returns a :class:`BacktestData`: the target panel (n series x T periods), known-ahead
covariates, the test origins (columns of the last history period), and the settings the harness
needs (season length, lookback, horizon, season lag). Nothing here trains or scores.

M5 is read where it lies (``<repo>/../shared/data/m5``), never copied into the project.

Example::

    >>> data = online_retail("data/online_retail.parquet", top_n=50)      # doctest: +SKIP
    >>> data.values.shape, data.origins                                    # doctest: +SKIP
    ((50, 374), [303, 317, 331, 345, 359])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from model.data import clean, daily_demand, load_raw
from model.features import FeatureSpec, day_index
from model.festivals import events_from_dates

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
M5_DIR = SHARED_DATA / "m5"
STALLION_PATH = SHARED_DATA / "stallion" / "stallion.parquet"
M5_SERIES = ("total", "CA", "TX", "WI", "CA_1", "CA_2", "CA_3", "CA_4", "TX_1", "TX_2", "TX_3", "WI_1", "WI_2", "WI_3")
M5_LEVELS = {"L1": M5_SERIES[:1], "L2": M5_SERIES[1:4], "L3": M5_SERIES[4:]}
M5_TRAIN_DAYS = 1941
STALLION_EVENTS = (
    "easter_day", "good_friday", "new_year", "christmas", "labor_day", "independence_day",
    "revolution_day_memorial", "regional_games", "fifa_u_17_world_cup", "football_gold_cup",
    "beer_capital", "music_fest",
)
Freq = Literal["D", "W", "M"]
SEASON = {"D": 7, "W": 52, "M": 12}


@dataclass
class BacktestData:
    name: str
    values: np.ndarray  # (n, T) float32
    series: list[str]
    periods: list[str]  # ISO label of each column
    covariates: np.ndarray  # (1 or n, T_cov >= T, F) float32
    covariate_names: tuple[str, ...]
    origins: list[int]
    horizon: int
    lookback: int
    season: int
    val_periods: int
    season_lag: int | None = None
    notes: dict[str, str] = field(default_factory=dict)


def _daily_calendar(first: date, n_days: int, spec: FeatureSpec) -> np.ndarray:
    days = np.arange(day_index(first), day_index(first) + n_days)
    return spec.calendar(days)


# ---- Online Retail ------------------------------------------------------------------------


def online_retail(path: str | Path, top_n: int = 500, horizon: int = 14, market: str = "UK") -> BacktestData:
    """Top-N SKUs, daily; origins every 14 days from 30 Sep 2011 so the windows cover Oct-9 Dec 2011."""
    skus, start, units = daily_demand(clean(load_raw(path)), top_n=top_n)
    n_days = units.shape[1]
    first_origin = (date(2011, 9, 30) - start).days
    origins = [o for o in range(first_origin, n_days - horizon, horizon) if o + horizon < n_days]
    spec = FeatureSpec(market)
    return BacktestData(
        "online_retail", units, skus, [(start + timedelta(days=d)).isoformat() for d in range(n_days)],
        _daily_calendar(start, n_days + horizon, spec)[None], spec.calendar_names(), origins, horizon,
        lookback=56, season=7, val_periods=42,
        notes={"windows": f"{len(origins)} origins x {horizon} days, {units.shape[0]} SKUs"},
    )


# ---- M5 levels 1-3 -------------------------------------------------------------------------


def m5_frame(m5_dir: Path = M5_DIR) -> tuple[pd.DataFrame, pd.DataFrame]:
    units = pd.read_csv(m5_dir / "m5_L1_L3_daily_units_d1_d1969.csv")
    calendar = pd.read_csv(m5_dir / "calendar.csv")
    return units, calendar


def m5_event_festivals(calendar: pd.DataFrame) -> tuple:  # type: ignore[type-arg]
    """M5's event calendar as festival classes, one per event type (Sporting, Cultural, ...)."""
    out = []
    for kind in ("event_type_1", "event_type_2"):
        rows = calendar.dropna(subset=[kind])
        for event_type, group in rows.groupby(kind):
            out.append((str(event_type).lower(), [date.fromisoformat(d) for d in group["date"]]))
    merged: dict[str, list[date]] = {}
    for klass, dates in out:
        merged.setdefault(f"m5_{klass}", []).extend(dates)
    return tuple(events_from_dates(k, v, lead_in=3, peak_days=1, tail=1) for k, v in sorted(merged.items()))


def m5(m5_dir: Path = M5_DIR, lookback: int = 112, season_lag: int | None = 364) -> BacktestData:
    """The 14 L1-L3 series d_1..d_1969; one origin, d_1941, forecasting d_1942..d_1969 (h=28).

    Covariates: base calendar + US festivals + M5 event classes (shared), and each series' own SNAP
    flag (its state's; the total gets the mean of the three states).
    """
    units, calendar = m5_frame(m5_dir)
    values = units[list(M5_SERIES)].to_numpy(np.float32).T
    first = date.fromisoformat(str(calendar["date"].iloc[0]))
    spec = FeatureSpec("US", m5_event_festivals(calendar))
    shared = _daily_calendar(first, len(calendar), spec)
    snap = calendar[["snap_CA", "snap_TX", "snap_WI"]].to_numpy(np.float32)
    own = {"CA": snap[:, 0], "TX": snap[:, 1], "WI": snap[:, 2]}
    per_series = np.stack([snap.mean(axis=1) if s == "total" else own[s[:2]] for s in M5_SERIES])
    covariates = np.concatenate([np.broadcast_to(shared, (len(M5_SERIES), *shared.shape)), per_series[..., None]], -1)
    return BacktestData(
        "m5", values, list(M5_SERIES), list(calendar["date"].astype(str)), covariates.astype(np.float32),
        (*spec.calendar_names(), "snap_own_state"), [M5_TRAIN_DAYS - 1], 28, lookback, 7, 56, season_lag,
        notes={"windows": "d_1942..d_1969 from d_1..d_1941 (the M5 evaluation phase)"},
    )


# ---- Stallion -------------------------------------------------------------------------------


def stallion(
    path: Path = STALLION_PATH, horizon: int = 6, lookback: int = 12, static: bool = True
) -> BacktestData:
    """350 monthly agency x SKU series 2013-01..2017-12; origin 2017-06, forecasting the last 6 months.

    Known-ahead covariates (as in the pytorch-forecasting tutorial): month one-hot, the 12 event
    flags, discount in percent and the actual/regular price ratio; with ``static``, the SKU
    one-hot and the agency's log population and income as constant channels.
    """
    df = pd.read_parquet(path)
    df["series"] = df["agency"].astype(str) + "/" + df["sku"].astype(str)
    months = sorted(df["date"].unique())
    series = sorted(df["series"].unique())
    df = df.set_index(["series", "date"]).sort_index()
    full = pd.MultiIndex.from_product([series, months], names=["series", "date"])
    df = df.reindex(full)
    n, t = len(series), len(months)
    values = df["volume"].fillna(0).to_numpy(np.float32).reshape(n, t)
    month0 = np.asarray([pd.Timestamp(m).month - 1 for m in months])
    month_onehot = np.broadcast_to(np.eye(12, dtype=np.float32)[month0], (n, t, 12))
    events = df[list(STALLION_EVENTS)].fillna(0).to_numpy(np.float32).reshape(n, t, len(STALLION_EVENTS))
    discount = (df["discount_in_percent"].fillna(0).to_numpy(np.float32) / 100.0).reshape(n, t, 1)
    ratio = (df["price_actual"] / df["price_regular"]).fillna(1.0).to_numpy(np.float32).reshape(n, t, 1)
    covariates = np.concatenate([month_onehot, events, discount, ratio], axis=-1)
    names: tuple[str, ...] = (*(f"month_{m + 1}" for m in range(12)), *STALLION_EVENTS, "discount_share", "price_ratio")
    if static:
        # Static features as constant channels: SKU one-hot (a category embedding's input) and
        # the agency's standardised log population and income.
        skus = sorted({s.split("/")[1] for s in series})
        sku_onehot = np.eye(len(skus), dtype=np.float32)[[skus.index(s.split("/")[1]) for s in series]]
        demo = np.log(df[["avg_population_2017", "avg_yearly_household_income_2017"]].to_numpy(np.float64))
        demo = ((demo - demo.mean(0)) / demo.std(0)).reshape(n, t, 2)[:, :1].astype(np.float32)
        fixed = np.concatenate([sku_onehot, demo[:, 0]], axis=1)
        covariates = np.concatenate([covariates, np.broadcast_to(fixed[:, None], (n, t, fixed.shape[1]))], axis=-1)
        names = (*names, *(f"sku_{s}" for s in skus), "log_population_z", "log_income_z")
    return BacktestData(
        "stallion", values, series, [pd.Timestamp(m).strftime("%Y-%m") for m in months], covariates, names,
        [t - horizon - 1], horizon, lookback, 12, horizon, season_lag=12,
        notes={"windows": "2017-07..2017-12 from 2013-01..2017-06 (pytorch-forecasting tutorial split)"},
    )


# ---- a user's long-format file ------------------------------------------------------------


def _read_table(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path)


def _period_index(stamps: pd.Series, freq: Freq) -> pd.Series:
    if freq == "D":
        return stamps.dt.normalize()
    if freq == "W":
        return stamps.dt.to_period("W-SUN").dt.start_time
    return stamps.dt.to_period("M").dt.start_time


def long_format(
    path: str | Path, id_col: str, time_col: str, target_col: str, freq: Freq = "D", horizon: int = 14,
    n_windows: int = 3, lookback: int | None = None, market: str | None = None,
    covariate_cols: tuple[str, ...] = (),
) -> BacktestData:
    """A user's history: one row per (series, timestamp) with the target; sums within a period.

    Missing periods are zeros (no sales). Test origins: the last ``n_windows`` non-overlapping
    horizons. Covariate columns must be known ahead (promotions planned, prices set).
    """
    path = Path(path)
    df = _read_table(path)
    missing = [c for c in (id_col, time_col, target_col, *covariate_cols) if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {', '.join(missing)}; columns are {', '.join(map(str, df.columns))}")
    df = df.assign(_period=_period_index(pd.to_datetime(df[time_col]), freq), _id=df[id_col].astype(str))
    agg = {target_col: "sum", **{c: "max" for c in covariate_cols}}
    grouped = df.groupby(["_id", "_period"])[list(agg)].agg(agg)
    step = {"D": pd.DateOffset(days=1), "W": pd.DateOffset(weeks=1), "M": pd.DateOffset(months=1)}[freq]
    periods = pd.date_range(grouped.index.get_level_values(1).min(), grouped.index.get_level_values(1).max(), freq=step)
    series = sorted(grouped.index.get_level_values(0).unique())
    full = grouped.reindex(pd.MultiIndex.from_product([series, periods])).fillna(0)
    n, t = len(series), len(periods)
    values = full[target_col].to_numpy(np.float32).reshape(n, t)
    if (values < 0).any():
        raise ValueError(f"{path}: {target_col} has negative values; demand must be non-negative")
    season = SEASON[freq]
    lookback = lookback or {"D": 56, "W": 26, "M": 12}[freq]
    origins = [t - 1 - horizon * k for k in range(n_windows, 0, -1)]
    if origins[0] < lookback + horizon:
        raise ValueError(
            f"{t} periods are too few for {n_windows} test windows of {horizon} after a {lookback} lookback"
        )
    extra = [periods[-1] + step * (k + 1) for k in range(horizon)]
    stamps = pd.DatetimeIndex(list(periods) + extra)
    cal, names = _generic_calendar(stamps, freq, market)
    covariates = np.broadcast_to(cal, (n, *cal.shape))
    if covariate_cols:
        user = full[list(covariate_cols)].to_numpy(np.float32).reshape(n, t, len(covariate_cols))
        # Future covariates beyond the file are unknown here: zeros (the backtest never reads them).
        user = np.concatenate([user, np.zeros((n, horizon, len(covariate_cols)), np.float32)], axis=1)
        covariates = np.concatenate([covariates, user], axis=-1)
        names = (*names, *covariate_cols)
    lag = season if t > lookback + season + 2 * horizon + n_windows * horizon else None
    return BacktestData(
        path.stem, values, series, [p.date().isoformat() for p in periods],
        np.ascontiguousarray(covariates, np.float32),
        names, origins, horizon, lookback, season, val_periods=horizon * 2,
        season_lag=lag if lag and lag >= horizon else None,
        notes={"windows": f"last {n_windows} x {horizon} periods ({freq})"},
    )


def _generic_calendar(stamps: pd.DatetimeIndex, freq: Freq, market: str | None) -> tuple[np.ndarray, tuple[str, ...]]:
    if freq == "D":
        spec = FeatureSpec(market)
        return spec.calendar(np.asarray([day_index(s.date()) for s in stamps])), spec.calendar_names()
    if freq == "M":
        month0 = np.asarray([s.month - 1 for s in stamps])
        return np.eye(12, dtype=np.float32)[month0], tuple(f"month_{m + 1}" for m in range(12))
    # Weekly: week-of-year on the unit circle plus the festival features of the week's last day,
    # so a week containing the peak is flagged.
    week = np.asarray([s.isocalendar()[1] for s in stamps], dtype=np.float64)
    angle = 2 * np.pi * week / 52.18
    cyc = np.stack([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)
    spec = FeatureSpec(market)
    days = np.asarray([day_index((s + pd.Timedelta(days=6)).date()) for s in stamps])
    fest = spec.calendar(days)[:, 13:]  # festival part only; daily base features mean nothing weekly
    return np.concatenate([cyc, fest], axis=1), ("woy_sin", "woy_cos", *spec.calendar_names()[13:])
