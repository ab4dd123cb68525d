"""Surge alerts end to end on the real Kafka and Redis: eight weeks of real orders of a few top
SKUs, one injected surge; the surging SKU's alert opens on the surge day and resolves on the
next (normal) day, with the same id; a control SKU whose demand follows its (Christmas-ramp)
forecast raises nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.support import (
    WorkerProcess,
    consume_all,
    produce,
    real_order_lines,
    unique,
    wait_for_metric,
    worker_env,
)
from worker.replay import encode_lines

pytestmark = [pytest.mark.e2e]

SURGE_SKU = "22423"  # REGENCY CAKESTAND 3 TIER
CONTROL_SKU = "85099B"  # JUMBO BAG RED RETROSPOT: steady, well forecast
CONTEXT_SKUS = ["47566", "20725", "84879", "85123A"]  # the rest of the "shop", for its daily level
SURGE_DAY = pd.Timestamp("2011-11-10", tz="Europe/London")  # a Thursday in the Christmas ramp
EXTRA_LINES = 60


def scenario() -> pd.DataFrame:
    """Real lines from 15 Sep to the end of the day after the surge, plus the surge itself:
    60 extra order lines of the SKU between 10:00 and 12:00 (its own recent order sizes)."""
    lines = real_order_lines("2011-09-15")
    end = (SURGE_DAY + pd.Timedelta(days=2)).tz_convert("UTC")
    lines = lines[lines["sku"].isin([SURGE_SKU, CONTROL_SKU, *CONTEXT_SKUS]) & (lines["event_time"] < end)]
    mine = lines[lines["sku"] == SURGE_SKU]
    rng = np.random.default_rng(5)
    start = (SURGE_DAY + pd.Timedelta(hours=10)).tz_convert("UTC")
    extra = mine.iloc[rng.integers(0, len(mine), EXTRA_LINES)].copy()
    extra["order_id"] = [f"SURGE{k}" for k in range(EXTRA_LINES)]
    extra["line"] = 0
    extra["event_time"] = sorted(start + pd.to_timedelta(rng.integers(0, 7200, EXTRA_LINES), unit="s"))
    return pd.concat([lines, extra]).sort_values("event_time", kind="stable").reset_index(drop=True)


def test_injected_surge_opens_then_resolves_and_the_control_stays_quiet(services: None, trained_model: Path,
                                                                        tmp_path: Path) -> None:
    name = unique("alerts")
    # Small batches: live, orders trickle in, so the detector sees the surge day unfold hour by hour.
    env = worker_env(name, trained_model, SKUCAST_BATCH_MAX_EVENTS="20", SKUCAST_MODEL_POLL_S="0")
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        lines = scenario()
        produce(f"{name}.orders", [(k, v) for k, v, _ in encode_lines(lines)])

        def surge_resolved(docs: list[dict]) -> bool:
            return any(d["sku"] == SURGE_SKU and d["state"] == "resolved" for d in docs)

        consume_all(f"{name}.alerts", until=surge_resolved, timeout_s=240)
        wait_for_metric(worker, "skucast_events_applied_total", len(lines), timeout_s=240)
        alerts = consume_all(f"{name}.alerts", idle_s=5, timeout_s=60)
        assert worker.alive(), worker.log()
    finally:
        worker.stop()

    surge = [a for a in alerts if a["sku"] == SURGE_SKU and a["kind"] == "surge"]
    opened = [a for a in surge if a["state"] == "opened" and a["day"] == "2011-11-10"]
    assert len(opened) == 1, f"{surge}\n{worker.log()}"
    o = opened[0]
    assert o["severity"] in ("warning", "critical") and o["score"] > 4.0
    assert o["observed"] > o["upper"] >= o["expected"] >= o["lower"] >= 0
    assert "10:00" <= pd.Timestamp(o["event_time"]).tz_convert("Europe/London").strftime("%H:%M") < "12:30"
    assert o["model_version"] == (trained_model / "LATEST").read_text().strip()
    resolved = [a for a in surge if a["state"] == "resolved" and a["alert_id"] == o["alert_id"]]
    assert len(resolved) == 1 and resolved[0]["day"] == "2011-11-11"
    assert all(a["alert_id"] == o["alert_id"] for a in surge if a["day"] in ("2011-11-10", "2011-11-11"))
    assert [a for a in alerts if a["sku"] == CONTROL_SKU] == []
