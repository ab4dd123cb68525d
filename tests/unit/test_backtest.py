"""Backtest harness smoke tests (tiny, real code paths) and interval calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.backtest import BacktestConfig, mase_scales, run_backtest, score_model
from model.calibration import apply_calibration, fit_calibration, interval_coverage
from model.datasets import long_format


def write_long_file(path: Path, n_series: int = 5, n_days: int = 150) -> None:
    rng = np.random.default_rng(0)
    days = pd.date_range("2023-01-02", periods=n_days, freq="D")
    weekly = 1.0 + 0.5 * (days.dayofweek >= 5)
    rows = []
    for i in range(n_series):
        level = 5.0 * (i + 1)
        units = rng.poisson(level * weekly)
        units[rng.random(n_days) < 0.1] = 0
        # Two order lines per day for some days: the loader must sum them.
        rows += [
            {"item": f"sku{i}", "ts": d + pd.Timedelta(hours=9), "qty": int(u)}
            for d, u in zip(days, units, strict=True)
        ]
        rows.append({"item": f"sku{i}", "ts": days[10] + pd.Timedelta(hours=15), "qty": 1000})
    df = pd.DataFrame(rows)
    if path.suffix == ".parquet":
        df.to_parquet(path)
    else:
        df.to_csv(path, index=False)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_long_format_loader_sums_periods_and_fills_gaps(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"shop{suffix}"
    write_long_file(path)
    data = long_format(path, "item", "ts", "qty", "D", horizon=7, n_windows=2, market="UK")
    assert data.values.shape == (5, 150) and data.series == [f"sku{i}" for i in range(5)]
    assert data.origins == [149 - 14, 149 - 7]
    assert data.values[:, 10].min() >= 1000  # the extra line was added to its day
    assert data.covariates.shape[1] == 150 + 7  # covariates reach past the data by the horizon
    weekly = long_format(path, "item", "ts", "qty", "W", horizon=4, n_windows=1, lookback=8)
    assert weekly.values.sum() == pytest.approx(data.values.sum())
    with pytest.raises(ValueError, match="no column"):
        long_format(path, "sku", "ts", "qty")


def test_backtest_smoke_writes_json_and_png(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    write_long_file(path)
    data = long_format(path, "item", "ts", "qty", "D", horizon=7, n_windows=2, market="UK")
    cfg = BacktestConfig(hidden=8, epochs=2, max_windows=512)
    report = run_backtest(data, cfg, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "shop.json").read_text())
    assert (tmp_path / "out" / "shop.png").stat().st_size > 10_000
    assert set(saved["models"]) == {"lstm", "seasonal_naive", "auto_ets", "croston"}
    for metrics in report["models"].values():
        assert {"mae", "rmse", "mase", "pinball", "coverage80"} <= set(metrics)
        assert all(np.isfinite(v) for v in metrics.values())
    assert report["models"]["croston"]["coverage80"] < 0.5  # a point forecast has no interval
    assert saved["origins"] == ["2023-05-17", "2023-05-24"]


def test_mase_and_scores_on_a_known_case() -> None:
    from model.datasets import BacktestData

    values = np.tile(np.array([1.0, 3.0], np.float32), 20)[None, :]  # season 2: seasonal naive is perfect
    values[0, 1::2] += np.arange(20) * 0.0
    data = BacktestData("toy", values, ["a"], [str(i) for i in range(40)], np.zeros((1, 40, 1), np.float32), ("x",),
                        [29], 4, 8, 2, 4)
    scales = mase_scales(data)
    assert scales[0] == 0.0  # a perfectly seasonal history: MASE undefined -> skipped
    actual = np.array([[[1.0, 3.0, 1.0, 3.0]]])
    pred = np.stack([actual - 1, actual, actual + 1], axis=-1)
    s = score_model(pred, actual, np.array([2.0]), (0.1, 0.5, 0.9))
    assert s["mae"] == 0.0 and s["mase"] == 0.0 and s["coverage80"] == 1.0
    assert s["pinball"] == pytest.approx((0.1 * 1 + 0 + 0.1 * 1) / 3)


def test_calibration_widens_a_too_narrow_band_to_its_nominal_coverage() -> None:
    rng = np.random.default_rng(0)
    actual = rng.normal(10.0, 2.0, (4000, 7))
    pred = np.stack([np.full_like(actual, 9.0), np.full_like(actual, 10.0), np.full_like(actual, 11.0)], axis=-1)
    assert interval_coverage(pred, actual, 0, 2) < 0.45
    cal = fit_calibration(pred, actual, (0.1, 0.5, 0.9))
    fixed = apply_calibration(pred, cal)
    assert 0.78 <= interval_coverage(fixed, actual, 0, 2) <= 0.82
    assert cal["factors"][0] == cal["factors"][2] > 2.0 and cal["factors"][1] == 1.0
    # Fresh data from the same process: the fitted factors carry over.
    fresh = rng.normal(10.0, 2.0, (4000, 7))
    assert 0.77 <= interval_coverage(fixed, fresh, 0, 2) <= 0.83
    assert (fixed >= 0).all() and (np.diff(fixed, axis=-1) >= 0).all()
    np.testing.assert_array_equal(apply_calibration(pred, None), pred)
