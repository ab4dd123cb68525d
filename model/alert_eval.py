"""Offline alert evaluation: Online Retail, hour by hour, through the worker's detector code.

1. Real order lines of the ``top_n`` SKUs become hourly (units, order lines) arrays; SKUs alternate
   by rank between a calibration half and a test half.
2. **Calibration** on the calibration half's normal days (no injection): every SKU is scored at
   the end of every hour with the trained model's forecasts; each threshold is the smallest cut
   whose full replay (alert lifecycle included) opens at most half the ``false_alarm_rate`` budget
   of alerts per SKU-day (:func:`model.thresholds.search_threshold`).
3. **Evaluation** on the test half over the same weeks, ``draws`` times: synthetic surges and drops
   injected (:mod:`model.alert_inject`), forecasts re-made from the injected history (as the
   worker would), scores from :func:`model.detector.score`, alerts from :func:`model.surge.step`
   — the worker's functions.
4. An opened alert matches an event of the same SKU and kind when it opens between the event's
   start and 24 hours after its end (:mod:`model.alert_report`). Reported, pooled over the draws
   and per draw: recall (events with a match), precision (opened alerts with a match), median
   detection delay (event-time hours from the event's start to the end of the hour the alert
   opened in), false alarms per 1,000 *untouched* SKU-days (SKU-days not within an event or the
   days after it that a window still reaches: ``span_days + 1``, the longer of the surge and the
   drop window), and the ceiling of recall at the budget (:mod:`model.alert_oracle`).

The model ``skucast train`` serves trains on days up to mid-October 2011 and keeps the weeks after
for early stopping and its interval calibration; the evaluated weeks (1 October to 9 December
2011) lie mostly in those, so the forecasts are not fitted to them, though the model was chosen on
them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from model.alert_inject import (
    InjectionPlan,
    Lines,
    inject,
    orders_per_trading_day,
    plan_events,
)
from model.alert_oracle import ceiling, poisson_tail
from model.alert_report import Draw, summarise
from model.detector import (
    DetectorInputs,
    breaches,
    calm,
    orders_per_unit,
    past_daily_orders,
    quantile_mean,
    scan_hours,
    score,
    severity,
)
from model.features import day_index, index_to_date
from model.nowcast import ProfileLearner, market_level, share_seen
from model.surge import AlertState, Moment, step
from model.thresholds import Thresholds, search_threshold

Log = Callable[[str], None]


@dataclass(frozen=True)
class EvalConfig:
    data_path: Path
    model_dir: Path
    top_n: int = 500
    eval_from: date = date(2011, 10, 1)
    eval_to: date = date(2011, 12, 9)
    plan: InjectionPlan = field(default_factory=InjectionPlan)
    oracle_p: float = 1e-4
    """An event counts as *detectable* when an oracle that knows the SKU's normal rate would find
    its hours' order count this unlikely (Poisson tail)."""
    seed: int = 0
    draws: int = 1
    """Independent injections (seeds ``seed .. seed + draws - 1``) into the same SKUs, each replayed
    on its own and pooled in the report: a few hundred events is a noisy sample of each measure."""
    false_alarm_rate: float = 0.001
    detector: Thresholds = field(default_factory=Thresholds)
    """The detector's shape (windows, margin, gates, settle days), as the worker runs it; its
    surge and drop thresholds are what the evaluation calibrates."""
    cooldown_hours: float = 6.0
    match_grace_hours: int = 24
    christmas_ramp_from: date = date(2011, 11, 7)
    """Events from this day on count as "inside the Christmas ramp" in the report."""
    tz: str = "Europe/London"
    device: str = "cpu"
    forecast: str = "model"
    """What the detector compares with: ``model`` (the trained LSTM, as the worker runs) or
    ``seasonal-mean`` (:class:`SeasonalMean`, the ablation: no model, no festival awareness)."""


@dataclass
class Panel:
    skus: list[str]
    first_day: int
    lines: Lines
    trading: np.ndarray
    """(T,) bool: the shop sold anything that day."""
    units: np.ndarray
    """(n, T, 24) float32."""
    orders: np.ndarray

    @property
    def daily_units(self) -> np.ndarray:
        return self.units.sum(axis=2)

    @property
    def daily_orders(self) -> np.ndarray:
        return self.orders.sum(axis=2)


