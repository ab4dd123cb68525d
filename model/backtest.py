"""Rolling-origin backtest: the global LSTM against seasonal naive, AutoETS and Croston, same windows.

Protocol (no leakage): the LSTM is trained once on the periods up to the first test origin (its
last ``val_periods`` give early stopping and the interval calibration); it then forecasts every
origin from the history up to that origin. Each baseline is refitted per series at every origin on
the same history (statsforecast: ``SeasonalNaive`` and ``AutoETS`` with 80 % intervals,
``CrostonOptimized`` point forecasts, meant for the intermittent series). Lower bounds are clipped
at zero for every model.

Metrics (see :func:`score_model`): MAE and RMSE of the median (point) forecast in units, MASE
(per series, scaled by the in-sample seasonal-naive MAE before the first origin, then averaged),
pinball loss over the model's quantiles in units, the 80 % interval coverage (p10..p90), and for
M5 the official WRMSSE at levels 1-3.

Example::

    >>> from model.datasets import stallion
    >>> report = run_backtest(stallion(), BacktestConfig(), out_dir="runs/stallion")   # doctest: +SKIP
    >>> report["models"]["lstm"]["mae"]                                                  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from model.calibration import apply_calibration, fit_calibration
from model.datasets import BacktestData
from model.panel import NetConfig, Panel, Windows, fit, gather, make_windows, origin_ranges, predict

Progress = Callable[[str], None]
INTERMITTENT_ZERO_SHARE = 0.3
"""A series with at least this share of zero periods before the first origin is intermittent."""


@dataclass(frozen=True)
class BacktestConfig:
    hidden: int = 64
    epochs: int = 30
    max_windows: int | None = 24_576
    batch_size: int = 256
    lr: float = 1e-3
    dropout: float = 0.1
    weight_decay: float = 1e-5
    patience: int = 4
    seeds: tuple[int, ...] = (0,)
    """Several seeds: their quantiles are averaged (a small ensemble)."""
    threads: int = 2
    calibrate: bool = True
    baselines: bool = True
    lookback: int | None = None
    season_lag: int | None = -1
    """-1: the data set's default; None: off."""
    scale_weighted: bool = False

    def net(self, data: BacktestData, seed: int) -> NetConfig:
        lag = data.season_lag if self.season_lag == -1 else self.season_lag
        return NetConfig(
            lookback=self.lookback or data.lookback, horizon=data.horizon, hidden=self.hidden, epochs=self.epochs,
            batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay, dropout=self.dropout,
            patience=self.patience, seed=seed, max_windows=self.max_windows, threads=self.threads, season_lag=lag,
            scale_weighted=self.scale_weighted,
        )


@dataclass
class Forecasts:
    """Quantile forecasts (n_series, n_origins, H, Q) of each model, and the actuals (n, O, H)."""

    actual: np.ndarray
    models: dict[str, np.ndarray]


def _all_windows(n_series: int, origins: list[int]) -> Windows:
    sku, end = np.meshgrid(np.arange(n_series), np.asarray(origins), indexing="ij")
    return Windows(sku.ravel().astype(np.int64), end.ravel().astype(np.int64))


