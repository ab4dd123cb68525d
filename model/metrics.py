"""Forecast accuracy metrics (numpy): point errors in units, pinball loss, interval coverage.

Example::

    >>> import numpy as np
    >>> round(pinball(np.array([[[1.0, 2.0]]]), np.array([[3.0]]), (0.5, 0.9)), 3)
    0.95
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def mae(pred: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(pred.astype(np.float64) - actual)))


def rmse(pred: np.ndarray, actual: np.ndarray) -> float:
    return float(np.sqrt(np.mean((pred.astype(np.float64) - actual) ** 2)))


def pinball(pred: np.ndarray, actual: np.ndarray, quantiles: Sequence[float]) -> float:
    """Mean pinball loss over rows, steps and quantiles; ``pred`` (..., Q), ``actual`` (...)."""
    q = np.asarray(quantiles, dtype=np.float64)
    error = actual[..., None].astype(np.float64) - pred
    return float(np.mean(np.maximum(q * error, (q - 1.0) * error)))


def coverage(lower: np.ndarray, upper: np.ndarray, actual: np.ndarray) -> float:
    """Share of actuals inside ``[lower, upper]``."""
    return float(np.mean((actual >= lower) & (actual <= upper)))
