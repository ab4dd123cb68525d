"""Window-store exactness end to end: a worker SIGKILLed mid-stream, a second worker joining the
group mid-stream, and late events — every bucket must equal the ground truth from the input."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import orjson
import pandas as pd
import pytest

from tests.support import (
    WorkerProcess,
    consume_all,
    ground_truth,
    metric_value,
    produce,
    real_order_lines,
    redis_buckets,
    unique,
    wait_for_metric,
    wait_until_equal,
)
from tests.support import worker_env as env_for
from worker.replay import encode_lines

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_sigkill_mid_stream_loses_nothing_and_counts_nothing_twice(
    services: None, trained_model: Path, tmp_path: Path
) -> None:
    name = unique("crash")
    lines = real_order_lines("2011-09-01").head(20_000)
    env = env_for(name, trained_model, SKUCAST_BATCH_MAX_EVENTS="500")
    first = WorkerProcess(env, tmp_path / "worker1.log").start()
    produce(f"{name}.orders", [(k, v) for k, v, _ in encode_lines(lines)])
    wait_for_metric(first, "skucast_events_applied_total", 4000, timeout_s=120)
    first.kill()  # SIGKILL: no commit, no flush, no goodbye
    assert not first.alive()

    second = WorkerProcess(env, tmp_path / "worker2.log").start()
    try:
        for grain in ("day", "hour"):
            truth = ground_truth(lines, grain)
            assert wait_until_equal(truth, name, grain) == truth
        assert second.alive(), second.log()
    finally:
        second.stop()


def test_workers_join_and_leave_mid_stream_and_totals_stay_exact(
    services: None, trained_model: Path, tmp_path: Path
) -> None:
    name = unique("rebal")
    lines = real_order_lines("2011-10-01").head(16_000)
    messages = [(k, v) for k, v, _ in encode_lines(lines)]
    env_a = env_for(name, trained_model)
    env_b = {**env_a, **env_for(name, trained_model)}  # same group, own web port
    a = WorkerProcess(env_a, tmp_path / "a.log").start()
    b = WorkerProcess(env_b, tmp_path / "b.log")
    try:
        produce(f"{name}.orders", messages[:8000])
        wait_for_metric(a, "skucast_events_applied_total", 2000, timeout_s=120)
        b.start()  # joins the consumer group: partitions are rebalanced between the two
        wait_for_metric(b, "skucast_assigned_partitions", 1, timeout_s=120)
        wait_for_partitions(a, at_most=3)
        produce(f"{name}.orders", messages[8000:12000])
        wait_for_metric(b, "skucast_events_consumed_total", 1, timeout_s=120)
        a.stop()  # leaves the group: b takes every partition over
        wait_for_metric(b, "skucast_assigned_partitions", 4, timeout_s=120)
        produce(f"{name}.orders", messages[12000:])
        truth = ground_truth(lines)
        assert wait_until_equal(truth, name) == truth
        assert b.alive(), b.log()
    finally:
        b.stop()
        a.stop()


def wait_for_partitions(worker: WorkerProcess, at_most: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while metric_value(worker.metrics(), "skucast_assigned_partitions") > at_most:
        assert time.monotonic() < deadline, "the group never rebalanced"
        time.sleep(0.5)


def _order(sku: str, order_id: str, when: pd.Timestamp, quantity: int) -> tuple[bytes, bytes]:
    doc = {"order_id": order_id, "sku": sku, "quantity": quantity, "unit_price": 1.25, "currency": "GBP",
           "event_time": when.isoformat()}
    return sku.encode(), orjson.dumps(doc)


def test_late_events_inside_grace_land_outside_go_to_orders_late(
    services: None, trained_model: Path, tmp_path: Path
) -> None:
    name = unique("late")
    grace_h = 6
    worker = WorkerProcess(env_for(name, trained_model, SKUCAST_LATE_GRACE_HOURS=str(grace_h)),
                           tmp_path / "w.log").start()
    try:
        now = pd.Timestamp("2011-11-20T15:00:00Z")
        inside = now - timedelta(hours=grace_h - 1)
        outside = now - timedelta(days=3)
        produce(f"{name}.orders", [_order("LATE1", "o1", now, 5)])
        wait_for_metric(worker, "skucast_events_applied_total", 1)
        produce(f"{name}.orders", [_order("LATE1", "o2", inside, 7), _order("LATE1", "o3", outside, 11)])
        late = consume_all(f"{name}.orders.late", until=lambda d: len(d) >= 1, timeout_s=60)
        assert [d["order"]["order_id"] for d in late] == ["o3"]
        assert late[0]["reason"] == "beyond_grace_period"
        assert late[0]["lateness_s"] == pytest.approx(3 * 86400, abs=1)
        wait_for_metric(worker, "skucast_events_applied_total", 2)
        assert wait_for_metric(worker, "skucast_late_events_total", 1) == 1
        stored = redis_buckets(name, ["LATE1"], "hour")["LATE1"]
        assert sorted(v[0] for v in stored.values()) == [5, 7]   # o3 counted nowhere
        time.sleep(0.5)
        assert metric_value(worker.metrics(), "skucast_events_applied_total") == 2
    finally:
        worker.stop()
