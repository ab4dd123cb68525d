"""Alert lifecycle rules, pure: one SKU, one kind (surge or drop), one moment at a time.

``opened`` when the score crosses the threshold (unless the kind is cooling down after a recent
alert); ``updated`` when an open alert's severity rises (it never falls, so an alert does not
flap while a day fills in); ``resolved`` once a *later* day than the last breach looks normal
again — score back below the (lower) resolve threshold with enough of the day seen. The alert id
is stable: a hash of SKU, kind and the hour it opened.

The worker keeps :class:`AlertState` in Redis (:mod:`worker.alerting`); the offline evaluation
keeps it in a dict. Both call :func:`step`.

Example::

    >>> s, t = step(None, Moment("A1", "surge", day=100, hour=2410, breach=True, calm=False, severity="info"), 6)
    >>> t, s.severity
    ('opened', 'info')
    >>> step(s, Moment("A1", "surge", day=101, hour=2436, breach=False, calm=True, severity="info"), 6)[1]
    'resolved'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["surge", "drop"]
Transition = Literal["opened", "updated", "resolved"]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class AlertState:
    """What is remembered per SKU and kind: the current (or last) alert."""

    alert_id: str
    severity: str
    opened_hour: int
    """Local hour index (``day * 24 + hour``) at which the alert opened."""
    breach_day: int
    """Last local day index on which the score breached; window days up to it are reported."""
    resolved_hour: int | None = None
    """When it resolved; ``None`` while open."""

    @property
    def is_open(self) -> bool:
        return self.resolved_hour is None


@dataclass(frozen=True)
class Moment:
    """One SKU's scores at one moment, as far as the lifecycle needs them."""

    sku: str
    kind: Kind
    day: int
    hour: int
    """Local hour index of the moment."""
    breach: bool
    calm: bool
    """Normal enough to close an open alert (below the resolve threshold, enough of the day seen)."""
    severity: str


def alert_id(sku: str, kind: str, opened_hour: int) -> str:
    return hashlib.sha1(f"{sku}|{kind}|{opened_hour}".encode()).hexdigest()[:16]


def step(state: AlertState | None, m: Moment, cooldown_hours: float) -> tuple[AlertState | None, Transition | None]:
    """The next state and the transition to publish (``None``: nothing to say)."""
    if state is not None and state.is_open:
        if m.breach:
            rises = SEVERITY_RANK[m.severity] > SEVERITY_RANK[state.severity]
            nxt = replace(state, breach_day=max(state.breach_day, m.day),
                          severity=m.severity if rises else state.severity)
            return nxt, ("updated" if rises else None)
        if m.calm and m.day > state.breach_day:
            return replace(state, resolved_hour=m.hour), "resolved"
        return state, None
    if not m.breach:
        return state, None
    if state is not None and state.resolved_hour is not None and m.hour - state.resolved_hour < cooldown_hours:
        return state, None  # cooling down: the same kind of alert was just resolved
    opened = AlertState(alert_id(m.sku, m.kind, m.hour), m.severity, m.hour, m.day)
    return opened, "opened"


def projected_shortfall(stock: float, remaining_today: float, next_days: float, surge_ratio: float = 1.0) -> float:
    """Units short over the horizon if today's remaining demand runs at ``surge_ratio`` × forecast.

    >>> projected_shortfall(100.0, remaining_today=30.0, next_days=120.0, surge_ratio=2.0)
    80.0
    """
    demand = remaining_today * max(surge_ratio, 1.0) + next_days
    return float(max(demand - stock, 0.0))

