"""Alert lifecycle of a batch: state in Redis, rules from :mod:`model.surge`, events on ``alerts``.

Per SKU one Redis hash, in the SKU's hash slot (``<prefix>:{<sku>}:a``): field ``surge`` and
``drop`` hold the current (or last) alert of that kind as JSON, field ``stock`` an optional stock
level in units (set it with :func:`set_stock` or ``HSET``; it turns on the projected shortfall).
A restarted worker therefore neither re-opens an open alert nor forgets one it must resolve.

Per batch: one ``HMGET`` for every SKU scored, in a few Lua calls (:meth:`AlertTracker.load`,
:func:`streams.redis_scripts.hmget_many`), and one pipelined ``HSET`` for the SKUs whose state
changed (:meth:`AlertTracker.save`), which the pipeline calls only after the batch's alerts are
delivered: an alert is never lost, at worst re-sent with the same id after a crash. The next
batch is scored while the previous one is still being delivered, so until its states are saved
the tracker lays them over what Redis returns.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from model.detector import Scores, breaches, calm, severity
from model.surge import AlertState, Kind, Moment, projected_shortfall, step
from model.thresholds import Thresholds, load_thresholds
from streams.buckets import day_to_date
from streams.contracts import AlertEvent
from streams.redis_scripts import hmget_many, sku_tag
from worker.settings import Settings

KINDS: tuple[Kind, Kind] = ("surge", "drop")
log = logging.getLogger("skucast.alerts")


def thresholds_for(settings: Settings, model_dir: str | Path | None = None, version: str | None = None) -> Thresholds:
    """Thresholds from the settings, overridden by the model's calibrated file when there is one.

    The calibrated values are those that set the false-alarm rate (thresholds and the gates they
    were calibrated with); the lifecycle (resolve, cooldown, severity) stays the operator's.
    """
    th = Thresholds(
        surge=settings.alert_surge_z,
        drop=settings.alert_drop_z,
        resolve=settings.alert_resolve_z,
        resolve_share=settings.alert_resolve_share,
        window_days=settings.alert_window_days,
        drop_window_days=settings.alert_drop_window_days,
        past_days=settings.alert_past_days,
        recent_hours=settings.alert_recent_hours,
        margin=settings.alert_margin,
        settle_days=settings.alert_settle_days,
        min_units=settings.alert_min_units,
        min_expected_orders=settings.alert_min_expected_orders,
        min_history_days=settings.alert_min_history_days,
        warning_ratio=settings.alert_surge_factor,
        critical_ratio=max(settings.alert_critical_factor, settings.alert_surge_factor),
        false_alarm_rate=settings.alert_false_alarm_rate,
    )
    if model_dir is None or not version:
        return th
    calibrated = load_thresholds(model_dir, version)
    if calibrated is None:
        log.warning("alert thresholds of model %s are not calibrated (no %s.alerts.json in %s): using the settings' "
                    "surge z > %s, drop z > %s; calibrate them with: skucast evaluate-alerts --model-dir %s",
                    version, version, model_dir, th.surge, th.drop, model_dir)
        return th
    log.info("alert thresholds of model %s, calibrated to %s alerts per normal SKU-day: surge z > %s, drop z > %s",
             version, calibrated.false_alarm_rate, calibrated.surge, calibrated.drop)
    keep = ("surge", "drop", "window_days", "drop_window_days", "past_days", "recent_hours", "margin",
            "settle_days", "min_units", "min_expected_orders", "min_history_days", "false_alarm_rate", "calibration")
    return replace(th, **{k: getattr(calibrated, k) for k in keep})


@dataclass
class SkuAlerts:
    """What Redis holds for one SKU."""

    states: dict[str, AlertState] = field(default_factory=dict)
    stock: float | None = None


class AlertStates(Protocol):
    async def load(self, skus: Sequence[str]) -> list[SkuAlerts]: ...

    async def save(self, changes: Sequence[tuple[str, str, AlertState]]) -> None: ...


def _decode_state(raw: Any) -> AlertState | None:
    if raw is None:
        return None
    try:
        return AlertState(**json.loads(raw))
    except (ValueError, TypeError):
        return None  # unreadable state: treat as none rather than stop the worker


class RedisAlertStates:
    """:class:`AlertStates` on Redis or Redis Cluster (keys hash-tagged by SKU)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def key(self, sku: str) -> str:
        return f"{self._prefix}:{{{sku_tag(sku)}}}:a"

    async def load(self, skus: Sequence[str]) -> list[SkuAlerts]:
        if not skus:
            return []
        out = []
        rows = await hmget_many(self._client, skus, [self.key(sku) for sku in skus], ["surge", "drop", "stock"])
        for surge, drop, stock in rows:
            states = {k: s for k, s in (("surge", _decode_state(surge)), ("drop", _decode_state(drop))) if s}
            out.append(SkuAlerts(states, float(stock) if stock is not None else None))
        return out

    async def save(self, changes: Sequence[tuple[str, str, AlertState]]) -> None:
        if not changes:
            return
        pipe = self._client.pipeline(transaction=False)
        for sku, kind, state in changes:
            pipe.hset(self.key(sku), kind, json.dumps(asdict(state)))
        await pipe.execute()


async def set_stock(client: Any, prefix: str, sku: str, units: float | None) -> None:
    """Record (or with ``None`` forget) the stock level of a SKU, for the projected shortfall."""
    states = RedisAlertStates(client, prefix)
    if units is None:
        await client.hdel(states.key(sku), "stock")
    else:
        await client.hset(states.key(sku), "stock", repr(float(units)))


