"""Interval recalibration on held-out windows (split-conformal style, pure numpy).

A pinball-trained network's p10..p90 band is often too narrow on new data (the skeleton's covered
~64 %). For each pair of quantiles symmetric around the median (``q`` and ``1 - q``) we find one
factor ``s`` that stretches both sides around the median, ``m ± s·(m - q_lo, q_hi - m)``, so that
the band covers ``1 - 2q`` of the held-out actuals; a quantile without a partner gets its own
one-sided factor. Results are clipped at zero and sorted along the quantile axis, so forecasts stay
non-negative and monotone.

Example::

    >>> import numpy as np
    >>> pred = np.array([[[4.0, 5.0, 6.0]]] * 100)           # band 4..6 around 5
    >>> actual = np.linspace(0, 10, 100)[:, None]              # far wider than the band
    >>> cal = fit_calibration(pred, actual, (0.1, 0.5, 0.9))
    >>> round(interval_coverage(apply_calibration(pred, cal), actual, 0, 2), 2)
    0.8
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FACTORS = np.round(np.arange(0.2, 6.0001, 0.01), 4)


def interval_coverage(pred: np.ndarray, actual: np.ndarray, lo: int, hi: int) -> float:
    return float(np.mean((actual >= pred[..., lo]) & (actual <= pred[..., hi])))


def _median_index(quantiles: Sequence[float]) -> int:
    return int(np.argmin(np.abs(np.asarray(quantiles) - 0.5)))


def fit_calibration(pred: np.ndarray, actual: np.ndarray, quantiles: Sequence[float]) -> dict[str, Any]:
    """Factors per quantile index (``{"median": j, "factors": [..]}``) fitted on ``pred`` (..., Q)."""
    q = [float(x) for x in quantiles]
    mid = _median_index(q)
    median = pred[..., mid].astype(np.float64)
    factors = [1.0] * len(q)
    done: set[int] = {mid}
    for j in range(len(q)):
        if j in done:
            continue
        partner = next((k for k in range(len(q)) if k not in done and k != j and abs(q[k] + q[j] - 1) < 1e-9), None)
        if partner is not None:
            lo, hi = sorted((j, partner), key=lambda k: q[k])
            target = q[hi] - q[lo]
            d_lo, d_hi = median - pred[..., lo], pred[..., hi] - median
            cover = [
                float(np.mean((actual >= np.maximum(median - s * d_lo, 0)) & (actual <= median + s * d_hi)))
                for s in FACTORS
            ]
            best = float(FACTORS[int(np.argmin(np.abs(np.asarray(cover) - target)))])
            factors[lo] = factors[hi] = best
            done |= {lo, hi}
        else:
            d = pred[..., j] - median
            share = [float(np.mean(actual <= np.maximum(median + s * d, 0))) for s in FACTORS]
            factors[j] = float(FACTORS[int(np.argmin(np.abs(np.asarray(share) - q[j])))])
            done.add(j)
    return {"median": mid, "factors": factors}


def apply_calibration(pred: np.ndarray, calibration: dict[str, Any] | None) -> np.ndarray:
    """Stretch ``pred`` (..., Q) around its median by the fitted factors; identity for ``None``."""
    if not calibration:
        return pred
    mid = int(calibration["median"])
    factors = np.asarray(calibration["factors"], dtype=np.float32)
    median = pred[..., mid : mid + 1]
    out = np.maximum(median + factors * (pred - median), 0.0)
    return np.sort(out, axis=-1).astype(pred.dtype, copy=False)