def lstm_forecasts(
    data: BacktestData, cfg: BacktestConfig, progress: Progress | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Train on periods up to the first origin, forecast every origin: (n, O, H, 3) and a training log."""
    first = min(data.origins)
    panel = Panel(data.values, data.covariates, data.covariate_names)
    test_w = _all_windows(len(data.series), data.origins)
    preds, log = [], []
    for seed in cfg.seeds:
        net_cfg = cfg.net(data, seed)
        train_o, val_o = origin_ranges(first + 1, net_cfg.lookback, data.horizon, data.val_periods)
        seen = data.values[:, : first + 1]
        train_w, val_w = make_windows(seen, train_o, net_cfg.lookback), make_windows(seen, val_o, net_cfg.lookback)

        def on_epoch(row: dict[str, Any], seed: int = seed) -> None:
            if progress is not None:
                progress(f"{data.name} lstm seed {seed} epoch {row['epoch']}: train {row['train_loss']:.4f} "
                         f"val {row['val_loss']:.4f} (best {row['best_epoch']})")

        fitted = fit(panel, train_w, val_w, net_cfg, on_epoch)
        val_pred, _ = predict(fitted.net, panel, val_w, net_cfg)
        _, val_actual = gather(data.values, val_w, net_cfg.lookback, data.horizon)
        calibration = fit_calibration(val_pred, val_actual, net_cfg.quantiles) if cfg.calibrate else None
        test_pred, _ = predict(fitted.net, panel, test_w, net_cfg)
        preds.append((test_pred, calibration))
        log.append({"seed": seed, "best_epoch": fitted.best_epoch, "seconds": round(fitted.seconds, 1),
                    "n_train_windows": len(train_w), "n_val_windows": len(val_w), "calibration": calibration,
                    "val_coverage_raw": fitted.validation["coverage"], "config": asdict(net_cfg)})
    # Ensemble the raw quantiles, then calibrate the ensemble with the mean factors.
    mean_raw = np.mean([p for p, _ in preds], axis=0)
    cals = [c for _, c in preds if c]
    calibration = None
    if cals:
        calibration = {"median": cals[0]["median"], "factors": np.mean([c["factors"] for c in cals], axis=0).tolist()}
    out = apply_calibration(mean_raw, calibration)
    n, o = len(data.series), len(data.origins)
    return out.reshape(n, o, data.horizon, -1), {"runs": log, "calibration": calibration}


def baseline_forecasts(data: BacktestData, progress: Progress | None = None) -> dict[str, np.ndarray]:
    """statsforecast SeasonalNaive / AutoETS (80 % intervals) and CrostonOptimized, refitted per origin."""
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, CrostonOptimized, SeasonalNaive

    n, h = len(data.series), data.horizon
    out = {k: np.zeros((n, len(data.origins), h, 3), np.float32) for k in ("seasonal_naive", "auto_ets", "croston")}
    for j, origin in enumerate(data.origins):
        t0 = time.perf_counter()
        y = data.values[:, : origin + 1]
        df = pd.DataFrame({"unique_id": np.repeat(np.arange(n), y.shape[1]), "ds": np.tile(np.arange(y.shape[1]), n),
                           "y": y.ravel().astype(np.float64)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sf = StatsForecast(models=[AutoETS(season_length=data.season), SeasonalNaive(season_length=data.season)],
                               freq=1, n_jobs=1)
            fc = sf.forecast(df=df, h=h, level=[80]).sort_values(["unique_id", "ds"])
            cr = StatsForecast(models=[CrostonOptimized()], freq=1, n_jobs=1).forecast(df=df, h=h)
            cr = cr.sort_values(["unique_id", "ds"])
        for key, col in (("auto_ets", "AutoETS"), ("seasonal_naive", "SeasonalNaive")):
            lo, mid, hi = (fc[c].to_numpy(np.float32).reshape(n, h) for c in (f"{col}-lo-80", col, f"{col}-hi-80"))
            out[key][:, j] = np.maximum(np.stack([lo, mid, hi], axis=-1), 0.0)
        point = np.maximum(cr["CrostonOptimized"].to_numpy(np.float32).reshape(n, h), 0.0)
        out["croston"][:, j] = np.repeat(point[..., None], 3, axis=-1)
        if progress is not None:
            progress(f"{data.name} baselines origin {data.periods[origin]}: {time.perf_counter() - t0:.0f}s")
    return out


def actuals(data: BacktestData) -> np.ndarray:
    w = _all_windows(len(data.series), data.origins)
    _, target = gather(data.values, w, 1, data.horizon)
    return target.reshape(len(data.series), len(data.origins), data.horizon)


def mase_scales(data: BacktestData) -> np.ndarray:
    """In-sample seasonal-naive MAE per series, on the history before the first origin."""
    first = min(data.origins)
    scales = np.full(len(data.series), np.nan)
    for i, row in enumerate(data.values[:, : first + 1].astype(np.float64)):
        y = row[int(np.argmax(row != 0)) :]
        if y.size > data.season:
            scales[i] = np.mean(np.abs(y[data.season :] - y[: -data.season]))
    return scales


def score_model(
    pred: np.ndarray, actual: np.ndarray, scales: np.ndarray, quantiles: tuple[float, ...]
) -> dict[str, float]:
    """Metrics of ``pred`` (n, O, H, Q) against ``actual`` (n, O, H); see the module docstring."""
    median = pred[..., len(quantiles) // 2].astype(np.float64)
    err = median - actual
    ok = np.isfinite(scales) & (scales > 0)
    per_series = np.abs(err).mean(axis=(1, 2))[ok] / scales[ok]
    q = np.asarray(quantiles)
    diff = actual[..., None] - pred
    return {
        "mae": float(np.abs(err).mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "mase": float(per_series.mean()) if per_series.size else float("nan"),
        "pinball": float(np.maximum(q * diff, (q - 1) * diff).mean()),
        "coverage80": float(((actual >= pred[..., 0]) & (actual <= pred[..., -1])).mean()),
    }


def run_backtest(
    data: BacktestData, cfg: BacktestConfig, out_dir: str | Path | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Run every model on the same windows, score them, and write ``<name>.json`` + ``<name>.png``."""
    started = time.perf_counter()
    quantiles = (0.1, 0.5, 0.9)
    actual = actuals(data)
    lstm, lstm_log = lstm_forecasts(data, cfg, progress)
    models = {"lstm": lstm, **(baseline_forecasts(data, progress) if cfg.baselines else {})}
    scales = mase_scales(data)
    first = min(data.origins)
    zero_share = (data.values[:, : first + 1] == 0).mean(axis=1)
    intermittent = zero_share >= INTERMITTENT_ZERO_SHARE
    report: dict[str, Any] = {
        "dataset": data.name, "n_series": len(data.series), "horizon": data.horizon,
        "origins": [data.periods[o] for o in data.origins], "notes": data.notes,
        "n_intermittent": int(intermittent.sum()), "models": {}, "intermittent": {}, "lstm": lstm_log,
        "config": {k: v for k, v in asdict(cfg).items()},
    }
    for name, pred in models.items():
        report["models"][name] = score_model(pred, actual, scales, quantiles)
        if intermittent.any():
            report["intermittent"][name] = score_model(
                pred[intermittent], actual[intermittent], scales[intermittent], quantiles
            )
    if data.name == "m5":
        from model.m5 import wrmsse_l1_l3

        history = data.values[:, : first + 1]
        for name, pred in models.items():
            report["models"][name]["wrmsse"] = wrmsse_l1_l3(history, actual[:, 0], pred[:, 0, :, 1])
    report["seconds"] = round(time.perf_counter() - started, 1)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{data.name}.json").write_text(json.dumps(report, indent=2, default=float))
        plot_forecasts(data, actual, models, out / f"{data.name}.png")
    return report


def plot_forecasts(
    data: BacktestData, actual: np.ndarray, models: dict[str, np.ndarray], path: Path, n_plots: int = 4
) -> None:
    """Forecast vs actual for the biggest series: LSTM median and 80 % band, baselines' medians."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(-data.values.sum(axis=1))[:n_plots]
    first, h = min(data.origins), data.horizon
    fig, axes = plt.subplots(len(order), 1, figsize=(11, 2.8 * len(order)), squeeze=False)
    for ax, i in zip(axes[:, 0], order, strict=True):
        back = min(first + 1, 3 * h)
        ax.plot(range(first - back + 1, first + 1), data.values[i, first - back + 1 : first + 1], color="black", lw=1)
        for j, origin in enumerate(data.origins):
            x = np.arange(origin + 1, origin + 1 + h)
            ax.plot(x, actual[i, j], color="black", lw=1.2, label="actual" if j == 0 else None)
            lstm = models["lstm"][i, j]
            band = "LSTM 80%" if j == 0 else None
            ax.fill_between(x, lstm[:, 0], lstm[:, -1], color="tab:blue", alpha=0.25, label=band)
            ax.plot(x, lstm[:, 1], color="tab:blue", lw=1.2, label="LSTM p50" if j == 0 else None)
            for name, color in (("auto_ets", "tab:orange"), ("seasonal_naive", "tab:green")):
                if name in models:
                    ax.plot(x, models[name][i, j, :, 1], color=color, lw=0.9, ls="--", label=name if j == 0 else None)
        ax.set_title(f"{data.name}: {data.series[i]}", fontsize=9)
        ticks = ax.get_xticks()
        ax.set_xticks(ticks[(ticks >= 0) & (ticks < len(data.periods))])
        ax.set_xticklabels([data.periods[int(t)] for t in ax.get_xticks()], fontsize=7)
    axes[0, 0].legend(fontsize=7, ncol=5, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def with_overrides(cfg: BacktestConfig, **kwargs: Any) -> BacktestConfig:
    return replace(cfg, **{k: v for k, v in kwargs.items() if v is not None})
