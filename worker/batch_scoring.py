"""What a batch scores and how: its rows (the SKUs with orders, then the watched SKUs due a drop
check) and one vectorised pass of nowcast, scores and alert lifecycle over them.

The math is :mod:`model.detector`'s; the per-process context (hour profiles, shop-wide level,
drop watch) is :class:`worker.detection.DetectionContext`; the alert states are
:class:`worker.alerting.AlertTracker`'s. :mod:`worker.pipeline` reads the windows, runs the model
and calls :func:`score_batch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from model.detector import (
    DetectorInputs,
    active_festivals,
    orders_per_unit,
    past_daily_orders,
    quantile_mean,
    score,
)
from model.thresholds import Thresholds
from streams.contracts import AlertEvent
from streams.window_store import DayWindows, HourWindows
from worker.alerting import AlertTracker, Context, SkuAlerts
from worker.detection import DetectionContext, IdleChecks

if TYPE_CHECKING:
    from worker.pipeline import Forecasts


@dataclass
class Batch:
    """The SKUs a batch scores: those with orders, then the watched ones due a drop check."""

    skus: list[str]
    units: np.ndarray
    orders: np.ndarray
    end_day: np.ndarray
    first_seen: np.ndarray
    moment_ts: np.ndarray
    """When each row is scored: its watermark (touched) or its partition's clock (idle)."""
    categories: list[str | None]
    known: np.ndarray
    """Rows the store knows (a SKU without metadata has no history to judge)."""
    recent_units: np.ndarray | None
    """(n, K) units of today's trailing-hour windows (zeros for quiet SKUs); ``None``: not scored."""
    recent_orders: np.ndarray | None
    recent_first_hour: np.ndarray | None
    """(n, K) local hour index each recent window starts at (never before today's midnight)."""

    @classmethod
    def of(cls, touched: DayWindows, quiet: DayWindows | None, idle: IdleChecks, hours: HourWindows | None,
           spans: tuple[int, ...] = ()) -> Batch:
        """``spans``: the trailing-hour windows to sum (:func:`model.detector.scan_hours`); by default
        one window as wide as ``hours``."""
        parts = [touched] + ([quiet] if quiet is not None else [])
        metas = [m for p in parts for m in p.meta]
        moment = [m.watermark_ts if m else 0.0 for m in touched.meta] + list(idle.ts)
        recent: tuple[np.ndarray | None, ...] = (None, None, None)
        if hours is not None:
            k = hours.units.shape[1]
            spans = spans or (k,)
            pad = np.zeros((len(idle.skus), len(spans)))
            index = hours.end_hour[:, None] - k + 1 + np.arange(k)[None, :]
            today = index // 24 == (hours.end_hour // 24)[:, None]  # only today's hours count
            # (n, K): one column per window of the last ``span`` hours (never before midnight).
            within = np.stack([today & (index > hours.end_hour[:, None] - span) for span in spans], axis=1)
            midnight = hours.end_hour // 24 * 24
            first = np.stack([np.maximum(hours.end_hour - span + 1, midnight) for span in spans], axis=1)
            recent = (np.concatenate([(hours.units[:, None, :] * within).sum(axis=2), pad]),
                      np.concatenate([(hours.orders[:, None, :] * within).sum(axis=2), pad]),
                      np.concatenate([first, pad.astype(np.int64)]))
        return cls(
            skus=[s for p in parts for s in p.skus],
            units=np.concatenate([p.units for p in parts]),
            orders=np.concatenate([p.orders for p in parts]),
            end_day=np.concatenate([p.end_day for p in parts]),
            first_seen=np.array([m.first_seen_ts if m else 0.0 for m in metas], dtype=np.float64),
            moment_ts=np.asarray(moment, dtype=np.float64),
            categories=[m.category if m else None for m in metas],
            known=np.array([m is not None for m in metas], dtype=bool),
            recent_units=recent[0],
            recent_orders=recent[1],
            recent_first_hour=recent[2],
        )


def score_batch(batch: Batch, today_fc: np.ndarray, window_fc: np.ndarray, windows: np.ndarray,
                fallbacks: list[str | None], history_days: np.ndarray, known: list[SkuAlerts], model: Forecasts,
                th: Thresholds, tracker: AlertTracker, ctx: DetectionContext, now: datetime) -> list[AlertEvent]:
    """Nowcast, score and run the lifecycle for every row of the batch (vectorised).

    ``today_fc`` (n, H, Q): each row's forecast from today; ``windows`` (n, W, W, Q): per
    trailing k days the forecast made before them, ``window_fc`` the longest of those."""
    q = tuple(model.quantiles)
    n, w = len(batch.skus), th.span_days
    at = ctx.local(batch.moment_ts)
    share = ctx.share(batch.categories, at)
    history = slice(batch.units.shape[1] - 1 - model.lookback, batch.units.shape[1] - 1)
    opu = orders_per_unit(batch.orders[:, history], batch.units[:, history])
    win_days = at.day[:, None] + np.arange(-w + 1, 1)[None, :]
    level = ctx.market.level(batch.skus, win_days, share[:, None], at.day[:, None])
    include = np.ones((n, w), dtype=bool)
    masks, since = {}, {}
    for kind in ("surge", "drop"):  # days an alert of the kind already reported stay out
        breach_day = np.array([k.states[kind].breach_day if kind in k.states else -(10**9) for k in known])
        masks[kind] = include & ((win_days > breach_day[:, None]) | (win_days == at.day[:, None]))
        since[kind] = at.day - breach_day  # settle_days: the forecast still digests that alert
    recent: dict[str, np.ndarray] = {}
    if batch.recent_first_hour is not None and batch.recent_units is not None and batch.recent_orders is not None:
        firsts = batch.recent_first_hour
        start = ctx.share_at_hours(batch.categories, at.day, firsts)
        recent = {"recent_units": batch.recent_units, "recent_orders": batch.recent_orders,
                  "recent_share": np.where(firsts > 0, share[:, None] - start, 0.0)}
    scores = score(DetectorInputs(q, today_fc[:, 0], window_fc, batch.units[:, -w:], batch.orders[:, -w:],
                                  masks["surge"], masks["drop"], opu, share, **recent,
                                  history_days=history_days, windows=windows, level=level,
                                  past_orders=past_daily_orders(batch.orders, th),
                                  since_surge=since["surge"], since_drop=since["drop"]), th)
    expected_orders = quantile_mean(today_fc, q) * opu[:, None]
    ctx.market.update(batch.skus, at.day, expected_orders, batch.orders[:, -1])
    # A drop may be judged over its last days: watch SKUs expecting enough lines over those.
    ctx.watch(batch.skus, expected_orders[:, 0] * th.drop_days >= th.min_expected_orders)
    mid = int(np.argmin(np.abs(np.asarray(q) - 0.5)))
    festivals = tuple(getattr(getattr(model, "spec", None), "festivals", ()) or ())
    context = Context(
        skus=batch.skus, day=at.day, hour=at.hour, event_ts=batch.moment_ts,
        festival=lambda day: active_festivals(np.array([day]), festivals)[0],
        remaining_today=(1.0 - share) * today_fc[:, 0, mid],
        next_days=today_fc[:, 1:, mid].sum(axis=1),
        eligible=np.array([f is None for f in fallbacks]) & batch.known,
    )
    return tracker.decide(scores, context, known, model.version, now, th)