def load_panel(data_path: Path, top_n: int, tz: str) -> Panel:
    from model.data import clean, load_raw, rank_skus, to_order_lines
    from streams.buckets import local_day_hour

    raw = clean(load_raw(data_path))
    skus = rank_skus(raw)[:top_n]
    all_lines = to_order_lines(raw)
    days, hours = local_day_hour(all_lines["event_time"].map(lambda t: t.timestamp()).to_numpy(), tz)
    first_day, n_days = int(days.min()), int(days.max() - days.min()) + 1
    trading = np.zeros(n_days, dtype=bool)
    trading[days - first_day] = True
    row_of = {s: i for i, s in enumerate(skus)}
    rows = all_lines["sku"].map(row_of)
    keep = rows.notna().to_numpy()
    lines = Lines(rows.to_numpy()[keep].astype(np.int64), days[keep], hours[keep] % 24,
                  all_lines["quantity"].to_numpy()[keep].astype(np.int64))
    return with_lines(Panel(skus, first_day, lines, trading, np.zeros(0), np.zeros(0)), lines)


def with_lines(panel: Panel, lines: Lines) -> Panel:
    n, t = len(panel.skus), panel.trading.shape[0]
    units = np.zeros((n, t, 24), dtype=np.float32)
    orders = np.zeros((n, t, 24), dtype=np.float32)
    np.add.at(units, (lines.sku, lines.day - panel.first_day, lines.hour), lines.quantity)
    np.add.at(orders, (lines.sku, lines.day - panel.first_day, lines.hour), 1.0)
    return Panel(panel.skus, panel.first_day, lines, panel.trading, units, orders)


def forecast_table(forecaster: Any, daily_units: np.ndarray, first_day: int, origins: range) -> np.ndarray:
    """(n, len(origins), H, Q): the forecast made at each origin day from history up to it."""
    spec = getattr(forecaster, "spec", None)
    width = forecaster.lookback + (getattr(spec, "season_lag", None) or 0)
    n = daily_units.shape[0]
    padded = np.concatenate([np.zeros((n, width), np.float32), daily_units], axis=1)
    ends = np.asarray([o - first_day for o in origins]) + width  # column after the origin day
    cols = ends[:, None] + np.arange(-width + 1, 1)[None, :]
    history = padded[:, cols].reshape(n * len(origins), width)
    end_day = np.tile(np.asarray(list(origins), dtype=np.int64), n)
    values = forecaster.predict(history, end_day)
    return values.reshape(n, len(origins), *values.shape[1:])


class SeasonalMean:
    """The ablation's forecast: each day's demand is the mean of the same weekday over the last
    ``weeks`` weeks, every quantile the same. It knows the weekly cycle (the shop shuts on
    Saturdays) but no festival, no trend and no uncertainty: what the detector would have without
    the model."""

    def __init__(self, quantiles: tuple[float, ...], weeks: int = 4, horizon: int = 7) -> None:
        self.quantiles, self.weeks, self.horizon = quantiles, weeks, horizon
        self.lookback = 7 * weeks
        self.version = f"seasonal-mean-{weeks}w"

    def predict(self, history: np.ndarray, end_day: np.ndarray) -> np.ndarray:
        """(n, horizon, Q) from ``history`` (n, lookback or more) daily units ending at ``end_day``."""
        width = history.shape[1]
        out = np.zeros((history.shape[0], self.horizon, len(self.quantiles)), dtype=np.float32)
        for h in range(self.horizon):  # day end + 1 + h; the same weekday k weeks before it
            cols = [width - 1 - (7 * k - 1 - h) for k in range(1, self.weeks + 1)]
            out[:, h, :] = history[:, cols].mean(axis=1, keepdims=True)
        return out


@dataclass
class ReplayResult:
    daily_max_surge: np.ndarray
    daily_max_drop: np.ndarray
    alerts: list[dict[str, Any]]


def forecasts_for(panel: Panel, forecaster: Any, days: range, window_days: int, log: Log | None = None) -> np.ndarray:
    """The forecast table :func:`replay` needs for ``days``: origins ``days.start - W .. days.stop - 2``."""
    started = time.perf_counter()
    origins = range(days.start - window_days, days.stop - 1)
    table = forecast_table(forecaster, panel.daily_units, panel.first_day, origins)
    if log:
        log(f"forecasts for {len(panel.skus)} SKUs x {len(origins)} origins in {time.perf_counter() - started:.1f}s")
    return table


