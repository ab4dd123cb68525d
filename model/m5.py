"""M5 WRMSSE at levels 1-3 with the official evaluation weights and scales.

RMSSE of a series = sqrt(mean squared forecast error / mean squared one-step difference of its
history from its first non-zero day); a level's WRMSSE is the weight-averaged RMSSE of its series
(weights from ``weights_evaluation.csv.gz``, renormalised within the level). This reproduces the
published sNaive 0.560047 / 0.673050 / 0.717606 (tests/unit/test_m5_benchmark.py).

Example::

    >>> scores = wrmsse_l1_l3(history, actual, forecast)   # doctest: +SKIP
    >>> round(scores["L1"], 6)                              # doctest: +SKIP
    0.560047
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from model.datasets import M5_DIR, M5_LEVELS, M5_SERIES

_WEIGHT_KEYS = {
    "L1": ("Level1", ["Total"]),
    "L2": ("Level2", list(M5_LEVELS["L2"])),
    "L3": ("Level3", list(M5_LEVELS["L3"])),
}
PUBLISHED = {
    "sNaive": {"L1": 0.560047, "L2": 0.673050, "L3": 0.717606},
    "Naive": {"L1": 1.966796, "L2": 1.904404, "L3": 1.879622},
    "ES_bu": {"L1": 0.425653, "L2": 0.513529, "L3": 0.580058},
    "1st YJ_STU": {"L1": 0.198935, "L2": 0.309739, "L3": 0.399694},
}


def level_weights(m5_dir: Path = M5_DIR) -> dict[str, np.ndarray]:
    weights = pd.read_csv(m5_dir / "weights_evaluation.csv.gz")
    out = {}
    for level, (level_id, names) in _WEIGHT_KEYS.items():
        out[level] = weights[weights.Level_id == level_id].set_index("Agg_Level_1").loc[names, "weight"].to_numpy(float)
    return out


def rmsse_scale(history: np.ndarray) -> float:
    """Mean squared one-step difference from the first non-zero value on (the M5 rule)."""
    y = history[int(np.argmax(history != 0)) :].astype(np.float64)
    return float(np.mean(np.diff(y) ** 2))


def wrmsse_l1_l3(
    history: np.ndarray, actual: np.ndarray, forecast: np.ndarray, m5_dir: Path = M5_DIR
) -> dict[str, float]:
    """WRMSSE per level; rows of ``history`` (14, T), ``actual``/``forecast`` (14, 28) follow M5_SERIES."""
    weights = level_weights(m5_dir)
    row = {name: i for i, name in enumerate(M5_SERIES)}
    out = {}
    for level, names in M5_LEVELS.items():
        idx = [row[s] for s in names]
        mse = np.mean((actual[idx].astype(np.float64) - forecast[idx]) ** 2, axis=1)
        scales = np.asarray([rmsse_scale(history[i]) for i in idx])
        r = np.sqrt(mse / scales)
        out[level] = float((r * weights[level]).sum() / weights[level].sum())
    return out
