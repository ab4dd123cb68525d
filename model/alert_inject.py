"""Synthetic surges and drops injected into real order lines, for the alert evaluation.

An event has a SKU, a kind, a start, a length and a size ``k`` (2x..10x):

* **surge** — for the event's hours the SKU's buyers arrive at ``k`` times their normal rate: each
  hour gets ``Poisson((k - 1) × λ_h)`` extra order lines, where ``λ_h`` is the SKU's mean order
  lines per trading day over the 4 weeks around the event times the hour's share of a day
  (:mod:`model.nowcast`), each line a quantity drawn from the SKU's own recent order sizes.
  Lengths run from a few hours (a flash sale, a viral post) to days.
* **drop** — from local midnight, for whole days, each real order line survives with probability
  ``1 / k`` (a stock-out or a broken listing when ``k`` is large). A drop lasting hours is not
  injected: at these volumes (a few order lines per day) an hour without orders is normal, so
  there is nothing to detect.

Events start on trading days (the shop closes on Saturdays) and only in *eligible* SKUs: those
selling at least ``min_orders_per_day`` order lines per trading day over the 4 weeks around.
Events on one SKU are kept apart, so each can be told from the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from model.nowcast import DEFAULT_PROFILE, HourProfile

HISTORY_DAYS = 28


@dataclass(frozen=True)
class Lines:
    """Order lines as parallel arrays: SKU row, local day index, local hour of day, quantity."""

    sku: np.ndarray
    day: np.ndarray
    hour: np.ndarray
    quantity: np.ndarray

    def select(self, keep: np.ndarray) -> Lines:
        return Lines(self.sku[keep], self.day[keep], self.hour[keep], self.quantity[keep])

    @staticmethod
    def concat(parts: list[Lines]) -> Lines:
        return Lines(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("sku", "day", "hour", "quantity")))


@dataclass(frozen=True)
class Event:
    sku: int
    kind: Literal["surge", "drop"]
    start_hour: int
    """Local hour index (``day * 24 + hour``) of the first affected hour."""
    hours: int
    size: float

    @property
    def end_hour(self) -> int:
        """First unaffected hour."""
        return self.start_hour + self.hours


@dataclass(frozen=True)
class InjectionPlan:
    n_events: int = 300
    surge_share: float = 0.6
    min_size: float = 2.0
    max_size: float = 10.0
    min_orders_per_day: float = 3.0
    surge_hours: tuple[int, int] = (2, 12)
    """Hours-long surges: length drawn uniformly in this range (inclusive)."""
    days: tuple[int, int] = (1, 3)
    """Days-long surges: whole days drawn in this range (inclusive)."""
    drop_days: tuple[int, int] = (2, 7)
    """Drops (a SKU stops selling until restocked or fixed): whole days in this range."""
    days_share: float = 0.5
    """Share of surges that last days rather than hours."""
    gap_days: int = 7
    """Days kept free after an event on the same SKU."""


def orders_per_trading_day(lines: Lines, n_skus: int, first_day: int, n_days: int, trading: np.ndarray) -> np.ndarray:
    """(n_skus, n_days): each SKU's mean order lines per trading day over the 4 weeks around each day.

    Centred, so the rate follows a seasonal ramp (this is the ground truth of the injection, not
    something a detector may use).
    """
    daily = np.zeros((n_skus, n_days))
    np.add.at(daily, (lines.sku, lines.day - first_day), 1.0)
    csum = np.concatenate([np.zeros((n_skus, 1)), np.cumsum(daily, axis=1)], axis=1)
    tcsum = np.concatenate([[0.0], np.cumsum(trading.astype(np.float64))])
    lo = np.clip(np.arange(n_days) - HISTORY_DAYS // 2, 0, n_days)
    hi = np.clip(np.arange(n_days) + HISTORY_DAYS // 2, 0, n_days)
    n_trading = np.maximum(tcsum[hi] - tcsum[lo], 1.0)
    return (csum[:, hi] - csum[:, lo]) / n_trading[None, :]


def plan_events(
    plan: InjectionPlan,
    rate: np.ndarray,
    first_day: int,
    eval_days: tuple[int, int],
    trading: np.ndarray,
    rng: np.random.Generator,
    profile: HourProfile = DEFAULT_PROFILE,
) -> list[Event]:
    """Draw non-overlapping events in ``eval_days`` (day indices, end exclusive)."""
    start, stop = eval_days
    busy_until: dict[int, int] = {}
    events: list[Event] = []
    candidates = [d for d in range(start, stop - max(plan.days[1], plan.drop_days[1]) - 2) if trading[d - first_day]]
    tries = 0
    while len(events) < plan.n_events and tries < plan.n_events * 200:
        tries += 1
        day = int(rng.choice(candidates))
        eligible = np.flatnonzero(rate[:, day - first_day] >= plan.min_orders_per_day)
        if eligible.size == 0:
            continue
        sku = int(rng.choice(eligible))
        size = float(np.exp(rng.uniform(np.log(plan.min_size), np.log(plan.max_size))))
        if rng.uniform() < plan.surge_share:
            kind: Literal["surge", "drop"] = "surge"
            if rng.uniform() < plan.days_share:
                hours = 24 * int(rng.integers(plan.days[0], plan.days[1] + 1))
            else:
                hours = int(rng.integers(plan.surge_hours[0], plan.surge_hours[1] + 1))
            share = profile.share[(day + 3) % 7]
            hour0 = int(rng.choice(24, p=share / share.sum()))  # surges start when buyers shop
        else:
            kind, hours, hour0 = "drop", 24 * int(rng.integers(plan.drop_days[0], plan.drop_days[1] + 1)), 0
        begin = day * 24 + hour0
        if busy_until.get(sku, -1) >= begin:
            continue
        events.append(Event(sku, kind, begin, hours, round(size, 3)))
        busy_until[sku] = begin + hours + plan.gap_days * 24
    return sorted(events, key=lambda e: (e.start_hour, e.sku))


@dataclass(frozen=True)
class Injected:
    lines: Lines
    normal_orders: np.ndarray
    """Per event: order lines expected in its hours at the SKU's normal rate."""
    event_orders: np.ndarray
    """Per event: order lines its hours actually hold after injection."""
    normal_by_hour: list[np.ndarray]
    """Per event: the normal order lines of each of its hours (``normal_orders`` summed)."""


