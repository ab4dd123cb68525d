"""Overload: a burst far above the sustainable rate. The worker falls behind (lag reported),
catches up, stays within bounded memory, coalesces forecasts, and counts every event exactly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support import (
    WorkerProcess,
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

MAX_RSS_BYTES = 1_500_000_000


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def test_burst_is_absorbed_with_lag_reported_and_bounded_memory(
    services: None, trained_model: Path, tmp_path: Path
) -> None:
    name = unique("burst")
    lines = real_order_lines("2011-03-01").head(60_000)
    worker = WorkerProcess(worker_env(name, trained_model), tmp_path / "w.log").start()
    try:
        assert worker.proc is not None
        produce(f"{name}.orders", [(k, v) for k, v, _ in encode_lines(lines)])  # the whole burst at once
        max_lag, max_rss = 0.0, 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            page = worker.metrics()
            max_lag = max(max_lag, metric_value(page, "skucast_consumer_lag"))
            max_rss = max(max_rss, rss_bytes(worker.proc.pid))
            if metric_value(page, "skucast_events_consumed_total") >= len(lines):
                break
            time.sleep(0.5)
        page = worker.metrics()
        assert metric_value(page, "skucast_events_consumed_total") == len(lines)
        assert max_lag > 1000, "the burst never put the worker behind: not an overload"
        assert metric_value(page, "skucast_consumer_lag") == 0, "lag not back to zero after catching up"
        assert max_rss < MAX_RSS_BYTES, f"worker RSS peaked at {max_rss / 1e6:.0f} MB"
        forecasts = metric_value(page, "skucast_forecasts_emitted_total")
        assert 0 < forecasts < len(lines) / 3, f"{forecasts} forecasts for {len(lines)} events: not coalesced"
        truth = ground_truth(lines)
        assert wait_until_equal(truth, name, timeout_s=120) == truth
        assert worker.alive()
    finally:
        worker.stop()
