"""Forecasts for a batch of SKUs come from ONE model call, on the real Redis window store; the
hourly drop checks of quiet SKUs ride in that same call, and unchanged inputs need no call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis.asyncio as aioredis

from model.predictor import Forecaster
from streams.contracts import AlertEvent, DeadLetter, ForecastEvent, LateEvent
from streams.ingest import RawRecord
from tests.support import drop_prefix_and_close, real_order_lines, unique
from worker.app import window_store
from worker.pipeline import BatchProcessor
from worker.replay import encode_lines
from worker.settings import Settings

pytestmark = [pytest.mark.integration]


class CountingForecaster:
    """A real Forecaster that counts its calls and their rows."""

    def __init__(self, inner: Forecaster) -> None:
        self.inner = inner
        self.rows: list[int] = []
        self.version, self.horizon, self.lookback = inner.version, inner.horizon, inner.lookback
        self.quantiles, self.spec = inner.quantiles, inner.spec

    def predict_with_flags(self, history: np.ndarray, end_day: np.ndarray,
                           history_days: np.ndarray) -> tuple[np.ndarray, list[str | None]]:
        self.rows.append(history.shape[0])
        return self.inner.predict_with_flags(history, end_day, history_days)


class Collect:
    def __init__(self) -> None:
        self.forecasts: list[ForecastEvent] = []
        self.alerts: list[AlertEvent] = []

    async def emit(self, forecasts: Sequence[ForecastEvent], alerts: Sequence[AlertEvent],
                   dead: Sequence[DeadLetter], late: Sequence[LateEvent],
                   forecast_json: Sequence[bytes] | None = None) -> None:
        self.forecasts += forecasts
        self.alerts += alerts


def records(lines: Any, first_offset: int) -> list[RawRecord]:
    return [RawRecord("orders", 0, first_offset + i, k, v) for i, (k, v, _) in enumerate(encode_lines(lines))]


def test_one_model_call_per_batch_and_drop_checks_ride_along(services: None, trained_model: Path) -> None:
    lines = real_order_lines("2011-11-01")
    top = list(lines["sku"].value_counts().index[:30])
    day1 = lines[lines["sku"].isin(top) & (lines["event_time"] < datetime(2011, 11, 2, tzinfo=UTC))]
    later = lines[(lines["sku"] == top[0]) & (lines["event_time"] >= datetime(2011, 11, 2, 12, tzinfo=UTC))]
    day2, day2_again = later.iloc[:1], later.iloc[1:2]
    assert set(day1["sku"]) == set(top) and len(day2) == 1 and len(day2_again) == 1
    assert day2_again["event_time"].iloc[0].date() == day2["event_time"].iloc[0].date()

    async def main() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=6379)
        # Two surge window days and three drop window days: three forecast rows per SKU (one per
        # origin), still one call. Watch every SKU for drops.
        s = Settings(redis_prefix=unique("batch"), alert_window_days=2, alert_drop_window_days=3,
                     alert_min_expected_orders=0.0)
        model = CountingForecaster(Forecaster.from_dir(trained_model, device="cpu"))
        out = Collect()
        now = datetime(2011, 12, 31, tzinfo=UTC)
        processor = BatchProcessor(s, window_store(s, client), model, out, clock=lambda: now)
        try:
            await processor.process(records(day1, 0))
            # 30 SKUs first seen today: each of their rows (one per trailing day) is the all-zero
            # history of a new SKU, the same for all 30, so the one call computes 3 rows.
            assert model.rows == [3]
            assert sorted(f.sku for f in out.forecasts) == sorted(top)
            assert {f.model_version for f in out.forecasts} == {model.version}

            # Next day, one SKU sells: it is forecast; the 29 quiet ones are checked for drops in
            # the same (one) call, and get no forecast event.
            await processor.process(records(day2, len(day1)))
            # One call again, for all 30: the rows ending yesterday differ by yesterday's units
            # (one row per distinct total); the two ending before are all zeros for every SKU,
            # now with a day of history behind them (one row each).
            assert model.rows == [3, day1.groupby("sku")["quantity"].sum().nunique() + 2]
            assert [f.sku for f in out.forecasts[30:]] == [top[0]]

            # The same SKU sells again that day: the forecast reads history up to yesterday,
            # which is unchanged, so it is published again (a later as_of) with no model call.
            await processor.process(records(day2_again, len(day1) + 1))
            assert len(model.rows) == 2
            first, again = out.forecasts[30], out.forecasts[31]
            assert again.sku == top[0] and again.as_of > first.as_of
            assert again.values == first.values and again.model_version == first.model_version
        finally:
            await drop_prefix_and_close(client, s.redis_prefix)

    asyncio.run(main())
