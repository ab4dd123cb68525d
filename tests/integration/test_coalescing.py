"""Under heavy load a SKU is forecast at most once per interval; a deferred forecast goes out
later and holds back its orders' offsets until it has (real Redis, real model)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from model.predictor import Forecaster
from tests.integration.test_batched_inference import Collect, records
from tests.support import drop_prefix_and_close, real_order_lines, unique
from worker.app import window_store
from worker.pipeline import BatchProcessor
from worker.settings import Settings

pytestmark = [pytest.mark.integration]


def test_heavy_batches_defer_a_recent_skus_forecast_and_hold_its_offsets(services: None, trained_model: Path) -> None:
    lines = real_order_lines("2011-11-01")
    top = list(lines["sku"].value_counts().index[:5])
    day = lines[lines["sku"].isin(top)]
    first, second = day.iloc[:40], day.iloc[40:80]
    assert set(second["sku"]) & set(first["sku"])

    async def main() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=6379)
        # Every batch of 10+ events is "heavy"; a SKU waits 0.5 s between forecasts.
        s = Settings(redis_prefix=unique("coal"), forecast_min_interval_s=0.5, forecast_heavy_batch_events=10)
        out = Collect()
        processor = BatchProcessor(s, window_store(s, client), Forecaster.from_dir(trained_model, device="cpu"), out,
                                   clock=lambda: datetime(2011, 12, 31, tzinfo=UTC))
        try:
            await processor.process(records(first, 0))
            assert sorted(f.sku for f in out.forecasts) == sorted(set(first["sku"]))
            assert processor.commit_hold() == {}

            await processor.process(records(second, len(first)))  # right after: all deferred
            assert len(out.forecasts) == len(set(first["sku"])) + len(set(second["sku"]) - set(first["sku"]))
            deferred = set(second["sku"]) & set(first["sku"])
            held = processor.commit_hold()
            assert held == {0: len(first) + min(i for i, sku in enumerate(second["sku"]) if sku in deferred)}

            assert await processor.flush_deferred() == 0  # not yet due
            time.sleep(0.55)
            assert await processor.flush_deferred() == len(deferred)
            latest = {f.sku: f for f in out.forecasts}
            for sku in deferred:  # the deferred forecast has seen the second batch's orders
                last = second[second["sku"] == sku]["event_time"].max()
                assert latest[sku].as_of == last.to_pydatetime()
            assert processor.commit_hold() == {}
        finally:
            await drop_prefix_and_close(client, s.redis_prefix)

    asyncio.run(main())
