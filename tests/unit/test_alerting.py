"""Surge rule and alert lifecycle."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np

from model.surge import SurgeRule, is_surge, severity, surge_score
from worker.alerting import AlertTracker, Observation

NOW = datetime(2011, 12, 1, tzinfo=UTC)


def obs(day: int, observed: float, surging: bool, score: float = 5.0) -> Observation:
    return Observation("SKU1", date(2011, 12, day), NOW, observed, 10.0, 5.0, 15.0, score, surging)


def test_surge_needs_both_volume_and_factor() -> None:
    rule = SurgeRule(min_units=20, factor=3)
    observed = np.array([50.0, 50.0, 10.0])
    upper = np.array([10.0, 20.0, 1.0])
    assert is_surge(observed, upper, rule).tolist() == [True, False, False]


def test_score_is_excess_in_interval_widths() -> None:
    assert surge_score(np.array([25.0]), np.array([5.0]), np.array([15.0])).tolist() == [1.0]
    assert severity(12, SurgeRule()) == "critical" and severity(5, SurgeRule()) == "warning"


def test_lifecycle_opened_updated_resolved_with_stable_id() -> None:
    tracker = AlertTracker(SurgeRule())
    opened = tracker.observe([obs(1, 80, True, score=5)], "v1", NOW)
    assert [a.state for a in opened] == ["opened"] and opened[0].severity == "warning"
    assert tracker.observe([obs(1, 85, True, score=5)], "v1", NOW) == []  # deduplicated
    updated = tracker.observe([obs(1, 300, True, score=20)], "v1", NOW)
    assert [(a.state, a.severity) for a in updated] == [("updated", "critical")]
    assert tracker.observe([obs(1, 2, False)], "v1", NOW) == []  # same day: stays open
    resolved = tracker.observe([obs(2, 3, False)], "v1", NOW)
    assert [a.state for a in resolved] == ["resolved"]
    assert opened[0].alert_id == updated[0].alert_id == resolved[0].alert_id