class MemoryAlertStates:
    """:class:`AlertStates` in a dict: one process, no restart (offline runs, single-node tools)."""

    def __init__(self) -> None:
        self.data: dict[str, SkuAlerts] = {}

    async def load(self, skus: Sequence[str]) -> list[SkuAlerts]:
        return [SkuAlerts(dict(self.data[s].states), self.data[s].stock) if s in self.data else SkuAlerts()
                for s in skus]

    async def save(self, changes: Sequence[tuple[str, str, AlertState]]) -> None:
        for sku, kind, state in changes:
            self.data.setdefault(sku, SkuAlerts()).states[kind] = state


@dataclass
class Context:
    """Per scored row, what an alert event says besides the scores."""

    skus: list[str]
    day: np.ndarray
    """(n,) local day index of the moment."""
    hour: np.ndarray
    """(n,) local hour index of the moment."""
    event_ts: np.ndarray
    """(n,) epoch seconds of the moment (event time)."""
    festival: Callable[[int], str | None]
    """Active festival of a local day index (called only for rows that raise an event)."""
    remaining_today: np.ndarray
    """(n,) expected units still to come today (median)."""
    next_days: np.ndarray
    """(n,) expected units over the rest of the horizon (median)."""
    eligible: np.ndarray
    """(n,) bool: rows whose forecast is good enough to alert on (not a cold-start fallback)."""


class AlertTracker:
    """Turns a batch's scores into lifecycle events, with state kept in :class:`AlertStates`."""

    def __init__(self, states: AlertStates, thresholds: Thresholds, cooldown_hours: float) -> None:
        self.states = states
        self.thresholds = thresholds
        self.cooldown_hours = cooldown_hours
        self._pending: list[tuple[str, str, AlertState]] = []
        # Decided but not yet saved (their batch is being delivered): newer than what Redis holds.
        self._unsaved: dict[tuple[str, str], AlertState] = {}

    async def load(self, skus: Sequence[str]) -> list[SkuAlerts]:
        # Taken before the read: a state that leaves it while the read is out was saved before
        # the read was sent, so the read sees it.
        unsaved = dict(self._unsaved)
        known = await self.states.load(skus)
        if unsaved:
            for sku, alerts in zip(skus, known, strict=True):
                for kind in KINDS:
                    state = unsaved.get((sku, kind))
                    if state is not None:
                        alerts.states[kind] = state
        return known

    def decide(self, scores: Scores, ctx: Context, known: Sequence[SkuAlerts], model_version: str,
               now: datetime, thresholds: Thresholds | None = None) -> list[AlertEvent]:
        """The batch's alert events (``thresholds``: those the scores were made with; default: the
        tracker's); the state changes wait for :meth:`take_pending` and :meth:`save`."""
        th = thresholds or self.thresholds
        b_surge, b_drop = breaches(scores, th)
        c_surge, c_drop = calm(scores, th)
        per_kind = {"surge": (b_surge & ctx.eligible, c_surge, scores.surge, scores.surge_ratio),
                    "drop": (b_drop & ctx.eligible, c_drop, scores.drop, scores.drop_ratio)}
        events: list[AlertEvent] = []
        for kind, (breach, quiet, value, ratio) in per_kind.items():
            rows = [i for i in range(len(ctx.skus)) if breach[i] or kind in known[i].states]
            for i in rows:
                before = known[i].states.get(kind)
                m = Moment(ctx.skus[i], kind, int(ctx.day[i]), int(ctx.hour[i]),  # type: ignore[arg-type]
                           bool(breach[i]), bool(quiet[i]), severity(float(ratio[i]), th))
                state, transition = step(before, m, self.cooldown_hours)
                if state is not None and state != before:
                    known[i].states[kind] = state
                    self._pending.append((ctx.skus[i], kind, state))
                    self._unsaved[(ctx.skus[i], kind)] = state
                if transition is not None and state is not None:
                    events.append(self._event(transition, kind, state, i, scores, value, ratio, ctx, known[i],
                                              model_version, now))
        return events

    def take_pending(self) -> list[tuple[str, str, AlertState]]:
        """The state changes decided since the last call, for :meth:`save` once their events are out."""
        pending, self._pending = self._pending, []
        return pending

    async def save(self, changes: Sequence[tuple[str, str, AlertState]]) -> None:
        """Persist state changes (after their events are delivered)."""
        await self.states.save(changes)
        for sku, kind, state in changes:
            if self._unsaved.get((sku, kind)) is state:  # not since replaced by a later batch's
                del self._unsaved[(sku, kind)]

    @staticmethod
    def _event(transition: str, kind: str, state: AlertState, i: int, s: Scores, value: np.ndarray,
               ratio: np.ndarray, ctx: Context, known: SkuAlerts, model_version: str, now: datetime) -> AlertEvent:
        shortfall = None
        if known.stock is not None and kind == "surge":
            shortfall = round(projected_shortfall(known.stock, float(ctx.remaining_today[i]),
                                                  float(ctx.next_days[i]), float(ratio[i])), 3)
        score = float(value[i]) if np.isfinite(value[i]) else 0.0
        return AlertEvent(
            alert_id=state.alert_id,
            sku=ctx.skus[i],
            state=transition,  # type: ignore[arg-type]
            kind=kind,  # type: ignore[arg-type]
            severity=state.severity,  # type: ignore[arg-type]
            day=day_to_date(int(ctx.day[i])),
            event_time=datetime.fromtimestamp(float(ctx.event_ts[i]), UTC),
            observed=round(float(s.observed_units[i]), 3),
            expected=round(float(s.expected_units[i]), 3),
            lower=round(float(s.lower[i]), 3),
            upper=round(float(s.upper[i]), 3),
            score=round(score, 3),
            festival=ctx.festival(int(ctx.day[i])),
            model_version=model_version,
            made_at=now,
            projected_shortfall=shortfall,
        )
