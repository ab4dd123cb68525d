"""DemandLSTM, training, export/registry and Forecaster: real (tiny) training on the real data."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from model.features import N_CALENDAR, day_index
from model.lstm import DemandLSTM, pinball_loss
from model.predictor import Forecaster, resolve_device
from model.registry import ModelError, export_model, load_latest, script_bytes
from model.train import TrainConfig, TrainResult, make_windows, origin_ranges, train

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail.parquet"
TRAINED_AT = datetime(2011, 12, 10, 6, 30, tzinfo=UTC)


def random_inputs(batch: int, lookback: int = 56, horizon: int = 14, spread: float = 5.0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    return (
        torch.rand(batch, lookback, generator=g) * spread,
        torch.randn(batch, lookback, N_CALENDAR, generator=g),
        torch.randn(batch, horizon, N_CALENDAR, generator=g),
        torch.randn(batch, generator=g) * spread,
    )


def test_quantiles_are_monotone_and_non_negative_even_for_wild_weights() -> None:
    torch.manual_seed(0)
    net = DemandLSTM(N_CALENDAR).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(25.0)  # push raw outputs far negative and positive
        out = net(*random_inputs(512, spread=50.0))
    assert out.shape == (512, 14, 3)
    assert torch.isfinite(out).all()
    assert (out >= 0).all()
    assert (out[..., 1:] >= out[..., :-1]).all()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
def test_torchscript_matches_eager() -> None:
    torch.manual_seed(0)
    net = DemandLSTM(N_CALENDAR, hidden=32, horizon=7, quantiles=(0.05, 0.5, 0.95, 0.99)).eval()
    scripted = torch.jit.load(io.BytesIO(script_bytes(net)))
    x = random_inputs(64, horizon=7)
    with torch.no_grad():
        torch.testing.assert_close(scripted(*x), net(*x), rtol=1e-5, atol=1e-6)
    assert scripted(*x).shape == (64, 7, 4)


def test_pinball_loss_weights_under_and_over_forecasts() -> None:
    q = torch.tensor([0.1, 0.9])
    pred = torch.tensor([[[2.0, 2.0]]])
    # actual 4 (under-forecast by 2): 0.1*2 and 0.9*2 -> mean 1.0; actual 0: 0.9*2, 0.1*2 -> 1.0
    assert float(pinball_loss(pred, torch.tensor([[4.0]]), q)) == pytest.approx(1.0)
    assert float(pinball_loss(torch.tensor([[[3.0, 3.0]]]), torch.tensor([[4.0]]), q)) == pytest.approx(0.5)


def test_validation_horizons_lie_after_every_training_target() -> None:
    train_o, val_o = origin_ranges(n_days=374, lookback=56, horizon=14, val_days=56)
    assert train_o[0] == 55 and train_o[-1] + 14 < 374 - 56  # last training target day before validation
    assert val_o[0] + 1 == 374 - 56 and val_o[-1] + 14 == 373
    with pytest.raises(ValueError, match="cannot hold"):
        origin_ranges(n_days=100, lookback=56, horizon=14, val_days=56)


def test_windows_skip_skus_not_yet_on_sale() -> None:
    units = np.zeros((2, 80), np.float32)
    units[0] = 1.0
    units[1, 70] = 5.0  # launched on day 70
    w = make_windows(units, range(55, 66), lookback=56)
    assert set(w.sku.tolist()) == {0}
    w = make_windows(units, range(55, 75), lookback=56)
    assert sorted(w.end[w.sku == 1].tolist()) == [70, 71, 72, 73, 74]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    cfg = TrainConfig(DATA, tmp_path_factory.mktemp("models"), top_n=30, epochs=2, max_windows=4096)
    seen: list[dict[str, float]] = []
    result = train(cfg, progress=seen.append, clock=lambda: TRAINED_AT)
    assert [row["epoch"] for row in seen] == [1, 2]
    assert {"train_loss", "val_loss", "val_mae", "val_rmse", "seconds"} <= set(seen[0])
    return result


def test_tiny_training_run_writes_a_loadable_model(tiny_run: TrainResult) -> None:
    out = tiny_run.model_path.parent
    assert tiny_run.version.startswith("lstm-20111210063000-")
    assert (out / "LATEST").read_text().strip() == tiny_run.version
    meta = json.loads(tiny_run.metadata_path.read_text())
    assert meta["horizon"] == 14 and meta["lookback"] == 56 and meta["quantiles"] == [0.1, 0.5, 0.9]
    assert meta["training_window"]["first"] == "2010-12-01"
    assert meta["validation_window"] == {"first": "2011-10-15", "last": "2011-12-09"}
    assert meta["training_window"]["last"] < meta["validation_window"]["first"]
    assert {"mae", "rmse", "pinball"} <= set(meta["validation"]) and meta["seed"] == 0
    with (out / "metrics.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert all(float(r["val_loss"]) > 0 for r in rows)


def test_tiny_model_beats_seasonal_naive_pinball(tiny_run: TrainResult) -> None:
    # Sanity, not a benchmark (the full run's numbers are in the report): two short epochs
    # already give better quantiles than repeating last week.
    assert np.isfinite(tiny_run.validation["mae"])
    assert tiny_run.validation["pinball"] < tiny_run.baseline["pinball"]


def test_forecaster_predicts_units_monotone_non_negative(tiny_run: TrainResult) -> None:
    fc = Forecaster.from_dir(tiny_run.model_path.parent, device="cpu")
    assert (fc.version, fc.horizon, fc.lookback, fc.quantiles) == (tiny_run.version, 14, 56, (0.1, 0.5, 0.9))
    rng = np.random.default_rng(0)
    n = 600  # more than one chunk
    history = rng.poisson(rng.uniform(0, 80, (n, 1)), (n, 56)).astype(np.float32)
    end_day = np.full(n, day_index(date(2011, 11, 20))) + rng.integers(0, 20, n)
    values = fc.predict(history, end_day)
    assert values.shape == (n, 14, 3) and values.dtype == np.float32
    assert (values >= 0).all() and (np.diff(values, axis=-1) >= 0).all()
    # Units, not scaled units: busier SKUs get bigger forecasts.
    level = history.mean(axis=1)
    assert values[level > 60, :, 1].mean() > 3 * values[level < 10, :, 1].mean()
    # Chunking changes nothing.
    np.testing.assert_allclose(fc.predict(history[300:310], end_day[300:310]), values[300:310], rtol=1e-5)


def test_cold_start_is_forecast_and_flagged(tiny_run: TrainResult) -> None:
    fc = Forecaster.from_dir(tiny_run.model_path.parent, device="cpu")
    short = np.array([[0.0, 3.0, 5.0, 4.0]], np.float32)  # 4 days of history, left-padded
    history = np.vstack([np.pad(short, ((0, 0), (52, 0))), np.full((1, 56), 9.0, np.float32)])
    values, flags = fc.predict_with_flags(history, np.array([15300, 15300]), np.array([3, 56]))
    assert flags == ["cold_start: 3 days of history", None]
    assert np.isfinite(values).all() and (values >= 0).all()
    np.testing.assert_allclose(fc.predict(short, np.array([15300])), values[:1], rtol=1e-6)
    with pytest.raises(ValueError, match="non-negative"):
        fc.predict(-history, np.array([15300, 15300]))


def test_checksum_mismatch_is_refused_with_a_clear_message(tiny_run: TrainResult, tmp_path: Path) -> None:
    src = tiny_run.model_path.parent
    for name in ("LATEST", tiny_run.model_path.name, tiny_run.metadata_path.name):
        (tmp_path / name).write_bytes((src / name).read_bytes())
    pt = tmp_path / tiny_run.model_path.name
    payload = bytearray(pt.read_bytes())
    payload[len(payload) // 2] ^= 0xFF  # one flipped byte
    pt.write_bytes(bytes(payload))
    with pytest.raises(ModelError) as err:
        load_latest(tmp_path)
    message = str(err.value)
    assert f"model file {pt} does not match the checksum in {pt.with_suffix('.json')}" in message
    assert "expected " in message and " got " in message and "retrain with `skucast train`" in message


def test_missing_pieces_are_model_errors(tiny_run: TrainResult, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="LATEST is missing"):
        load_latest(tmp_path)
    (tmp_path / "LATEST").write_text(tiny_run.version)
    with pytest.raises(ModelError, match=r"metadata .* is missing"):
        load_latest(tmp_path)
    meta = json.loads(tiny_run.metadata_path.read_text())
    (tmp_path / tiny_run.metadata_path.name).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"model file .* is missing"):
        load_latest(tmp_path)
    del meta["sha256"]
    (tmp_path / tiny_run.metadata_path.name).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="lacks sha256"):
        load_latest(tmp_path)


def test_export_points_latest_at_the_newest(tmp_path: Path) -> None:
    net = DemandLSTM(N_CALENDAR, hidden=8)
    meta = {"quantiles": [0.1, 0.5, 0.9], "horizon": 14, "lookback": 56, "features": []}
    first = export_model(net, tmp_path, datetime(2024, 1, 1, tzinfo=UTC), meta)
    second = export_model(DemandLSTM(N_CALENDAR, hidden=16), tmp_path, datetime(2024, 1, 2, tzinfo=UTC), meta)
    assert first.version != second.version
    assert load_latest(tmp_path).version == second.version
    assert first.model_path.exists()  # older versions stay for rollback


def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    cfg = TrainConfig(DATA, tmp_path / "a", top_n=8, epochs=1, max_windows=512, hidden=16)
    a = train(cfg, clock=lambda: TRAINED_AT)
    b = train(replace(cfg, out_dir=tmp_path / "b"), clock=lambda: TRAINED_AT)
    c = train(replace(cfg, out_dir=tmp_path / "c", seed=1), clock=lambda: TRAINED_AT)
    assert a.epochs[0]["train_loss"] == b.epochs[0]["train_loss"]
    assert a.validation == b.validation
    assert a.epochs[0]["train_loss"] != c.epochs[0]["train_loss"]


def test_auto_device_follows_cuda_availability() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forecasts_match_cpu(tiny_run: TrainResult) -> None:
    history = np.random.default_rng(3).poisson(12.0, (300, 56)).astype(np.float32)
    end_day = np.full(300, day_index(date(2011, 12, 1)))
    on_cpu = Forecaster.from_dir(tiny_run.model_path.parent, device="cpu").predict(history, end_day)
    on_gpu = Forecaster.from_dir(tiny_run.model_path.parent, device="cuda").predict(history, end_day)
    np.testing.assert_allclose(on_gpu, on_cpu, rtol=1e-3, atol=1e-3)