def inject(
    lines: Lines,
    events: list[Event],
    rate: np.ndarray,
    first_day: int,
    trading: np.ndarray,
    rng: np.random.Generator,
    profile: HourProfile = DEFAULT_PROFILE,
) -> Injected:
    """The order lines with every event applied, and each event's normal vs actual order lines."""
    hour_index = lines.day * 24 + lines.hour
    keep = np.ones(lines.sku.shape[0], dtype=bool)
    extra: list[Lines] = []
    normal, actual = np.zeros(len(events)), np.zeros(len(events))
    hourly: list[np.ndarray] = []
    for j, e in enumerate(events):
        mine = lines.sku == e.sku
        inside = np.flatnonzero(mine & (hour_index >= e.start_hour) & (hour_index < e.end_hour))
        hours = np.arange(e.start_hour, e.end_hour)
        lam = normal_hourly(e, rate, first_day, trading, profile)
        hourly.append(lam)
        normal[j] = lam.sum()
        if e.kind == "drop":
            kept = rng.uniform(size=inside.size) < 1.0 / e.size
            keep[inside] = kept
            actual[j] = kept.sum()
            continue
        counts = rng.poisson((e.size - 1.0) * lam)
        total = int(counts.sum())
        actual[j] = inside.size + total
        if total == 0:
            continue
        recent = mine & (lines.day >= e.start_hour // 24 - 90) & (lines.day < e.start_hour // 24)
        sizes = lines.quantity[recent] if recent.any() else np.ones(1, dtype=lines.quantity.dtype)
        at = np.repeat(hours, counts)
        extra.append(Lines(np.full(total, e.sku), at // 24, at % 24, rng.choice(sizes, size=total)))
    return Injected(Lines.concat([lines.select(keep), *extra]), normal, actual, hourly)


def normal_hourly(e: Event, rate: np.ndarray, first_day: int, trading: np.ndarray,
                  profile: HourProfile = DEFAULT_PROFILE) -> np.ndarray:
    """(hours,) order lines the event's SKU is expected to sell in each of its hours at its normal rate."""
    hours = np.arange(e.start_hour, e.end_hour)
    days = hours // 24
    open_day = trading[np.clip(days - first_day, 0, trading.shape[0] - 1)]
    per_day = rate[e.sku, np.clip(e.start_hour // 24 - first_day, 0, rate.shape[1] - 1)]
    return np.asarray(per_day * profile.share[(days + 3) % 7, hours % 24] * open_day, dtype=np.float64)

