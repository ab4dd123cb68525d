"""Per-process detection context: hour profiles, shop-wide level, event-time clocks, drop watch.

What the detector needs besides a batch's windows and forecasts, learned from the batches a
worker sees (pure bookkeeping, kept in memory; a restarted worker starts from the defaults):

* hour profiles per category (:class:`model.nowcast.ProfileLearner`), fed by every order line;
* the shop-wide level per day (:class:`model.nowcast.MarketLevel`);
* an event-time clock per partition (the latest event time seen), and the SKUs worth a drop
  check (those expecting enough order lines a day to miss them). A SKU that stops selling sends
  no events, so nothing would score it; instead, whenever a partition's clock enters a new hour,
  its watched SKUs that had no orders in the batch are scored at that clock time.

Limitation: the watch list is per process and learned from live traffic: after a restart (or a
rebalance) a SKU is watched again only once it has sold something.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from model.nowcast import MarketLevel, ProfileLearner, share_seen
from streams.buckets import SECONDS_PER_DAY, SECONDS_PER_HOUR, utc_offsets
from streams.window_store import OrderUpdate


@dataclass
class IdleChecks:
    """Watched SKUs to score although they had no orders in this batch."""

    skus: list[str] = field(default_factory=list)
    end_day: list[int] = field(default_factory=list)
    """The local day of their partition's clock (their "today")."""
    ts: list[float] = field(default_factory=list)
    """The partition's clock: the moment they are scored at (epoch seconds)."""


@dataclass(frozen=True)
class LocalMoment:
    day: np.ndarray
    hour: np.ndarray
    """Local hour index (``day * 24 + hour of day``)."""
    fraction: np.ndarray
    """How far into that hour (0..1)."""


class DetectionContext:
    def __init__(self, tz: str, max_watched: int) -> None:
        self.tz = tz
        self.max_watched = max_watched
        self.profiles = ProfileLearner()
        self.market = MarketLevel()
        self._clock: dict[int, float] = {}
        self._checked_hour: dict[int, int] = {}
        self._watched: dict[int, dict[str, None]] = {}
        self._partition_of: dict[str, int] = {}

    def observe(self, updates: Sequence[OrderUpdate]) -> None:
        """Learn from a batch's applied order lines: hour profiles, clocks, SKU partitions."""
        if not updates:
            return
        self.profiles.observe([u.category for u in updates], np.array([u.day for u in updates]),
                              np.array([u.hour % 24 for u in updates]))
        for u in updates:
            if u.event_ts > self._clock.get(u.partition, 0.0):
                self._clock[u.partition] = u.event_ts
            self._partition_of[u.sku] = u.partition

    def local(self, ts: np.ndarray) -> LocalMoment:
        ts = np.asarray(ts, dtype=np.float64)
        local = ts + utc_offsets(ts, self.tz)
        return LocalMoment((local // SECONDS_PER_DAY).astype(np.int64), (local // SECONDS_PER_HOUR).astype(np.int64),
                           (local % SECONDS_PER_HOUR) / SECONDS_PER_HOUR)

    def share(self, categories: Sequence[str | None], at: LocalMoment) -> np.ndarray:
        """Share of each SKU's day normally seen at its moment (its category's hour profile)."""
        rows, profiles = self._profiles_of(categories)
        return share_seen(profiles, rows, at.day, at.hour % 24, at.fraction)

    def share_at_hours(self, categories: Sequence[str | None], day: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """(n, K): share of each SKU's ``day`` normally seen by the start of each of its K local
        hour indices ``hours`` (n, K); one pass for all K."""
        n, k = hours.shape
        rows, profiles = self._profiles_of(categories)
        seen = share_seen(profiles, np.repeat(rows, k), np.repeat(np.asarray(day), k), hours.ravel() % 24,
                          np.zeros(n * k))
        return seen.reshape(n, k)

    def _profiles_of(self, categories: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
        """Per SKU an index into the returned hour profiles: those of the batch's categories only."""
        unique, inverse = np.unique(self.profiles.rows_for(categories), return_inverse=True)
        return inverse.ravel(), self.profiles.shares_for(unique)

    def idle_due(self, touched: set[str]) -> IdleChecks:
        """Watched SKUs of every partition whose clock entered a new hour since its last check."""
        due = IdleChecks()
        clocks = list(self._clock.items())
        if not clocks:
            return due
        at = self.local(np.array([ts for _, ts in clocks]))  # one conversion for every partition
        for (partition, ts), hour, day in zip(clocks, at.hour.tolist(), at.day.tolist(), strict=True):
            if self._checked_hour.get(partition, -1) >= hour:
                continue
            self._checked_hour[partition] = hour
            for sku in self._watched.get(partition, {}):
                if sku not in touched:
                    due.skus.append(sku)
                    due.end_day.append(day)
                    due.ts.append(ts)
        return due

    def watch(self, skus: Sequence[str], worth_watching: np.ndarray) -> None:
        """Keep the SKUs expecting enough order lines a day for a drop to be seen; drop the rest."""
        for sku, keep in zip(skus, worth_watching, strict=True):
            partition = self._partition_of.get(sku)
            if partition is None:
                continue
            watched = self._watched.setdefault(partition, {})
            if keep and sku not in watched and sum(map(len, self._watched.values())) < self.max_watched:
                watched[sku] = None
            elif not keep:
                watched.pop(sku, None)

    def watched(self) -> int:
        return sum(map(len, self._watched.values()))
