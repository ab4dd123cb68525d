"""Alert lifecycle per SKU: opened → updated (severity changed) → resolved, with stable ids."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime

from model.surge import SurgeRule, severity
from streams.contracts import AlertEvent


@dataclass
class _OpenAlert:
    alert_id: str
    day: date
    severity: str


@dataclass(frozen=True)
class Observation:
    sku: str
    day: date
    event_time: datetime
    observed: float
    expected: float
    lower: float
    upper: float
    score: float
    surging: bool


class AlertTracker:
    """Turns per-batch surge observations into lifecycle events; one open alert per SKU."""

    def __init__(self, rule: SurgeRule) -> None:
        self._rule = rule
        self._open: dict[str, _OpenAlert] = {}

    def observe(self, obs: list[Observation], model_version: str, now: datetime) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        for o in obs:
            current = self._open.get(o.sku)
            if o.surging:
                sev = severity(o.score, self._rule)
                if current is None:
                    alert_id = hashlib.sha1(f"{o.sku}|{o.day}|surge".encode()).hexdigest()[:16]
                    self._open[o.sku] = _OpenAlert(alert_id, o.day, sev)
                    events.append(self._event(alert_id, "opened", sev, o, model_version, now))
                elif sev != current.severity:
                    current.severity = sev
                    events.append(self._event(current.alert_id, "updated", sev, o, model_version, now))
            elif current is not None and o.day > current.day:
                # A new day within its forecast interval closes yesterday's surge.
                del self._open[o.sku]
                events.append(self._event(current.alert_id, "resolved", current.severity, o, model_version, now))
        return events

    @staticmethod
    def _event(
        alert_id: str, state: str, sev: str, o: Observation, model_version: str, now: datetime
    ) -> AlertEvent:
        return AlertEvent(
            alert_id=alert_id,
            sku=o.sku,
            state=state,  # type: ignore[arg-type]
            kind="surge",
            severity=sev,  # type: ignore[arg-type]
            day=o.day,
            event_time=o.event_time,
            observed=round(o.observed, 3),
            expected=round(o.expected, 3),
            lower=round(o.lower, 3),
            upper=round(o.upper, 3),
            score=round(o.score, 3),
            model_version=model_version,
            made_at=now,
        )
