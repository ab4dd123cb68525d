"""Alert thresholds: the detector's settings, stored as JSON beside the model they were calibrated
for (``<version>.alerts.json``), and the search that calibrates them on a backtest.

The worker loads them with the model (:func:`worker.alerting.thresholds_for`); ``skucast
evaluate-alerts`` (:mod:`model.alert_eval`) finds the surge and drop cuts with
:func:`search_threshold` and writes them with :func:`save_thresholds`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Thresholds:
    """Alert thresholds (z units) and how they were calibrated; JSON beside the model."""

    surge: float = 4.0
    drop: float = 4.0
    resolve: float = 2.0
    """An open alert resolves only once the day's |z| is back below this (hysteresis)."""
    resolve_share: float = 0.5
    """... and at least this share of a later day has been seen."""
    window_days: int = 1
    """Days the surge score scans (the last 1..W, each against the forecast made before them)."""
    drop_window_days: int = 0
    """Days the drop score scans, the same way (0 = ``window_days``). A silence of several days is
    strong evidence only over several days: at a few order lines a day, two silent days are not."""
    past_days: int = 0
    """Over its last days a drop is judged against the lesser, a surge against the greater, of the
    forecast and what the SKU sold a day over this many days before the drop window (0 = the
    forecast alone)."""
    recent_hours: int = 2
    """Also score the trailing hours of today on their own, every window of :func:`scan_hours` up to
    this many (0 = only the whole day so far)."""
    margin: float = 1.0
    """Forecast error forgiven: surges are judged against expected × margin, drops against
    expected / margin (see :func:`margin_z`); 1 = plain Poisson."""
    min_units: float = 20.0
    """A surge needs at least this many units today (or in the window)."""
    min_expected_orders: float = 6.0
    """A drop needs at least this many expected order lines in its window."""
    settle_days: int = 0
    """Days after an alert of the other kind during which none of this kind is scored (0 = off)."""
    min_history_days: int = 28
    """No alerts for a SKU younger than this: a new product's ramp-up is not a surge."""
    warning_ratio: float = 3.0
    critical_ratio: float = 6.0
    """Severity: observed/expected (or expected/observed for drops) at least this."""
    false_alarm_rate: float = 0.001
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def drop_days(self) -> int:
        """Days the drop score looks back."""
        return self.drop_window_days or self.window_days

    @property
    def span_days(self) -> int:
        """Days of counts and forecasts the detector reads: the longer of the two windows."""
        return max(self.window_days, self.drop_days)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Thresholds:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        th = cls(**known)
        bad = (th.window_days < 1 or th.drop_window_days < 0 or th.past_days < 0 or th.recent_hours < 0
               or th.surge <= 0 or th.drop <= 0 or th.margin < 1 or th.settle_days < 0)
        if bad or not 0 < th.resolve_share <= 1:
            raise ValueError(f"implausible alert thresholds: {known}")
        return th


def thresholds_path(model_dir: str | Path, version: str) -> Path:
    return Path(model_dir) / f"{version}.alerts.json"


def load_thresholds(model_dir: str | Path, version: str) -> Thresholds | None:
    """The calibrated thresholds stored beside ``version``; ``None`` when there are none."""
    path = thresholds_path(model_dir, version)
    if not path.is_file():
        return None
    return Thresholds.from_dict(json.loads(path.read_text()))


def save_thresholds(model_dir: str | Path, version: str, thresholds: Thresholds) -> Path:
    path = thresholds_path(model_dir, version)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(thresholds.to_json())
    tmp.replace(path)
    return path


def search_threshold(alerts_at: Callable[[float], int], budget: float, low: float = 2.0, high: float = 12.0,
                     steps: int = 9) -> float:
    """Smallest threshold (to ~0.01) whose backtest raises at most ``budget`` alerts.

    ``alerts_at(t)`` replays the normal days with threshold ``t`` and counts the alerts opened;
    the count falls as ``t`` rises, so bisection finds the cut.
    """
    if alerts_at(low) <= budget:
        return low
    for _ in range(steps):
        mid = (low + high) / 2.0
        if alerts_at(mid) <= budget:
            high = mid
        else:
            low = mid
    return round(high, 3)
