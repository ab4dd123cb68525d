"""`skucast evaluate-alerts` end to end on the bundled Online Retail orders and a model trained for real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import ROOT, SKUCAST


def evaluate(model: Path, out: Path, *extra: str) -> dict[str, Any]:
    run = subprocess.run([SKUCAST, "evaluate-alerts", "--model-dir", str(model), "--top-n", "120", "--events", "80",
                          "--draws", "2", "--json", str(out), *extra],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ceiling: recall any detector could reach" in run.stdout
    report: dict[str, Any] = json.loads(out.read_text())
    return report


def test_the_evaluation_calibrates_finds_events_and_stays_under_its_ceiling(trained_model: Path,
                                                                            tmp_path: Path) -> None:
    version = (trained_model / "LATEST").read_text().strip()
    report = evaluate(trained_model, tmp_path / "model.json")
    assert report["draws"] == 2 and [d["seed"] for d in report["by_draw"]] == [0, 1]
    assert report["events"] == sum(d["events"] for d in report["by_draw"]) > 40
    assert 0.05 < report["recall"] <= report["ceiling_recall"] + 0.1  # no detector beats the oracle by much
    assert report["found_quick"] <= report["recall"] and report["ceiling_quick"] <= report["ceiling_recall"]
    assert report["false_alarms_per_1000_sku_days"] <= 3.0  # calibrated to 1 on the other half
    assert (trained_model / f"{version}.alerts.json").is_file()  # the worker loads these

    ablation = evaluate(trained_model, tmp_path / "mean.json", "--forecast", "seasonal-mean", "--no-write-thresholds")
    assert ablation["model_version"] == "seasonal-mean-4w" and ablation["events"] == report["events"]
    assert ablation["ceiling_recall"] == report["ceiling_recall"]  # the same injected events
