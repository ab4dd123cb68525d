"""Festival-aware models end to end: a user's daily file -> model with festivals, calibration and
the long-history (same season last year) path, and models from before festivals still load."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.features import CALENDAR_FEATURES, N_CALENDAR, day_index
from model.lstm import DemandLSTM
from model.predictor import Forecaster
from model.registry import ModelError, export_model
from model.train import TrainConfig, train

TRAINED_AT = datetime(2024, 1, 1, tzinfo=UTC)


def write_shop(path: Path, n_days: int = 420) -> None:
    rng = np.random.default_rng(1)
    days = pd.date_range("2022-10-01", periods=n_days, freq="D")
    rows = []
    for i in range(6):
        boost = np.where((days.month == 11) & (days.day >= 20), 3.0, 1.0)  # a Black Friday bump
        units = rng.poisson((4 + 3 * i) * boost)
        rows += [
            {"item": f"s{i}", "day": d.date().isoformat(), "qty": int(u)} for d, u in zip(days, units, strict=True)
        ]
    pd.DataFrame(rows).to_csv(path, index=False)


@pytest.fixture(scope="module")
def us_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shop")
    write_shop(root / "shop.csv")
    (root / "campaigns.yaml").write_text("- {name: summer sale, start: 2023-07-10, end: 2023-07-12}\n")
    cfg = TrainConfig(root / "shop.csv", root / "models", horizon=7, lookback=28, hidden=16, epochs=2,
                      max_windows=1024, market="US", campaigns_path=root / "campaigns.yaml", season_lag=364,
                      val_days=28, data_format="long", id_col="item", time_col="day", target_col="qty")
    train(cfg, clock=lambda: TRAINED_AT)
    return root / "models"


def test_user_file_model_records_its_festival_features(us_model: Path) -> None:
    meta = json.loads(next(us_model.glob("lstm-*.json")).read_text())
    assert meta["feature_spec"]["market"] == "US" and meta["feature_spec"]["season_lag"] == 364
    assert "black_friday_peak" in meta["features"] and "campaign_peak" in meta["features"]
    assert meta["features"][-2:] == ["season_lag_scaled", "season_lag_available"]
    assert len(meta["calibration"]["factors"]) == 3 and meta["calibration"]["median"] == 1
    assert {"coverage", "mae"} <= set(meta["validation_calibrated"])


def test_forecaster_uses_long_history_when_given(us_model: Path) -> None:
    fc = Forecaster.from_dir(us_model, device="cpu")
    assert fc.spec.season_lag == 364 and fc.horizon == 7
    rng = np.random.default_rng(0)
    long = rng.poisson(8.0, (3, 28 + 364)).astype(np.float32)
    end = np.full(3, day_index(date(2023, 11, 20)))
    with_last_year = fc.predict(long, end)
    without = fc.predict(long[:, -28:], end)  # the worker's plain (n, L) path still works
    assert with_last_year.shape == without.shape == (3, 7, 3)
    assert not np.allclose(with_last_year, without)  # last year's weeks change the forecast
    np.testing.assert_allclose(fc.predict(np.concatenate([np.zeros((3, 50), np.float32), long], 1), end),
                               with_last_year, rtol=1e-6)  # more history than needed: same answer
    values, flags = fc.predict_with_flags(long[:, -28:], end, np.array([28, 5, 400]))
    assert flags == [None, "cold_start: 5 days of history", None]
    assert (values >= 0).all() and (np.diff(values, axis=-1) >= 0).all()


def test_models_from_before_festivals_still_load(tmp_path: Path) -> None:
    meta = {"quantiles": [0.1, 0.5, 0.9], "horizon": 14, "lookback": 56, "features": list(CALENDAR_FEATURES)}
    export_model(DemandLSTM(N_CALENDAR, hidden=8), tmp_path, TRAINED_AT, meta)
    fc = Forecaster.from_dir(tmp_path, device="cpu")
    assert fc.spec.market is None and fc.calibration is None
    assert fc.predict(np.ones((2, 56), np.float32), np.array([15000, 15001])).shape == (2, 14, 3)


def test_a_model_whose_features_this_code_cannot_build_is_refused(tmp_path: Path) -> None:
    meta = {"quantiles": [0.1, 0.5, 0.9], "horizon": 14, "lookback": 56, "features": ["dow_mon", "mystery"],
            "feature_spec": {"market": "UK", "campaigns": [], "season_lag": None}}
    export_model(DemandLSTM(2, hidden=8), tmp_path, TRAINED_AT, meta)
    with pytest.raises(ModelError, match="trained on features"):
        Forecaster.from_dir(tmp_path, device="cpu")
