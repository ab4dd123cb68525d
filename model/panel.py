"""Train and run a global DemandLSTM on any panel: ``n`` series x ``T`` periods plus covariates.

The Online Retail training (:mod:`model.train`) and every backtest (M5, Stallion, a user's CSV)
use this one loop. A :class:`Panel` holds the target ``values`` (n, T) and known-ahead
``covariates`` (1 or n, T_cov, F) with ``T_cov >= T`` (the extra periods are the future that a
final forecast needs). A window is a (series, origin) pair: the history is the ``lookback``
periods ending at the origin, the target the next ``horizon``; with ``season_lag`` the model also
sees last season's values (:func:`model.features.add_season_channels`).

Training: Adam with weight decay, dropout, gradient clipping, pinball loss in scaled units; each
epoch draws up to ``max_windows`` training windows afresh; early stopping on the validation pinball
keeps the best epoch's weights. Deterministic for a seed.

Example::

    >>> import numpy as np
    >>> panel = Panel(np.ones((3, 40), np.float32), np.zeros((1, 47, 2), np.float32))
    >>> cfg = NetConfig(lookback=14, horizon=7, hidden=8, epochs=1)
    >>> tr, va = origin_ranges(40, 14, 7, 7)
    >>> fitted = fit(panel, make_windows(panel.values, tr, 14), make_windows(panel.values, va, 14), cfg)
    >>> predict(fitted.net, panel, make_windows(panel.values, va, 14), cfg)[0].shape
    (3, 7, 3)
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from model.features import add_season_channels, window_scale
from model.lstm import DemandLSTM, pinball_loss
from model.metrics import coverage, mae, pinball, rmse

Progress = Callable[[dict[str, Any]], None]
EVAL_CHUNK = 2048


@dataclass(frozen=True)
class NetConfig:
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
    max_windows: int | None = 24_576
    threads: int = 2
    season_lag: int | None = None
    season_dropout: float = 0.0
    """Share of training windows whose last-season channels are hidden (teaches the short-history case)."""
    scale_weighted: bool = False
    """Weight each window's loss by its scale (mean units): the loss then tracks errors in units
    (MAE/WRMSSE on volume) instead of treating a 1-unit SKU like a 1,000-unit one."""


@dataclass(frozen=True)
class Panel:
    values: np.ndarray
    covariates: np.ndarray
    covariate_names: tuple[str, ...] = ()

    @property
    def n_covariates(self) -> int:
        return int(self.covariates.shape[-1])


@dataclass(frozen=True)
class Windows:
    """(series row, origin column) pairs; ``end`` is the last history period's column."""

    sku: np.ndarray
    end: np.ndarray

    def __len__(self) -> int:
        return int(self.sku.shape[0])

    def take(self, idx: np.ndarray) -> Windows:
        return Windows(self.sku[idx], self.end[idx])


@dataclass
class Fitted:
    net: DemandLSTM
    epochs: list[dict[str, float]]
    best_epoch: int
    validation: dict[str, float]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def origin_ranges(n_days: int, lookback: int, horizon: int, val_days: int) -> tuple[range, range]:
    """Origin columns (last history period) for training and validation windows."""
    first_val_day = n_days - val_days
    train = range(lookback - 1, first_val_day - horizon)
    val = range(max(first_val_day - 1, lookback - 1), n_days - horizon)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"{n_days} days cannot hold lookback {lookback} + horizon {horizon} of training "
            f"and {val_days} validation days"
        )
    return train, val


def make_windows(units: np.ndarray, origins: range | np.ndarray, lookback: int) -> Windows:
    """All (series, origin) pairs whose history window has any demand (series not yet on sale skipped)."""
    sku, end = np.meshgrid(np.arange(units.shape[0]), np.asarray(origins), indexing="ij")
    sku, end = sku.ravel(), end.ravel()
    # Cumulative sums give each window's history total without materialising the windows.
    csum = np.concatenate([np.zeros((units.shape[0], 1)), np.cumsum(units, axis=1, dtype=np.float64)], axis=1)
    started = (csum[sku, end + 1] - csum[sku, np.maximum(end + 1 - lookback, 0)]) > 0
    return Windows(sku[started].astype(np.int64), end[started].astype(np.int64))


