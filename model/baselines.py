"""Reference forecasts the model must beat.

Example::

    >>> import numpy as np
    >>> seasonal_naive(np.arange(14, dtype=np.float32)[None, :], horizon=3).tolist()
    [[7.0, 8.0, 9.0]]
"""

from __future__ import annotations

import numpy as np


def seasonal_naive(history: np.ndarray, horizon: int, season: int = 7) -> np.ndarray:
    """Same weekday last week: step k (0-based) repeats history day ``L - season + k % season``.

    ``history`` (n, L) with ``L >= season``; returns (n, horizon) float32.
    """
    history = np.asarray(history, dtype=np.float32)
    lookback = history.shape[-1]
    if lookback < season:
        raise ValueError(f"seasonal naive needs at least {season} days of history, got {lookback}")
    idx = lookback - season + np.arange(horizon) % season
    return history[:, idx]
