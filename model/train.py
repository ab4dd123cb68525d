"""Train DemandLSTM on Online Retail and export it to the registry.

Split (time-based, no leakage): with T days of data, validation origins are the days whose whole
horizon lies in the last ``val_days`` days; training origins are every day with a full lookback
whose horizon ends before the validation period. A window is a (SKU, origin) pair; windows whose
history is all zero (SKU not yet on sale) are skipped. Each epoch trains on at most
``max_windows`` windows drawn afresh from all training windows (keeps a full run ~2-3 min on
2 cores); early stopping watches the validation pinball loss (scaled units) and the best epoch's
weights are exported. Validation also scores the seasonal-naive baseline on the same windows.

Features: the base calendar plus the festival features of ``market`` (UK by default, the shop is
in England) and the user's campaigns (:mod:`model.festivals`); the names and the spec go into the
metadata. Intervals are then recalibrated on the validation windows (:mod:`model.calibration`);
the factors are stored in the metadata and applied by :class:`model.predictor.Forecaster`. The
training loop itself is :func:`model.panel.fit`.

Example::

    >>> result = train(TrainConfig("data/online_retail.parquet", "models"))  # doctest: +SKIP
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from model.baselines import seasonal_naive
from model.calibration import apply_calibration, fit_calibration
from model.data import clean, daily_demand, load_raw
from model.datasets import long_format
from model.features import FeatureSpec, day_index
from model.festivals import load_campaigns
from model.panel import (
    NetConfig,
    Panel,
    Windows,
    fit,
    gather,
    make_windows,
    origin_ranges,
    predict,
    score,
)
from model.registry import export_model

__all__ = ["TrainConfig", "TrainResult", "Windows", "gather", "make_windows", "origin_ranges", "score", "train"]

Progress = Callable[[dict[str, Any]], None]
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
    market: str | None = "UK"
    """Built-in festival set (:data:`model.festivals.BUILTIN`); None = base calendar only."""
    campaigns_path: Path | str | None = None
    """YAML/JSON file of the shop's own campaigns (:func:`model.festivals.load_campaigns`)."""
    season_lag: int | None = None
    """Days back for the "same season last year" input (e.g. 364); needs over a year of data."""
    calibrate: bool = True
    """Stretch the intervals on the validation windows so they cover what they claim."""
    data_format: str = "online_retail"
    """``online_retail`` (the UCI order lines) or ``long``: a daily CSV/Parquet, one row per
    (series, timestamp) with the units in ``target_col`` (see :func:`model.datasets.long_format`)."""
    id_col: str = "sku"
    time_col: str = "date"
    target_col: str = "units"

    def spec(self) -> FeatureSpec:
        campaigns = load_campaigns(self.campaigns_path) if self.campaigns_path else ()
        return FeatureSpec(self.market, campaigns, self.season_lag)

    def net(self) -> NetConfig:
        return NetConfig(
            self.lookback, self.horizon, self.quantiles, self.hidden, self.epochs, self.batch_size, self.lr,
            self.weight_decay, self.dropout, self.patience, self.seed, self.max_windows, self.threads,
            self.season_lag, season_dropout=0.3 if self.season_lag else 0.0,
        )


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


def baseline_scores(units: np.ndarray, w: Windows, cfg: TrainConfig) -> dict[str, float]:
    """Seasonal naive (same weekday last week) on the validation windows, as a point forecast."""
    history, actual = gather(units, w, cfg.lookback, cfg.horizon)
    point = seasonal_naive(history, cfg.horizon)
    pred = np.repeat(point[..., None], len(cfg.quantiles), axis=-1)
    scale = np.maximum(history.mean(axis=1), 1.0)
    return score(pred, actual, scale, cfg.quantiles)


def load_daily(cfg: TrainConfig) -> tuple[list[str], date, np.ndarray]:
    """``(series, first day, units (n, T))`` from the configured source."""
    if cfg.data_format == "online_retail":
        return daily_demand(clean(load_raw(cfg.data_path)), top_n=cfg.top_n)
    if cfg.data_format != "long":
        raise ValueError(f"unknown data format {cfg.data_format!r}: use online_retail or long")
    data = long_format(cfg.data_path, cfg.id_col, cfg.time_col, cfg.target_col, "D", cfg.horizon, n_windows=1,
                       lookback=cfg.lookback)
    order = np.argsort(-data.values.sum(axis=1), kind="stable")[: cfg.top_n]
    return [data.series[i] for i in order], date.fromisoformat(data.periods[0]), data.values[order]


