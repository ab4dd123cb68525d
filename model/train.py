"""Train DemandLSTM on Online Retail and export it to the registry.

Split (time-based, no leakage): with T days of data, validation origins are the days whose whole
horizon lies in the last ``val_days`` days; training origins are every day with a full lookback
whose horizon ends before the validation period. A window is a (SKU, origin) pair; windows whose
history is all zero (SKU not yet on sale) are skipped. Each epoch trains on at most
``max_windows`` windows drawn afresh from all training windows (keeps a full run ~2-3 min on
2 cores); early stopping watches the validation pinball loss (scaled units) and the best epoch's
weights are exported. Validation also scores the seasonal-naive baseline on the same windows.

Example::

    >>> result = train(TrainConfig("data/online_retail.parquet", "models"))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import csv
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.baselines import seasonal_naive
from model.data import clean, daily_demand, load_raw
from model.features import CALENDAR_FEATURES, N_CALENDAR, day_index, make_inputs
from model.lstm import DemandLSTM, pinball_loss
from model.metrics import coverage, mae, pinball, rmse
from model.registry import export_model

Progress = Callable[[dict[str, Any]], None]
EVAL_CHUNK = 2048
METRIC_COLUMNS = ("epoch", "train_loss", "val_loss", "val_mae", "val_rmse", "val_wape", "val_coverage", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    data_path: Path | str
    out_dir: Path | str
    top_n: int = 500
    lookback: int = 56
    horizon: int = 14
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    hidden: int = 64
    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-5
    dropout: float = 0.1
    patience: int = 4
    seed: int = 0
    val_days: int = 56
    max_windows: int | None = 24_576
    """Training windows drawn per epoch (None = all ~120k; ~5x slower per epoch)."""
    threads: int = 2


@dataclass(frozen=True)
class TrainResult:
    version: str
    model_path: Path
    metadata_path: Path
    best_epoch: int
    epochs: list[dict[str, float]]
    validation: dict[str, float]
    baseline: dict[str, float]
    n_train_windows: int
    n_val_windows: int
    seconds: float
    skus: list[str] = field(repr=False)


@dataclass(frozen=True)
class Windows:
    """(SKU row, origin day offset) pairs; ``end`` is the last history day's column in units."""

    sku: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return int(self.sku.shape[0])

    def take(self, idx: np.ndarray) -> Windows:
        return Windows(self.sku[idx], self.end[idx])


def origin_ranges(n_days: int, lookback: int, horizon: int, val_days: int) -> tuple[range, range]:
    """Origin columns (last history day) for training and validation windows."""
    first_val_day = n_days - val_days
    train = range(lookback - 1, first_val_day - horizon)
    val = range(max(first_val_day - 1, lookback - 1), n_days - horizon)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"{n_days} days cannot hold lookback {lookback} + horizon {horizon} of training "
            f"and {val_days} validation days"
        )
    return train, val


def make_windows(units: np.ndarray, origins: range, lookback: int) -> Windows:
    sku, end = np.meshgrid(np.arange(units.shape[0]), np.asarray(origins), indexing="ij")
    sku, end = sku.ravel(), end.ravel()
    # Cumulative sums give each window's history total without materialising the windows.
    csum = np.concatenate([np.zeros((units.shape[0], 1)), np.cumsum(units, axis=1, dtype=np.float64)], axis=1)
    started = (csum[sku, end + 1] - csum[sku, end + 1 - lookback]) > 0
    return Windows(sku[started].astype(np.int64), end[started].astype(np.int64))


