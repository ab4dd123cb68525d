"""Forecaster: a loaded TorchScript model behind a numpy, batch-first API.

History rows shorter than the model's lookback are left-padded with zeros (a young SKU); longer
rows use their last ``lookback`` days. A model trained with a ``season_lag`` (metadata
``feature_spec``) also reads last year's values from rows at least ``lookback + season_lag`` days
long -- the *long history* path; with shorter rows it forecasts without them (trained for that).
The interval calibration stored in the metadata is applied to every forecast.
Outputs are units, (n, H, Q) float32, monotone in Q and
non-negative (guaranteed by the network's construction).

A SKU with under :data:`COLD_START_DAYS` days of history is still forecast by the model, from its
(mostly zero) window, and :meth:`Forecaster.predict_with_flags` says so:
``"cold_start: N days of history"``.

Example::

    >>> fc = Forecaster.from_dir("models", device="auto")        # doctest: +SKIP
    >>> fc.predict(history, end_day).shape                       # doctest: +SKIP
    (n, 14, 3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch

from model.calibration import apply_calibration
from model.features import FeatureSpec, make_inputs
from model.registry import LoadedModel, ModelError, load_latest

COLD_START_DAYS = 14
CHUNK_ROWS = 256
DeviceChoice = Literal["auto", "cpu", "cuda"]


def resolve_device(device: DeviceChoice | str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _fit_lookback(history: np.ndarray, lookback: int, keep: int) -> np.ndarray:
    """Left-pad to ``lookback`` days, or cut to the last ``keep`` (>= lookback) days."""
    if history.shape[1] >= lookback:
        return history[:, max(history.shape[1] - keep, 0) :]
    pad = np.zeros((history.shape[0], lookback - history.shape[1]), dtype=np.float32)
    return np.concatenate([pad, history], axis=1)


class Forecaster:
    def __init__(self, loaded: LoadedModel) -> None:
        meta = loaded.metadata
        # Models from before festivals carry no feature_spec: the base calendar only.
        self.spec = FeatureSpec.from_metadata(meta.get("feature_spec"))
        calendar = list(meta["features"])
        if calendar != list(self.spec.names()):
            raise ModelError(
                f"model {loaded.version} was trained on features {calendar}, this code "
                f"builds {list(self.spec.names())}; retrain with `skucast train`"
            )
        self.calibration = meta.get("calibration")
        self._loaded = loaded
        self.version: str = loaded.version
        self.horizon: int = int(meta["horizon"])
        self.lookback: int = int(meta["lookback"])
        self.quantiles: tuple[float, ...] = tuple(float(q) for q in meta["quantiles"])
        self.device: torch.device = loaded.device

    @classmethod
    def from_dir(cls, model_dir: str | Path, device: DeviceChoice | str = "auto") -> Forecaster:
        return cls(load_latest(model_dir, resolve_device(device)))

    def _check(self, history: np.ndarray, end_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        history = np.asarray(history, dtype=np.float32)
        end_day = np.asarray(end_day, dtype=np.int64).reshape(-1)
        if history.ndim != 2 or history.shape[0] != end_day.shape[0]:
            raise ValueError(f"history (n, L) and end_day (n,) expected; got {history.shape}, {end_day.shape}")
        if not np.all(np.isfinite(history)) or np.any(history < 0):
            raise ValueError("history units must be finite and non-negative")
        keep = self.lookback + (self.spec.season_lag or 0)
        return _fit_lookback(history, self.lookback, keep), end_day

    def predict(self, history_units: np.ndarray, end_day: np.ndarray) -> np.ndarray:
        """Quantile forecasts in units for days ``end_day + 1 .. end_day + H``: (n, H, Q) float32.

        ``history_units`` (n, W): W may be shorter than the lookback (left-padded), or longer,
        up to ``lookback + season_lag`` days for a model that uses last year's season.
        """
        history, end_day = self._check(history_units, end_day)
        out = np.empty((history.shape[0], self.horizon, len(self.quantiles)), dtype=np.float32)
        with torch.inference_mode():
            for lo in range(0, history.shape[0], CHUNK_ROWS):
                hi = lo + CHUNK_ROWS
                x = make_inputs(history[lo:hi], end_day[lo:hi], self.horizon, self.spec, self.lookback)
                scaled = self._loaded.module(
                    *(
                        torch.from_numpy(x[key]).to(self.device)
                        for key in ("history", "past_calendar", "future_calendar", "log_scale")
                    )
                )
                out[lo:hi] = scaled.float().cpu().numpy() * x["scale"][:, None, None]
        return apply_calibration(out, self.calibration)

    def predict_with_flags(
        self, history_units: np.ndarray, end_day: np.ndarray, history_days: np.ndarray
    ) -> tuple[np.ndarray, list[str | None]]:
        """:meth:`predict` plus, per row, the fallback note for SKUs with too little history."""
        values = self.predict(history_units, end_day)
        days = np.asarray(history_days, dtype=np.int64).reshape(-1)
        if days.shape[0] != values.shape[0]:
            raise ValueError("history_days needs one entry per row")
        flags: list[str | None] = [
            f"cold_start: {int(d)} days of history" if d < COLD_START_DAYS else None for d in days
        ]
        return values, flags