def gather(units: np.ndarray, w: Windows, lookback: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """History (n, L) and target (n, H) of the windows (zeros past the end of ``units``)."""
    width = units.shape[1]
    cols = w.end[:, None] + np.arange(-lookback + 1, horizon + 1)[None, :]
    block = units[w.sku[:, None], np.clip(cols, 0, width - 1)]
    block = np.where((cols >= 0) & (cols < width), block, 0.0).astype(np.float32)
    return block[:, :lookback], block[:, lookback:]


def window_inputs(
    panel: Panel, w: Windows, cfg: NetConfig, keep_season: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Model inputs of windows, exactly as :func:`model.features.make_inputs` builds them."""
    lag = cfg.season_lag or 0
    long_history, _ = gather(panel.values, w, cfg.lookback + lag, 0)
    history = long_history[:, lag:]
    scale, log_scale = window_scale(history)
    cov_rows = w.sku if panel.covariates.shape[0] > 1 else np.zeros_like(w.sku)
    past_cols = w.end[:, None] + np.arange(-cfg.lookback + 1, 1)[None, :]
    future_cols = w.end[:, None] + np.arange(1, cfg.horizon + 1)[None, :]
    past = panel.covariates[cov_rows[:, None], past_cols]
    future = panel.covariates[cov_rows[:, None], future_cols]
    if lag:
        # Rows whose history does not reach back a full season get the "unavailable" flag.
        keep = w.end + 1 >= cfg.lookback + lag
        keep = keep if keep_season is None else keep & keep_season
        past, future = add_season_channels(long_history, cfg.lookback, cfg.horizon, scale, past, future, lag, keep)
    return {
        "history": (history / scale[:, None]).astype(np.float32),
        "past_calendar": past.astype(np.float32),
        "future_calendar": future.astype(np.float32),
        "log_scale": log_scale,
        "scale": scale,
    }


def n_inputs(panel: Panel, cfg: NetConfig) -> int:
    return panel.n_covariates + (2 if cfg.season_lag else 0)


def _tensors(x: dict[str, np.ndarray], device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    keys = ("history", "past_calendar", "future_calendar", "log_scale")
    return tuple(torch.from_numpy(np.ascontiguousarray(x[k])).to(device or "cpu") for k in keys)


def _batches(idx: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for lo in range(0, idx.shape[0], size):
        yield idx[lo : lo + size]


def predict(net: DemandLSTM, panel: Panel, w: Windows, cfg: NetConfig) -> tuple[np.ndarray, np.ndarray]:
    """(quantiles in units (n, H, Q), scale (n,)) for the windows, eval mode, no grad."""
    net.eval()
    preds, scales = [np.zeros((0, cfg.horizon, len(cfg.quantiles)), np.float32)], [np.zeros(0, np.float32)]
    with torch.inference_mode():
        for chunk in _batches(np.arange(len(w)), EVAL_CHUNK):
            x = window_inputs(panel, w.take(chunk), cfg)
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


def _train_epoch(
    net: DemandLSTM, opt: torch.optim.Optimizer, panel: Panel, w: Windows, cfg: NetConfig,
    q: torch.Tensor, rng: np.random.Generator,
) -> float:
    net.train()
    total, count = 0.0, 0
    for batch in _batches(np.arange(len(w)), cfg.batch_size):
        part = w.take(batch)
        keep = rng.random(len(part)) >= cfg.season_dropout if cfg.season_lag else None
        x = window_inputs(panel, part, cfg, keep)
        _, target = gather(panel.values, part, cfg.lookback, cfg.horizon)
        target_scaled = torch.from_numpy(target / x["scale"][:, None])
        pred = net(*_tensors(x))
        if cfg.scale_weighted:
            weight = torch.from_numpy(x["scale"] / x["scale"].mean())
            error = target_scaled.unsqueeze(-1) - pred
            per_window = torch.maximum(q * error, (q - 1.0) * error).mean(dim=(1, 2))
            loss = (per_window * weight).mean()
        else:
            loss = pinball_loss(pred, target_scaled, q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # bulk orders make rare huge targets
        opt.step()
        total += float(loss.detach()) * len(batch)
        count += len(batch)
    return total / max(count, 1)


def fit(
    panel: Panel, train_w: Windows, val_w: Windows, cfg: NetConfig, progress: Progress | None = None
) -> Fitted:
    """Train with early stopping on ``val_w``; returns the best epoch's network (eval mode)."""
    started = time.perf_counter()
    _, val_actual = gather(panel.values, val_w, cfg.lookback, cfg.horizon)
    prev_threads, prev_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        net = DemandLSTM(n_inputs(panel, cfg), cfg.hidden, cfg.horizon, cfg.quantiles, cfg.dropout)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        q = torch.tensor(cfg.quantiles, dtype=torch.float32)
        rows: list[dict[str, float]] = []
        best: tuple[float, int, dict[str, torch.Tensor], dict[str, float]] | None = None
        for epoch in range(1, cfg.epochs + 1):
            t0 = time.perf_counter()
            order = rng.permutation(len(train_w))[: cfg.max_windows]
            train_loss = _train_epoch(net, opt, panel, train_w.take(order), cfg, q, rng)
            pred, scale = predict(net, panel, val_w, cfg)
            val = score(pred, val_actual, scale, cfg.quantiles)
            row = {
                "epoch": epoch, "train_loss": train_loss, "val_loss": val["pinball"], "val_mae": val["mae"],
                "val_rmse": val["rmse"], "val_wape": val["wape"], "val_coverage": val["coverage"],
                "seconds": time.perf_counter() - t0,
            }
            rows.append(row)
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
    return Fitted(net, rows, best[1], best[3], time.perf_counter() - started)