def gather(units: np.ndarray, w: Windows, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """History (n, L) and target (n, H) units of the windows."""
    cols = w.end[:, None] + np.arange(-lookback + 1, horizon + 1)[None, :]
    block = units[w.sku[:, None], cols]
    return block[:, :lookback], block[:, lookback:]


def _tensors(x: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(x[k]) for k in ("history", "past_calendar", "future_calendar", "log_scale"))


def _batches(idx: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for lo in range(0, idx.shape[0], size):
        yield idx[lo : lo + size]


def predict_units(
    net: DemandLSTM, units: np.ndarray, w: Windows, start_day: int, cfg: TrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(quantiles in units (n, H, Q), scale (n,)) for the windows, eval mode, no grad."""
    net.eval()
    preds, scales = [], []
    with torch.inference_mode():
        for chunk in _batches(np.arange(len(w)), EVAL_CHUNK):
            part = w.take(chunk)
            history, _ = gather(units, part, cfg.lookback, cfg.horizon)
            x = make_inputs(history, start_day + part.end, cfg.horizon)
            preds.append(net(*_tensors(x)).numpy() * x["scale"][:, None, None])
            scales.append(x["scale"])
    return np.concatenate(preds), np.concatenate(scales)


def score(pred: np.ndarray, actual: np.ndarray, scale: np.ndarray, quantiles: tuple[float, ...]) -> dict[str, float]:
    """Pinball (scaled units), MAE/RMSE/WAPE of the median (units), and interval coverage."""
    median = pred[..., len(quantiles) // 2]
    return {
        "pinball": pinball(pred / scale[:, None, None], actual / scale[:, None], quantiles),
        "mae": mae(median, actual),
        "rmse": rmse(median, actual),
        "wape": float(np.abs(median - actual).sum() / max(float(actual.sum()), 1e-9)),
        "coverage": coverage(pred[..., 0], pred[..., -1], actual),
    }


def baseline_scores(units: np.ndarray, w: Windows, cfg: TrainConfig) -> dict[str, float]:
    """Seasonal naive (same weekday last week) on the validation windows, as a point forecast."""
    history, actual = gather(units, w, cfg.lookback, cfg.horizon)
    point = seasonal_naive(history, cfg.horizon)
    pred = np.repeat(point[..., None], len(cfg.quantiles), axis=-1)
    scale = np.maximum(history.mean(axis=1), 1.0)
    return score(pred, actual, scale, cfg.quantiles)


def _train_epoch(
    net: DemandLSTM,
    opt: torch.optim.Optimizer,
    units: np.ndarray,
    w: Windows,
    start_day: int,
    cfg: TrainConfig,
    q: torch.Tensor,
) -> float:
    net.train()
    total, count = 0.0, 0
    for batch in _batches(np.arange(len(w)), cfg.batch_size):
        part = w.take(batch)
        history, target = gather(units, part, cfg.lookback, cfg.horizon)
        x = make_inputs(history, start_day + part.end, cfg.horizon)
        target_scaled = torch.from_numpy(target / x["scale"][:, None])
        loss = pinball_loss(net(*_tensors(x)), target_scaled, q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # bulk orders make rare huge targets
        opt.step()
        total += float(loss.detach()) * len(batch)
        count += len(batch)
    return total / max(count, 1)


def _write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows([{k: row[k] for k in METRIC_COLUMNS} for row in rows])


def _utc_clock() -> datetime:
    return datetime.now(UTC)


def train(
    cfg: TrainConfig, progress: Progress | None = None, clock: Callable[[], datetime] = _utc_clock
) -> TrainResult:
    """Train, early-stop on validation pinball, export the best epoch; ``clock`` stamps the version."""
    started = time.perf_counter()
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skus, start_date, units = daily_demand(clean(load_raw(cfg.data_path)), top_n=cfg.top_n)
    start_day = day_index(start_date)
    train_origins, val_origins = origin_ranges(units.shape[1], cfg.lookback, cfg.horizon, cfg.val_days)
    train_w = make_windows(units, train_origins, cfg.lookback)
    val_w = make_windows(units, val_origins, cfg.lookback)
    _, val_actual = gather(units, val_w, cfg.lookback, cfg.horizon)
    baseline = baseline_scores(units, val_w, cfg)

    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        net = DemandLSTM(N_CALENDAR, cfg.hidden, cfg.horizon, cfg.quantiles, cfg.dropout)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        q = torch.tensor(cfg.quantiles, dtype=torch.float32)
        history: list[dict[str, float]] = []
        best: tuple[float, int, dict[str, torch.Tensor], dict[str, float]] | None = None
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            order = rng.permutation(len(train_w))[: cfg.max_windows]
            train_loss = _train_epoch(net, opt, units, train_w.take(order), start_day, cfg, q)
            pred, scale = predict_units(net, units, val_w, start_day, cfg)
            val = score(pred, val_actual, scale, cfg.quantiles)
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val["pinball"],
                "val_mae": val["mae"],
                "val_rmse": val["rmse"],
                "val_wape": val["wape"],
                "val_coverage": val["coverage"],
                "seconds": time.perf_counter() - t0,
            }
            history.append(row)
            _write_metrics(out_dir / "metrics.csv", history)
            if best is None or val["pinball"] < best[0]:
                best = (val["pinball"], epoch, copy.deepcopy(net.state_dict()), val)
            if progress is not None:
                progress({**row, "epochs": cfg.epochs, "best_epoch": best[1]})
            if epoch - best[1] >= cfg.patience:
                break
        assert best is not None  # epochs >= 1
        net.load_state_dict(best[2])
        net.eval()
    finally:
        torch.set_num_threads(prev_threads)
        torch.use_deterministic_algorithms(prev_det)

    last_train_day = start_date + timedelta(days=train_origins[-1] + cfg.horizon)
    metadata = _metadata(
        cfg, skus, start_date, units.shape[1], last_train_day, best, baseline, len(train_w), len(val_w)
    )
    exported = export_model(net, out_dir, clock(), metadata)
    (out_dir / f"{exported.version}.metrics.csv").write_text((out_dir / "metrics.csv").read_text())
    return TrainResult(
        exported.version,
        exported.model_path,
        exported.metadata_path,
        best[1],
        history,
        best[3],
        baseline,
        len(train_w),
        len(val_w),
        time.perf_counter() - started,
        skus,
    )


def _metadata(
    cfg: TrainConfig,
    skus: list[str],
    start_date: date,
    n_days: int,
    last_train_day: date,
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, float]],
    baseline: dict[str, float],
    n_train: int,
    n_val: int,
) -> dict[str, Any]:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    val_first = start_date + timedelta(days=n_days - cfg.val_days)
    return {
        "model": "DemandLSTM",
        "features": list(CALENDAR_FEATURES),
        "inputs": ["history (units / scale)", "past_calendar", "future_calendar", "log_scale (log1p mean)"],
        "scale_rule": "max(mean of the lookback window, 1)",
        "quantiles": list(cfg.quantiles),
        "horizon": cfg.horizon,
        "lookback": cfg.lookback,
        "training_window": {"first": start_date.isoformat(), "last": last_train_day.isoformat()},
        "validation_window": {
            "first": val_first.isoformat(),
            "last": (start_date + timedelta(days=n_days - 1)).isoformat(),
        },
        "validation": {"best_epoch": best[1], **best[3]},
        "baseline_seasonal_naive": baseline,
        "n_train_windows": n_train,
        "n_val_windows": n_val,
        "n_skus": len(skus),
        "seed": cfg.seed,
        "config": config,
    }
