"""One micro-batch, end to end: decode → window store → batched forecast → alerts → emit.

Independent of Faust: the app feeds it :class:`RawRecord` batches, tests can too. Offsets are
committed by the caller only after :meth:`BatchProcessor.process` returns, i.e. after the Redis
update and after every output's delivery is confirmed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import numpy as np

from model.surge import SurgeRule, is_surge, surge_score
from streams.buckets import day_to_date, local_day_hour
from streams.contracts import ForecastEvent, LateEvent, OrderEvent
from streams.ingest import RawRecord, decode_orders
from streams.window_store import OrderUpdate, WindowStore, updates_from_orders
from worker import metrics
from worker.alerting import AlertTracker, Observation
from worker.emitter import Emitter
from worker.settings import Settings

Clock = Callable[[], datetime]


class Forecasts(Protocol):
    """What the pipeline needs of a model (``model.predictor.Forecaster`` satisfies it)."""

    @property
    def version(self) -> str: ...
    @property
    def horizon(self) -> int: ...
    @property
    def lookback(self) -> int: ...
    @property
    def quantiles(self) -> Sequence[float]: ...

    def predict_with_flags(
        self, history: np.ndarray, end_day: np.ndarray, history_days: np.ndarray
    ) -> tuple[np.ndarray, list[str | None]]: ...


@dataclass
class BatchOutcome:
    consumed: int
    applied: int
    dead: int
    late: int
    forecasts: int
    alerts: int


class BatchProcessor:
    def __init__(
        self,
        settings: Settings,
        store: WindowStore,
        forecaster: Forecasts,
        emitter: Emitter,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self._s = settings
        self._store = store
        self._model = forecaster
        self._emitter = emitter
        self._clock = clock
        self._hash_key = settings.customer_hash_key.get_secret_value().encode()
        self._alerts = AlertTracker(SurgeRule(settings.alert_min_units, settings.alert_surge_factor))
        # One inference thread: the event loop keeps consuming while the model runs.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skucast-infer")

    def set_model(self, forecaster: Forecasts) -> None:
        self._model = forecaster

    async def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        now = self._clock()
        metrics.EVENTS_CONSUMED.inc(len(records))
        metrics.BATCH_SIZE.observe(len(records))
        decoded = decode_orders(
            records,
            hash_key=self._hash_key,
            now=now,
            future_tolerance=timedelta(hours=self._s.future_tolerance_hours),
        )
        orders_by_pos = {(r.partition, r.offset): o for r, o in decoded.orders}
        updates = updates_from_orders(
            [o for _, o in decoded.orders],
            [r.partition for r, _ in decoded.orders],
            [r.offset for r, _ in decoded.orders],
            self._s.market_timezone,
        )
        started = time.perf_counter()
        result = await self._store.apply(updates)
        metrics.REDIS_SECONDS.labels("apply").observe(time.perf_counter() - started)
        late = [
            self._late_event(u, orders_by_pos[(u.partition, u.offset)], wm)
            for u, wm in zip(result.late, result.late_watermark_ts, strict=True)
        ]
        forecasts, alerts = await self._forecast(result.touched, now) if result.touched else ([], [])
        await self._emitter.emit(forecasts, alerts, decoded.dead, late)
        self._count(result.applied, result.fenced, result.duplicates, decoded.dead, late, forecasts, alerts)
        return BatchOutcome(len(records), result.applied, len(decoded.dead), len(late), len(forecasts), len(alerts))

    def _late_event(self, u: OrderUpdate, order: OrderEvent, watermark_ts: float) -> LateEvent:
        return LateEvent(
            reason="beyond_grace_period",
            order=order,
            watermark=datetime.fromtimestamp(watermark_ts, UTC),
            lateness_s=round(watermark_ts - u.event_ts, 3),
            partition=u.partition,
            offset=u.offset,
        )

    async def _forecast(self, skus: list[str], now: datetime) -> tuple[list[ForecastEvent], list]:
        lookback = self._model.lookback
        started = time.perf_counter()
        windows = await self._store.read_days(skus, lookback + 1)
        metrics.REDIS_SECONDS.labels("read").observe(time.perf_counter() - started)
        history = windows.units[:, :lookback]
        today = windows.units[:, lookback]
        first_seen = np.array([m.first_seen_ts if m else 0.0 for m in windows.meta], dtype=np.float64)
        first_day, _ = local_day_hour(first_seen, self._s.market_timezone)
        history_days = np.clip(windows.end_day - first_day, 0, lookback)
        model = self._model
        started = time.perf_counter()
        values, fallbacks = await asyncio.get_running_loop().run_in_executor(
            self._executor, model.predict_with_flags, history, windows.end_day - 1, history_days
        )
        metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
        forecasts: list[ForecastEvent] = []
        observations: list[Observation] = []
        quantiles = list(model.quantiles)
        lo, hi = 0, len(quantiles) - 1
        mid = int(np.argmin(np.abs(np.asarray(quantiles) - 0.5)))
        scores = surge_score(today, values[:, 0, lo], values[:, 0, hi])
        surging = is_surge(today, values[:, 0, hi], self._alerts_rule)
        for i, sku in enumerate(windows.skus):
            meta = windows.meta[i]
            if meta is None:
                continue
            start = day_to_date(int(windows.end_day[i]))
            as_of = datetime.fromtimestamp(meta.watermark_ts, UTC)
            forecasts.append(
                ForecastEvent(
                    sku=sku,
                    made_at=now,
                    as_of=as_of,
                    start_date=start,
                    horizon=model.horizon,
                    quantiles=quantiles,
                    values=np.round(values[i], 3).tolist(),
                    model_version=model.version,
                    history_days=int(history_days[i]),
                    fallback=fallbacks[i],
                )
            )
            observations.append(
                Observation(
                    sku=sku,
                    day=start,
                    event_time=as_of,
                    observed=float(today[i]),
                    expected=float(values[i, 0, mid]),
                    lower=float(values[i, 0, lo]),
                    upper=float(values[i, 0, hi]),
                    score=float(scores[i]),
                    # A cold-start forecast knows too little to call anything a surge.
                    surging=bool(surging[i]) and fallbacks[i] is None,
                )
            )
        alerts = self._alerts.observe(observations, model.version, now)
        return forecasts, alerts

    @property
    def _alerts_rule(self) -> SurgeRule:
        return SurgeRule(self._s.alert_min_units, self._s.alert_surge_factor)

    @staticmethod
    def _count(applied: int, fenced: int, dups: int, dead: list, late: list, forecasts: list, alerts: list) -> None:
        metrics.EVENTS_APPLIED.inc(applied)
        metrics.EVENTS_FENCED.inc(fenced)
        metrics.EVENTS_DUPLICATE.inc(dups)
        for d in dead:
            metrics.DEAD_LETTERS.labels(d.reason).inc()
        for e in late:
            metrics.LATE_EVENTS.labels(e.reason).inc()
        metrics.FORECASTS.inc(len(forecasts))
        for a in alerts:
            metrics.ALERTS.labels(a.severity, a.state).inc()
