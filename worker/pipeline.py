"""One micro-batch, end to end: decode → window store → batched forecast → alerts → emit.

Independent of Faust: the app feeds it :class:`RawRecord` batches, tests can too. Offsets are
committed by the caller only after the batch's delivery is confirmed: :meth:`BatchProcessor.process`
returns then; :meth:`BatchProcessor.start` returns once the Redis update and the outputs are done,
with a future for their delivery, so the next batch is computed while this one is delivered
(deliveries still go out one after another, in batch order). What a batch scores for alerts,
and the scoring itself, is :mod:`worker.batch_scoring`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import numpy as np

from model.detector import scan_hours
from model.surge import AlertState
from model.thresholds import Thresholds
from streams.buckets import day_to_date
from streams.contracts import (
    AlertEvent,
    DeadLetter,
    ForecastEvent,
    LateEvent,
    OrderEvent,
    check_forecast_values,
    forecast_json,
)
from streams.ingest import RawRecord, decode_orders
from streams.window_store import (
    ApplyResult,
    DayWindows,
    HourWindows,
    OrderUpdate,
    WindowStore,
    updates_from_orders,
)
from worker import metrics
from worker.alerting import AlertStates, AlertTracker, MemoryAlertStates, SkuAlerts, thresholds_for
from worker.batch_scoring import Batch, score_batch
from worker.coalesce import ForecastCoalescer, first_positions
from worker.detection import DetectionContext, IdleChecks
from worker.emitter import Emitter
from worker.forecast_memo import ForecastMemo
from worker.settings import Settings

Clock = Callable[[], datetime]
OnOutputs = Callable[[list[ForecastEvent], list[AlertEvent], list[bytes]], Awaitable[None]]
"""(forecasts, alerts, each forecast's JSON as sent to Kafka)."""


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


T = TypeVar("T")


class Retry(Protocol):
    """Runs ``step`` until it succeeds, for errors worth waiting out (a service that is down)."""

    async def __call__(self, step: Callable[[], Awaitable[T]], what: str) -> T: ...


async def no_retry(step: Callable[[], Awaitable[T]], what: str) -> T:
    return await step()


def history_width(model: Forecasts) -> int:
    """Days of history a forecast reads: the lookback, plus last year's season if the model uses it."""
    return int(model.lookback) + int(getattr(getattr(model, "spec", None), "season_lag", None) or 0)


async def _none() -> None:
    return None


DELIVERY_HEAD_START_STEPS = 4
"""Event-loop turns a batch's delivery gets before the next batch is taken on: enough for it to
serialise the forecasts, queue them with the producer and for the producer to write them to the
broker. The next batch's work is mostly CPU with few awaits, so without them the forecasts would
wait for its awaits to leave (measured: docs/benchmarks.md, latency)."""


async def _let_run(turns: int) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


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
        on_outputs: OnOutputs | None = None,
        alert_states: AlertStates | None = None,
        thresholds: Thresholds | None = None,
        retry: Retry = no_retry,
    ) -> None:
        """``on_outputs`` sees each batch's forecasts and alerts while they are emitted.

        ``alert_states`` keeps the alert lifecycle (Redis in the worker; default: in memory);
        ``thresholds`` default to the settings' (see :func:`worker.alerting.thresholds_for`);
        ``retry`` runs the steps of a delivery that may meet a service outage (saving alert states).
        """
        self._s = settings
        self._store = store
        self._model = forecaster
        self._emitter = emitter
        self._clock = clock
        self._on_outputs = on_outputs
        self._hash_key = settings.customer_hash_key.get_secret_value().encode()
        self._alerts = AlertTracker(alert_states or MemoryAlertStates(), thresholds or thresholds_for(settings),
                                    settings.alert_cooldown_hours)
        self._detect = DetectionContext(settings.market_timezone, settings.alert_watch_max_skus)
        # One inference thread: the event loop keeps consuming while the model runs.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skucast-infer")
        self._memo = ForecastMemo(settings.forecast_memo_rows)
        self._coalescer = ForecastCoalescer(settings.forecast_min_interval_s, settings.forecast_heavy_batch_events)
        self._retry = retry
        self._delivering: asyncio.Future[None] | None = None  # the last batch's delivery

    @property
    def model(self) -> Forecasts:
        return self._model

    @property
    def thresholds(self) -> Thresholds:
        return self._alerts.thresholds

    def set_model(self, forecaster: Forecasts, thresholds: Thresholds | None = None) -> None:
        """Use another model (and its alert thresholds) from the next batch on."""
        self._model = forecaster
        if thresholds is not None:
            self._alerts.thresholds = thresholds

    async def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        """One batch, its outputs delivered."""
        outcome, delivered = await self.start(records)
        await delivered
        return outcome

    async def start(self, records: Sequence[RawRecord]) -> tuple[BatchOutcome, asyncio.Future[None]]:
        """One batch up to its outputs; their delivery goes on in the returned future, after the
        previous batch's. Offsets of the batch may be committed once that future is done."""
        with metrics.BATCH_SECONDS.time():
            return await self._start(records)

    async def _start(self, records: Sequence[RawRecord]) -> tuple[BatchOutcome, asyncio.Future[None]]:
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
        # Every SKU in the batch, not only those with newly applied events: after a crash the
        # redelivered (fenced) events' forecast may never have been published. Under heavy load
        # a SKU forecast less than forecast_min_interval_s ago waits (worker/coalesce.py).
        positions = first_positions([u.sku for u in updates], [u.partition for u in updates],
                                    [u.offset for u in updates])
        skus = self._coalescer.select(positions, len(records), time.monotonic())
        # One model and one set of thresholds per batch, even if a hot reload lands mid-batch.
        model, th = self._model, self._alerts.thresholds
        result, touched, hours, known = await self._apply_and_read(updates, skus, model, th)
        late = [
            self._late_event(u, orders_by_pos[(u.partition, u.offset)], wm)
            for u, wm in zip(result.late, result.late_watermark_ts, strict=True)
        ]
        late_set = {(u.partition, u.offset) for u in result.late}
        self._detect.observe([u for u in updates if (u.partition, u.offset) not in late_set])
        forecasts, alerts = await self._forecast(model, th, touched, hours, known, now) if skus else ([], [])
        delivered = self._deliver_next(forecasts, alerts, decoded.dead, late)
        self._count(result.applied, result.fenced, result.duplicates, decoded.dead, late, forecasts, alerts)
        outcome = BatchOutcome(len(records), result.applied, len(decoded.dead), len(late), len(forecasts), len(alerts))
        await _let_run(DELIVERY_HEAD_START_STEPS)
        return outcome, delivered

    def commit_hold(self) -> dict[int, int]:
        """Per partition, the offset not to commit past: orders whose SKU's forecast is deferred."""
        return self._coalescer.hold()

    async def flush_deferred(self) -> int:
        """Forecast the deferred SKUs whose interval has passed (the consumer calls this when a
        poll finds nothing: the stream may have stopped). Returns how many went out."""
        skus = self._coalescer.due(time.monotonic())
        if not skus:
            return 0
        now = self._clock()
        model, th = self._model, self._alerts.thresholds
        _, touched, hours, known = await self._apply_and_read([], skus, model, th)
        forecasts, alerts = await self._forecast(model, th, touched, hours, known, now)
        await self._deliver_next(forecasts, alerts, [], [])
        self._coalescer.forecasted(skus, time.monotonic())  # only now may their offsets be committed
        self._count(0, 0, 0, [], [], forecasts, alerts)
        return len(forecasts)

    def _deliver_next(self, forecasts: list[ForecastEvent], alerts: list[AlertEvent], dead: list[DeadLetter],
                      late: list[LateEvent]) -> asyncio.Future[None]:
        """Deliver a batch's outputs after the previous batch's (a SKU's forecasts stay in order)."""
        previous = self._delivering
        self._delivering = delivered = asyncio.ensure_future(
            self._deliver(previous, forecasts, alerts, dead, late, self._alerts.take_pending()))
        return delivered

    async def _deliver(self, previous: asyncio.Future[None] | None, forecasts: list[ForecastEvent],
                       alerts: list[AlertEvent], dead: list[DeadLetter], late: list[LateEvent],
                       states: list[tuple[str, str, AlertState]]) -> None:
        """Publish a batch's outputs, then store its alert states."""
        started = time.perf_counter()
        # Each forecast is serialised once, for Kafka and the query API's copy.
        forecast_jsons = [forecast_json(f) for f in forecasts]
        if previous is not None:
            await asyncio.shield(previous)  # its failure is its own caller's to see
        # The query API's copy is written while Kafka acknowledges: one wait, not two in a row.
        await asyncio.gather(
            self._emitter.emit(forecasts, alerts, dead, late, forecast_jsons),
            self._on_outputs(forecasts, alerts, forecast_jsons) if self._on_outputs is not None else _none())
        # Only once delivered: a crash re-sends, never loses, an alert.
        await self._retry(lambda: self._alerts.save(states), "saving alert states")
        metrics.DELIVERY_SECONDS.observe(time.perf_counter() - started)

    def _late_event(self, u: OrderUpdate, order: OrderEvent, watermark_ts: float) -> LateEvent:
        return LateEvent(
            reason="beyond_grace_period",
            order=order,
            watermark=datetime.fromtimestamp(watermark_ts, UTC),
            lateness_s=round(watermark_ts - u.event_ts, 3),
            partition=u.partition,
            offset=u.offset,
        )

    async def _apply_and_read(
        self, updates: Sequence[OrderUpdate], skus: list[str], model: Forecasts, th: Thresholds
    ) -> tuple[ApplyResult, DayWindows, HourWindows | None, list[SkuAlerts]]:
        """Apply ``updates`` (maybe none), then read the windows of ``skus`` in the same round trip
        (and their trailing hours when the detector looks at them); their alert states beside."""
        started = time.perf_counter()
        (result, touched, hours), known = await asyncio.gather(
            self._store.apply_and_read(updates, skus, self._read_days(model, th), th.recent_hours),
            self._alerts.load(skus))
        metrics.REDIS_SECONDS.labels("apply_and_read" if updates else "read").observe(time.perf_counter() - started)
        return result, touched, hours, known

    @staticmethod
    def _read_days(model: Forecasts, th: Thresholds) -> int:
        """Days of history a batch reads: the detector's longer window (``span_days``) on top of
        the model's history or what the SKU sold in the ``past_days`` before the drop window."""
        return max(history_width(model), th.past_days) + th.span_days

    async def _forecast(self, model: Forecasts, th: Thresholds, touched: DayWindows, hours: HourWindows | None,
                        known: list[SkuAlerts], now: datetime) -> tuple[list[ForecastEvent], list[AlertEvent]]:
        """Forecast the batch's SKUs (their windows read) and score them (and due drop checks)
        with ONE model call."""
        tracker, ctx = self._alerts, self._detect
        w = th.span_days
        width = history_width(model)
        idle = ctx.idle_due(set(touched.skus)) if self._s.alert_watch_max_skus else IdleChecks()
        quiet = None
        if idle.skus:  # once an hour of event time per partition: a round trip of their own
            started = time.perf_counter()
            quiet, known_idle = await asyncio.gather(
                self._store.read_days(idle.skus, self._read_days(model, th), end_day=idle.end_day),
                tracker.load(idle.skus))
            known = known + known_idle
            metrics.REDIS_SECONDS.labels("read").observe(time.perf_counter() - started)
        recent_hours = th.recent_hours
        batch = Batch.of(touched, quiet, idle, hours, scan_hours(recent_hours))
        rows, ends = [batch.units[:, -1 - width : -1]], [batch.end_day - 1]
        # Per trailing k days, the forecast made the day before them. Each row is memoised (the
        # memo's digest holds its end day): only a SKU's first batch of a day calls the model.
        for k in range(2, w + 1):
            rows.append(batch.units[:, -k - width : -k])
            ends.append(batch.end_day - k)
        first_day = ctx.local(batch.first_seen).day
        history_days = np.clip(batch.end_day - first_day, 0, None)
        values, fallbacks = await self._predict(
            model, [(s, k) for k in range(len(rows)) for s in batch.skus], np.concatenate(rows),
            np.concatenate(ends), np.concatenate([np.minimum(history_days, width)] * len(rows)))
        m = len(batch.skus)
        today_fc = values[:m]
        forecasts = self._forecast_events(touched, today_fc, fallbacks, history_days, model, now)
        # windows[:, k - 1, w - k:]: the forecast of the last k days made before them (origin end_day - k).
        windows = np.zeros((m, w, w, values.shape[-1]), dtype=values.dtype)
        for k in range(1, w + 1):
            windows[:, k - 1, w - k :] = values[(k - 1) * m : k * m, :k]
        window_fc = windows[:, -1]
        alerts = score_batch(batch, today_fc, window_fc, windows, fallbacks[:m], history_days, known, model, th,
                             tracker, ctx, now)
        return forecasts, alerts

    async def _predict(self, model: Forecasts, keys: list[tuple[str, int]], history: np.ndarray,
                       end_day: np.ndarray, history_days: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        """One model call (off the event loop) for the rows whose inputs changed since last time."""
        found = self._memo.lookup(model.version, keys, history, end_day, history_days)
        metrics.FORECAST_MEMO_HITS.inc(len(found.found))
        computed: tuple[np.ndarray, list[str | None]] = (np.empty((0, model.horizon, len(model.quantiles))), [])
        if found.missing.size:
            started = time.perf_counter()
            idx = found.missing
            computed = await asyncio.get_running_loop().run_in_executor(
                self._executor, model.predict_with_flags, history[idx], end_day[idx], history_days[idx])
            metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
            self._memo.store(found, *computed)
        return self._memo.assemble(found, computed[0], computed[1], (model.horizon, len(model.quantiles)))

    def _forecast_events(self, windows: DayWindows, values: np.ndarray, fallbacks: list[str | None],
                         history_days: np.ndarray, model: Forecasts, now: datetime) -> list[ForecastEvent]:
        rounded = np.round(values[: len(windows.skus)].astype(np.float64), 3)
        check_forecast_values(rounded, model.horizon, len(model.quantiles))
        rows = rounded.tolist()  # one C call for the batch, not one per SKU
        quantiles = list(model.quantiles)  # one list for the batch's (immutable) events
        start_dates = {int(d): day_to_date(int(d)) for d in np.unique(windows.end_day)}
        out: list[ForecastEvent] = []
        for i, sku in enumerate(windows.skus):
            meta = windows.meta[i]
            if meta is None:
                continue
            # Checked for the whole batch above (the per-event validator is the slowest part of
            # building an event); every other field is typed by construction.
            out.append(
                ForecastEvent.model_construct(
                    sku=sku,
                    made_at=now,
                    as_of=datetime.fromtimestamp(meta.watermark_ts, UTC),
                    start_date=start_dates[int(windows.end_day[i])],
                    horizon=model.horizon,
                    quantiles=quantiles,
                    values=rows[i],
                    model_version=model.version,
                    history_days=int(history_days[i]),
                    fallback=fallbacks[i],
                )
            )
        return out

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