def daily_panel(units: np.ndarray, start_day: int, horizon: int, spec: FeatureSpec) -> Panel:
    """Daily units plus the spec's calendar for every day and ``horizon`` days beyond."""
    days = np.arange(start_day, start_day + units.shape[1] + horizon)
    return Panel(units, spec.calendar(days)[None], spec.calendar_names())


def _write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows([{k: row[k] for k in METRIC_COLUMNS} for row in rows])


def _tensorboard(out_dir: Path) -> Any:
    """A TensorBoard event writer under ``out_dir/tensorboard`` when tensorboard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: metrics.csv always has the same numbers
        return None
    return SummaryWriter(log_dir=str(out_dir / "tensorboard"))


def _utc_clock() -> datetime:
    return datetime.now(UTC)


def train(
    cfg: TrainConfig, progress: Progress | None = None, clock: Callable[[], datetime] = _utc_clock
) -> TrainResult:
    """Train, early-stop on validation pinball, calibrate, export; ``clock`` stamps the version."""
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skus, start_date, units = load_daily(cfg)
    spec = cfg.spec()
    start_day = day_index(start_date)
    panel = daily_panel(units, start_day, cfg.horizon, spec)
    train_origins, val_origins = origin_ranges(units.shape[1], cfg.lookback, cfg.horizon, cfg.val_days)
    train_w = make_windows(units, train_origins, cfg.lookback)
    val_w = make_windows(units, val_origins, cfg.lookback)
    _, val_actual = gather(units, val_w, cfg.lookback, cfg.horizon)
    baseline = baseline_scores(units, val_w, cfg)
    net_cfg = cfg.net()
    epochs: list[dict[str, float]] = []
    board = _tensorboard(out_dir)

    def on_epoch(row: dict[str, Any]) -> None:
        epochs.append({k: row[k] for k in METRIC_COLUMNS})
        _write_metrics(out_dir / "metrics.csv", epochs)
        if board is not None:
            for key in METRIC_COLUMNS:
                if key != "epoch":
                    board.add_scalar(key, float(row[key]), int(row["epoch"]))
        if progress is not None:
            progress(row)

    fitted = fit(panel, train_w, val_w, net_cfg, on_epoch)
    if board is not None:
        board.close()
    pred, scale = predict(fitted.net, panel, val_w, net_cfg)
    calibration = fit_calibration(pred, val_actual, cfg.quantiles) if cfg.calibrate else None
    calibrated = score(apply_calibration(pred, calibration), val_actual, scale, cfg.quantiles)

    last_train_day = start_date + timedelta(days=train_origins[-1] + cfg.horizon)
    metadata = _metadata(cfg, spec, skus, start_date, units.shape[1], last_train_day, fitted.best_epoch,
                         fitted.validation, baseline, len(train_w), len(val_w))
    metadata["calibration"] = calibration
    metadata["validation_calibrated"] = calibrated
    exported = export_model(fitted.net, out_dir, clock(), metadata)
    (out_dir / f"{exported.version}.metrics.csv").write_text((out_dir / "metrics.csv").read_text())
    return TrainResult(
        exported.version,
        exported.model_path,
        exported.metadata_path,
        fitted.best_epoch,
        fitted.epochs,
        fitted.validation,
        baseline,
        len(train_w),
        len(val_w),
        fitted.seconds,
        skus,
    )


def _metadata(
    cfg: TrainConfig,
    spec: FeatureSpec,
    skus: list[str],
    start_date: date,
    n_days: int,
    last_train_day: date,
    best_epoch: int,
    validation: dict[str, float],
    baseline: dict[str, float],
    n_train: int,
    n_val: int,
) -> dict[str, Any]:
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()}
    val_first = start_date + timedelta(days=n_days - cfg.val_days)
    return {
        "model": "DemandLSTM",
        "features": list(spec.names()),
        "feature_spec": spec.to_metadata(range(start_date.year, start_date.year + 30)),
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
        "validation": {"best_epoch": best_epoch, **validation},
        "baseline_seasonal_naive": baseline,
        "n_train_windows": n_train,
        "n_val_windows": n_val,
        "n_skus": len(skus),
        "seed": cfg.seed,
        "config": config,
    }
