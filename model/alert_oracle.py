"""What any detector could find at the false-alarm budget: the alert evaluation's ceiling.

An injected event multiplies a SKU's order-line rate by ``k`` (a surge) or ``1 / k`` (a drop)
over known hours. Give a detector every advantage: it knows the SKU's true normal rate hour by
hour, the counts are exactly Poisson (real demand is lumpier), and it only has to decide, for this
one SKU and these hours, "event or not". A detector that raises at most ``r`` false alarms per
normal SKU-day alerts inside an event's match window (its hours plus the grace) on a normal stretch
with probability at most ``r × days spanned`` (a union bound), so it is a test of that size. By the
Neyman–Pearson lemma no test of that size finds the event more often than the likelihood-ratio
test, which here only counts the event's order lines (the ratio grows with the count for a surge
and shrinks for a drop; hours after the event are normal and carry no evidence). Its power is
therefore an upper bound on any detector's chance to find the event, and the power over the
event's first ``quick_hours`` hours bounds the chance to find it that soon.

Averaged over the injected events these give the ceiling of recall, and of the share of events
found within two hours: a median detection delay of at most two hours at recall ``R`` needs at
least ``R / 2`` of all events found within two hours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from model.alert_inject import Event

_MAX_COUNT = 100_000
_LOG_FACTORIALS = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1.0, _MAX_COUNT + 1)))])


def poisson_pmf(lam: float, top: int) -> np.ndarray:
    """P(X = 0..top) for X ~ Poisson(``lam``)."""
    k = np.arange(top + 1)
    if lam <= 0.0:
        return (k == 0).astype(np.float64)
    return np.exp(k * math.log(lam) - lam - _LOG_FACTORIALS[: top + 1])


def poisson_tail(observed: float, expected: float, upper: bool) -> float:
    """P(X >= observed) (``upper``) or P(X <= observed) for X ~ Poisson(expected).

    >>> round(poisson_tail(0, 3.0, upper=False), 4)
    0.0498
    """
    k, lam = int(observed), max(float(expected), 1e-12)
    if upper:
        return max(1.0 - float(poisson_pmf(lam, k - 1).sum()), 0.0) if k > 0 else 1.0
    return min(float(poisson_pmf(lam, k).sum()), 1.0)


def most_powerful_power(expected: float, factor: float, alpha: float) -> float:
    """Power of the most powerful size-``alpha`` test of Poisson(``expected``) against
    Poisson(``factor × expected``): large counts reject for ``factor`` > 1, small ones below 1,
    the boundary count randomised so the size is exactly ``alpha``.

    >>> round(most_powerful_power(3.0, 1.0, 0.01), 6)   # no change: found as often as a false alarm
    0.01
    >>> round(most_powerful_power(3.0, 1e-9, math.exp(-3.0)), 3)  # a silence of a 3-a-day SKU
    1.0
    """
    alpha = min(max(float(alpha), 0.0), 1.0)
    lam0, lam1 = max(float(expected), 0.0), max(float(expected) * float(factor), 0.0)
    big = max(lam0, lam1)
    top = min(int(big + 12.0 * math.sqrt(big + 1.0) + 30.0), _MAX_COUNT)
    p0, p1 = poisson_pmf(lam0, top), poisson_pmf(lam1, top)
    if factor > 1.0:  # reject the largest counts first
        p0, p1 = p0[::-1], p1[::-1]
    used = np.cumsum(p0)
    full = int(np.searchsorted(used, alpha, side="right"))  # outcomes rejected outright
    power = float(p1[:full].sum())
    if full < p0.size and p0[full] > 0.0:
        left = alpha - (used[full - 1] if full else 0.0)
        power += left / p0[full] * p1[full]
    return float(min(power, 1.0))


@dataclass(frozen=True)
class Ceiling:
    found: np.ndarray
    """Per event: the most often any detector within the budget could find it at all."""
    quick: np.ndarray
    """Per event: ... within ``quick_hours`` of its start."""
    quick_hours: int


def days_spanned(first_hour: int, end_hour: int) -> int:
    """Local days touched by the hours ``first_hour .. end_hour - 1``."""
    return (end_hour - 1) // 24 - first_hour // 24 + 1


def ceiling(events: list[Event], hourly_normal: list[np.ndarray], false_alarm_rate: float, grace_hours: int,
            quick_hours: int = 2) -> Ceiling:
    """The ceiling of each event (see the module docstring).

    ``hourly_normal[j]`` holds event ``j``'s expected order lines per hour at the SKU's normal rate.
    """
    found, quick = np.zeros(len(events)), np.zeros(len(events))
    for j, (e, lam) in enumerate(zip(events, hourly_normal, strict=True)):
        alpha = false_alarm_rate * days_spanned(e.start_hour, e.end_hour + grace_hours)
        factor = e.size if e.kind == "surge" else 1.0 / e.size
        found[j] = most_powerful_power(float(np.sum(lam)), factor, alpha)
        quick[j] = most_powerful_power(float(np.sum(lam[:quick_hours])), factor, alpha)
    return Ceiling(found, quick, quick_hours)
