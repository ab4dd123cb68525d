"""Every benchmark in ``benchmarks/`` runs in its ``--quick`` form and writes a sane report.

Not timed assertions (the full runs are commands, see docs/benchmarks.md): each benchmark must
run end to end against the real services and report numbers that are internally consistent, so
none of them rots unnoticed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_quick(script: str, out: Path, *args: str, timeout: float = 600) -> dict[str, Any]:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--out", str(out), *args],
                            capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    assert result.returncode == 0, f"{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    report: dict[str, Any] = orjson.loads(out.read_bytes())
    assert report["mode"] == "quick"
    assert len(report["machine"]["loadavg"]) == 3
    return report


def test_throughput_quick(services: None, trained_model: Path, tmp_path: Path) -> None:
    r = run_quick("throughput.py", tmp_path / "t.json", "--model-dir", str(trained_model))
    w = r["worker"]
    assert r["events"] == 20_000 and w["events"] == 20_000
    assert w["dead"] == 0 and w["late"] == 0
    assert 0 < w["sustained_events_per_s"] <= r["raw_consumer"]["events_per_s"]
    assert 0 < r["ratio_worker_to_raw"] <= 1
    assert w["forecasts_total"] > 0
    done = [s["done"] for s in r["samples"]]
    assert done == sorted(done) and done[-1] == 20_000


def test_latency_quick(services: None, trained_model: Path, tmp_path: Path) -> None:
    r = run_quick("latency.py", tmp_path / "l.json", "--model-dir", str(trained_model))
    (phase,) = r["phases"]
    assert phase["events"] > 0 and phase["matched"] + phase["missed"] == phase["events"]
    assert phase["matched"] >= 0.9 * phase["events"], phase
    assert 0 < phase["p50_ms"] <= phase["p95_ms"] <= phase["p99_ms"] <= phase["max_ms"]
    assert r["surge"]["alert_ms"] is not None and r["surge"]["alert_ms"] > 0, r["surge"]
    assert r["surge"]["kind"] == "surge"


def test_inference_quick(trained_model: Path, tmp_path: Path) -> None:
    r = run_quick("inference.py", tmp_path / "i.json", "--model-dir", str(trained_model))
    kinds = {(row["kind"], row["threads"]) for row in r["rows"]}
    assert kinds == {("torchscript", 1), ("torchscript", 2), ("eager", 1), ("eager", 2)}
    assert all(row["forecasts_per_s"] > 0 and row["chunk"] <= max(row["batch"], 1) for row in r["rows"])
    assert r["best_chunk"]["chunk"] in {row["chunk"] for row in r["rows"]}
    assert all(x["seconds"] > 0 for x in r["refresh"])


def test_memory_quick(services: None, trained_model: Path, tmp_path: Path) -> None:
    r = run_quick("memory.py", tmp_path / "m.json", "--model-dir", str(trained_model))
    (row,) = r["rows"]
    assert row["skus"] == 200
    assert row["redis_keys"] >= 4 * 200  # meta, day ring, hour ring, seen set per SKU at least
    assert 1_000 < row["redis_bytes_per_sku"] < 200_000
    assert row["rss"] > 50 * 2**20
    assert r["projected_100k_total_bytes"] > row["total_bytes"]


def test_consumer_paths_quick(services: None, tmp_path: Path) -> None:
    r = run_quick("consumer_paths.py", tmp_path / "c.json")
    assert [row["reader"] for row in r["rows"]] == ["faust", "aiokafka", "confluent"]
    assert all(row["events"] == 20_000 and row["events_per_s"] > 0 for row in r["rows"])
