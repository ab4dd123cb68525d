"""Surge scoring: how far today's observed demand lies beyond the forecast interval (pure numpy).

A first, simple rule: a SKU surges when today's units so far exceed both ``min_units`` and
``factor`` times the upper quantile forecast for today. The score is the excess in units of the
interval width, so severities compare across SKUs of very different volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SurgeRule:
    min_units: float = 20.0
    factor: float = 3.0
    critical_score: float = 10.0
    warning_score: float = 4.0


def surge_score(observed: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """(observed − upper) / interval width, width floored at one unit.

    >>> surge_score(np.array([30.0]), np.array([2.0]), np.array([10.0])).round(2).tolist()
    [2.5]
    """
    width = np.maximum(upper - lower, 1.0)
    return (observed - upper) / width


def is_surge(observed: np.ndarray, upper: np.ndarray, rule: SurgeRule) -> np.ndarray:
    return (observed >= rule.min_units) & (observed >= rule.factor * upper)


def severity(score: float, rule: SurgeRule) -> str:
    if score >= rule.critical_score:
        return "critical"
    if score >= rule.warning_score:
        return "warning"
    return "info"