def replay(panel: Panel, table: np.ndarray, quantiles: tuple[float, ...], lookback: int, th: Thresholds, days: range,
           cooldown_hours: float, lifecycle: bool = True) -> ReplayResult:
    """Score every SKU at the end of every hour of ``days``; run the alert lifecycle if asked.

    ``table`` comes from :func:`forecasts_for` with ``th.span_days`` (the longer of the surge and
    the drop window: the detector reads that many days and the forecasts made before each).
    """
    n, w = len(panel.skus), th.span_days
    q = quantiles
    learner = ProfileLearner()
    daily_u, daily_o = panel.daily_units, panel.daily_orders
    breach_day = {k: np.full(n, -(10**9), dtype=np.int64) for k in ("surge", "drop")}
    states: dict[tuple[int, str], AlertState] = {}
    alerts: list[dict[str, Any]] = []
    max_s = np.full((n, len(days)), -np.inf)
    max_d = np.full((n, len(days)), -np.inf)
    skus = np.arange(n)
    first_sale = np.full(n, 10**9, dtype=np.int64)
    spans = scan_hours(th.recent_hours)
    np.minimum.at(first_sale, panel.lines.sku, panel.lines.day)
    for di, d in enumerate(days):
        col = d - panel.first_day
        prev = panel.orders[:, col - 1].sum(axis=0)  # yesterday's lines teach the hour profile
        learner.observe([None] * 24, np.full(24, d - 1), np.arange(24), prev)
        shares, rows = learner.shares(), learner.rows_for([None] * n)
        history = slice(max(col - lookback, 0), col)
        opu = orders_per_unit(daily_o[:, history], daily_u[:, history])
        today_fc = table[:, di + w - 1, 0]
        window_fc = table[:, di, :w]
        # Per trailing k days, the forecast made the day before them (origin d - k).
        windows = np.zeros((n, w, *window_fc.shape[1:]), dtype=window_fc.dtype)
        for k in range(1, w + 1):
            windows[:, k - 1, w - k :] = table[:, di + w - k, :k]
        past_orders = past_daily_orders(daily_o[:, : col + 1], th)
        cum_u, cum_o = np.cumsum(panel.units[:, col], axis=1), np.cumsum(panel.orders[:, col], axis=1)
        win_days = np.arange(d - w + 1, d + 1)
        for h in range(24):
            units = np.concatenate([daily_u[:, col - w + 1 : col], cum_u[:, h : h + 1]], axis=1)
            orders = np.concatenate([daily_o[:, col - w + 1 : col], cum_o[:, h : h + 1]], axis=1)
            inc = {k: (win_days[None, :] > breach_day[k][:, None]) | (win_days[None, :] == d) for k in breach_day}
            share = share_seen(shares, rows, np.full(n, d), np.full(n, h), np.ones(n))
            # The shop-wide level per window day: the other SKUs' order lines vs their expectation.
            expected = quantile_mean(window_fc, q) * opu[:, None]
            expected[:, -1] = quantile_mean(today_fc, q) * opu * share
            level = market_level(orders.sum(axis=0) - orders, expected.sum(axis=0) - expected)  # leave-one-out
            recent = {}
            if spans:  # today's trailing hours, one column per window (never before midnight)
                firsts = [max(h - span + 1, 0) for span in spans]
                before = np.stack([share_seen(shares, rows, np.full(n, d), np.full(n, f), np.zeros(n)) for f in firsts],
                                  axis=1)
                recent = {"recent_units": np.stack([cum_u[:, h] - (cum_u[:, f - 1] if f else 0) for f in firsts], 1),
                          "recent_orders": np.stack([cum_o[:, h] - (cum_o[:, f - 1] if f else 0) for f in firsts], 1),
                          "recent_share": share[:, None] - before}
            s = score(DetectorInputs(q, today_fc, window_fc, units, orders, inc["surge"], inc["drop"], opu, share,
                                     **recent, history_days=d - first_sale, windows=windows, level=level,
                                     past_orders=past_orders,
                                     since_surge=d - breach_day["surge"], since_drop=d - breach_day["drop"]), th)
            max_s[:, di] = np.maximum(max_s[:, di], s.surge)
            max_d[:, di] = np.maximum(max_d[:, di], s.drop)
            if lifecycle:
                _lifecycle(s, th, d, d * 24 + h, skus, states, breach_day, alerts, cooldown_hours)
    return ReplayResult(max_s, max_d, alerts)


def _lifecycle(s: Any, th: Thresholds, day: int, hour: int, skus: np.ndarray, states: dict[tuple[int, str], AlertState],
               breach_day: dict[str, np.ndarray], alerts: list[dict[str, Any]], cooldown_hours: float) -> None:
    b_s, b_d = breaches(s, th)
    c_s, c_d = calm(s, th)
    for kind, breach, quiet, ratio in (("surge", b_s, c_s, s.surge_ratio), ("drop", b_d, c_d, s.drop_ratio)):
        open_rows = [i for (i, k), st in states.items() if k == kind and st.is_open]
        for i in sorted(set(np.flatnonzero(breach).tolist()) | set(open_rows)):
            m = Moment(str(i), kind, day, hour, bool(breach[i]), bool(quiet[i]), severity(float(ratio[i]), th))  # type: ignore[arg-type]
            nxt, transition = step(states.get((i, kind)), m, cooldown_hours)
            if nxt is not None:
                states[(i, kind)] = nxt
                breach_day[kind][i] = nxt.breach_day
            if transition is not None:
                alerts.append({"sku": int(skus[i]), "kind": kind, "state": transition, "hour": hour,
                               "severity": m.severity})


