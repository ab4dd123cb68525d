"""Model hot reload while the worker runs: a new version in the registry is swapped in and later
forecasts carry it; a corrupt one (its file does not match the sha256 in its metadata) is refused
with a log line, and forecasting goes on with the model already loaded."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support import (
    WorkerProcess,
    consume_all,
    metric_value,
    produce,
    real_order_lines,
    unique,
    wait_for_metric,
    worker_env,
)
from worker.replay import encode_lines

pytestmark = [pytest.mark.e2e]


def publish(model_dir: Path, version: str, payload: bytes, meta: dict) -> None:
    """Write a version the way the registry does: files first, the LATEST pointer last."""
    (model_dir / f"{version}.pt").write_bytes(payload)
    (model_dir / f"{version}.json").write_text(json.dumps({**meta, "version": version}))
    (model_dir / "LATEST").write_text(f"{version}\n")


def orders_of_day(lines: pd.DataFrame, day: str) -> list[tuple[bytes | None, bytes]]:
    start = pd.Timestamp(day, tz="UTC")
    part = lines[(lines["event_time"] >= start) & (lines["event_time"] < start + pd.Timedelta(days=1))]
    return [(k, v) for k, v, _ in encode_lines(part)]


def forecasts_with(topic: str, version: str, skus: int = 1) -> list[dict]:
    docs = consume_all(topic, until=lambda d: len({x["sku"] for x in d if x["model_version"] == version}) >= skus,
                       timeout_s=90)
    return [d for d in docs if d["model_version"] == version]


def test_new_model_swapped_in_and_corrupt_one_refused(services: None, trained_model: Path, tmp_path: Path) -> None:
    registry = tmp_path / "models"
    shutil.copytree(trained_model, registry)
    v1 = (registry / "LATEST").read_text().strip()
    meta = json.loads((registry / f"{v1}.json").read_text())
    payload = (registry / f"{v1}.pt").read_bytes()

    name = unique("reload")
    env = worker_env(name, registry, SKUCAST_MODEL_POLL_S="0.5")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    lines = real_order_lines("2011-11-01")
    lines = lines[lines["sku"].isin(lines["sku"].value_counts().index[:5])]
    try:
        produce(f"{name}.orders", orders_of_day(lines, "2011-11-01"))
        assert forecasts_with(f"{name}.forecasts", v1)

        # A new version appears (same weights, new name, a correct checksum): swapped in.
        v2 = "lstm-20991231000000-reload2"
        publish(registry, v2, payload, meta)
        wait_for_metric(worker, 'skucast_model_reloads_total{result="loaded"}', 1, timeout_s=60)
        produce(f"{name}.orders", orders_of_day(lines, "2011-11-02"))
        assert forecasts_with(f"{name}.forecasts", v2)

        # A corrupt version (bytes that do not match its sha256): refused, v2 keeps forecasting.
        bad = "lstm-20991231000001-corrupt"
        publish(registry, bad, payload[: len(payload) // 2] + b"garbage", meta)
        wait_for_metric(worker, 'skucast_model_reloads_total{result="rejected"}', 1, timeout_s=60)
        produce(f"{name}.orders", orders_of_day(lines, "2011-11-03"))
        time.sleep(1)
        after = consume_all(f"{name}.forecasts", idle_s=5, timeout_s=60)
        day3 = [f for f in after if f["start_date"] == "2011-11-03"]
        assert day3 and {f["model_version"] for f in day3} == {v2}
        assert worker.alive(), worker.log()
        assert metric_value(worker.metrics(), 'skucast_model_reloads_total{result="rejected"}') == 1  # not retried
        assert f"refused model {bad}" in worker.log() and "does not match the checksum" in worker.log()
    finally:
        worker.stop()
