"""Crash loop: SIGKILL the worker at random moments, five times, during a 50,000-event replay;
afterwards every bucket equals the ground truth and every SKU's latest forecast saw all its events."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support import (
    WorkerProcess,
    consume_all,
    ground_truth,
    metric_value,
    produce,
    real_order_lines,
    unique,
    wait_until_equal,
    worker_env,
)
from worker.replay import encode_lines

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KILLS = 5


def test_five_sigkills_during_50k_replay(services: None, trained_model: Path, tmp_path: Path) -> None:
    name = unique("crashloop")
    lines = real_order_lines("2011-06-01").head(50_000)
    messages = [(k, v) for k, v, _ in encode_lines(lines)]
    # Hourly buckets kept for the whole replay (default 14 days), so every hour can be checked.
    env = worker_env(name, trained_model, SKUCAST_BATCH_MAX_EVENTS="400", SKUCAST_HOUR_RETENTION_DAYS="120")
    rng = random.Random(7)
    chunk = len(messages) // (KILLS + 1)
    worker = WorkerProcess(env, tmp_path / "w0.log").start()
    try:
        for i in range(KILLS):
            produce(f"{name}.orders", messages[i * chunk:(i + 1) * chunk])
            # a random moment: somewhere between "just started" and "deep into the chunk"
            target = rng.uniform(0.1, 0.9) * chunk
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and consumed(worker) < target:
                time.sleep(rng.uniform(0.05, 0.3))
            worker.kill()
            worker = WorkerProcess(env, tmp_path / f"w{i + 1}.log").start()
        produce(f"{name}.orders", messages[KILLS * chunk:])
        for grain in ("day", "hour"):
            truth = ground_truth(lines, grain)
            assert wait_until_equal(truth, name, grain, timeout_s=300, hour_retention=120) == truth
        assert worker.alive(), worker.log()
    finally:
        worker.stop()

    # Every SKU's latest forecast reflects all its events: its as_of is the SKU's last event time.
    last_event = lines.groupby("sku")["event_time"].max()
    forecasts = consume_all(f"{name}.forecasts", timeout_s=120, idle_s=5)
    latest: dict[str, pd.Timestamp] = {}
    for f in forecasts:
        t = pd.Timestamp(f["as_of"])
        latest[f["sku"]] = max(latest.get(f["sku"], t), t)
    assert set(latest) == set(last_event.index)
    stale = [s for s, t in last_event.items() if latest[s] != t]
    assert not stale, f"{len(stale)} SKUs' latest forecast missed events, e.g. {stale[:3]}"


def consumed(worker: WorkerProcess) -> float:
    return metric_value(worker.metrics(), "skucast_events_consumed_total")