def calibrate_on_backtest(panel: Panel, table: np.ndarray, quantiles: tuple[float, ...], lookback: int,
                          base: Thresholds, days: range, cfg: EvalConfig, log: Log | None = None) -> Thresholds:
    """Thresholds for which the normal ``days`` raise at most ``false_alarm_rate`` alerts per SKU-day.

    Half the budget each for surges and drops; each found by bisection over full replays with the
    alert lifecycle (so one long anomaly counts once, as it would live).
    """
    sku_days = len(panel.skus) * len(days)
    budget = cfg.false_alarm_rate / 2.0 * sku_days
    off = 1e9

    def count(kind: str, t: float) -> int:
        th = replace(base, surge=t if kind == "surge" else off, drop=t if kind == "drop" else off)
        r = replay(panel, table, quantiles, lookback, th, days, cfg.cooldown_hours)
        return sum(1 for a in r.alerts if a["state"] == "opened" and a["kind"] == kind)

    surge = search_threshold(lambda t: count("surge", t), budget)
    drop = search_threshold(lambda t: count("drop", t), budget)
    note = {"from": index_to_date(days.start).isoformat(), "to": index_to_date(days.stop - 1).isoformat(),
            "sku_days": sku_days, "skus": len(panel.skus), "false_alarm_rate": cfg.false_alarm_rate}
    if log:
        log(f"calibrated on {sku_days} normal SKU-days: surge > {surge}, drop > {drop}")
    return replace(base, surge=surge, drop=drop, false_alarm_rate=cfg.false_alarm_rate, calibration=note)


def subset(panel: Panel, rows: list[int]) -> Panel:
    """The panel of some SKUs only (rows renumbered in the given order)."""
    new_row = np.full(len(panel.skus), -1, dtype=np.int64)
    new_row[rows] = np.arange(len(rows))
    keep = new_row[panel.lines.sku] >= 0
    lines = panel.lines.select(keep)
    lines = Lines(new_row[lines.sku], lines.day, lines.hour, lines.quantity)
    return Panel([panel.skus[r] for r in rows], panel.first_day, lines, panel.trading,
                 panel.units[rows], panel.orders[rows])


def evaluate(cfg: EvalConfig, log: Log | None = None) -> dict[str, Any]:
    """Calibrate on half the SKUs, inject into and evaluate on the other half, same weeks.

    SKUs alternate by rank (0, 2, 4, .. calibrate; 1, 3, 5, .. evaluate), so both halves hold
    best-sellers and slow movers alike.
    """
    from model.predictor import Forecaster

    started = time.perf_counter()
    forecaster: Any = Forecaster.from_dir(cfg.model_dir, device=cfg.device)
    q = tuple(forecaster.quantiles)
    if cfg.forecast == "seasonal-mean":
        forecaster = SeasonalMean(q)
    elif cfg.forecast != "model":
        raise ValueError(f"unknown forecast {cfg.forecast!r}: model or seasonal-mean")
    lookback = int(forecaster.lookback)
    panel = load_panel(cfg.data_path, cfg.top_n, cfg.tz)
    days = range(day_index(cfg.eval_from), day_index(cfg.eval_to) + 1)
    half_a = subset(panel, list(range(0, len(panel.skus), 2)))
    half_b = subset(panel, list(range(1, len(panel.skus), 2)))

    w = cfg.detector.span_days
    th = calibrate_on_backtest(half_a, forecasts_for(half_a, forecaster, days, w, log), q, lookback,
                               cfg.detector, days, cfg, log)
    th = replace(th, calibration={**th.calibration, "model": forecaster.version})

    trading = half_b.trading
    rate = orders_per_trading_day(half_b.lines, len(half_b.skus), half_b.first_day, trading.shape[0], trading)
    draws = []
    for seed in range(cfg.seed, cfg.seed + max(cfg.draws, 1)):
        rng = np.random.default_rng(seed)
        events = plan_events(cfg.plan, rate, half_b.first_day, (days.start, days.stop), trading, rng)
        injected = inject(half_b.lines, events, rate, half_b.first_day, trading, rng)
        panel_b = with_lines(half_b, injected.lines)
        result = replay(panel_b, forecasts_for(panel_b, forecaster, days, w, log), q, lookback, th, days,
                        cfg.cooldown_hours)
        detectable = [poisson_tail(o, e, upper=ev.kind == "surge") < cfg.oracle_p
                      for ev, o, e in zip(events, injected.event_orders, injected.normal_orders, strict=True)]
        best = ceiling(events, injected.normal_by_hour, cfg.false_alarm_rate, cfg.match_grace_hours)
        draws.append(Draw(seed, events, detectable, best, result))
    report = summarise(draws, th, days, cfg, len(half_b.skus))
    report["thresholds"] = asdict(th)
    report["model_version"] = forecaster.version
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report
