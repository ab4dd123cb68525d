"""Intraday nowcast: how much of a day's demand is normally seen by a given local time (pure numpy).

A day's forecast says how much a SKU sells over the whole day; at 11:30 only part of that can
have happened. :class:`HourProfile` holds, per weekday, the share of a day's order lines that
fall in each market-local hour, so the *expected partial demand* at a moment is the day's
forecast times :meth:`HourProfile.share_seen` of that moment.

The default profile, :data:`DEFAULT_PROFILE`, is the global one of the bundled Online Retail
order lines (2010-12 .. 2011-12; the shop does not trade on Saturdays, so that row is the
all-days profile). :class:`ProfileLearner` refines it per category from the hourly buckets a
worker counts: a Dirichlet blend, so a category with little data stays near the prior and one
with plenty follows its own hours.

Order lines (not units) set the shape: one bulk order of 500 units would otherwise move an
hour's share far more than it says about when customers buy.

Example::

    >>> import numpy as np
    >>> day = np.array([15310])                     # 2011-12-01, a Thursday
    >>> s = DEFAULT_PROFILE.share_seen(day, np.array([12]), np.array([0.0]))
    >>> 0.2 < float(s[0]) < 0.4                     # by noon about a quarter of the day is seen
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

HOURS = 24
DAYS_OF_WEEK = 7

# Share of order lines per local hour, Monday..Sunday (rows), from the bundled Online Retail data
# (`learn_profile` over all cleaned lines; Saturday, with no trading, holds the all-days profile).
_ONLINE_RETAIL_SHARE: tuple[tuple[float, ...], ...] = (
    (0, 0, 0, 0, 0, 0, 0, 0.0007, 0.0176, 0.0793, 0.0929, 0.0939, 0.1234, 0.1341, 0.1208, 0.1479, 0.0990,
     0.0864, 0.0040, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0.0006, 0.0173, 0.0632, 0.0883, 0.0965, 0.1410, 0.1253, 0.1140, 0.1585, 0.1186,
     0.0556, 0.0209, 0, 0, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0.0006, 0.0194, 0.0543, 0.0836, 0.1057, 0.1542, 0.1262, 0.1158, 0.1765, 0.1129,
     0.0504, 0, 0.0002, 0.0002, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0.0006, 0.0177, 0.0786, 0.0885, 0.0788, 0.1312, 0.1210, 0.1104, 0.1152, 0.1149,
     0.0493, 0.0522, 0.0337, 0.0077, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0.0016, 0.0228, 0.0867, 0.1239, 0.1171, 0.1331, 0.1266, 0.1438, 0.1093, 0.0786,
     0.0552, 0, 0.0011, 0.0001, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0.0007, 0.0165, 0.0634, 0.0897, 0.1060, 0.1457, 0.1340, 0.1244, 0.1440, 0.1008,
     0.0521, 0.0146, 0.0066, 0.0015, 0, 0, 0),
    (0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0004, 0.0552, 0.1674, 0.2116, 0.1880, 0.1561, 0.1579, 0.0635, 0, 0, 0, 0,
     0, 0, 0),
)


def day_of_week(day: np.ndarray) -> np.ndarray:
    """Monday = 0 for integer day indices (1970-01-01 was a Thursday)."""
    return (np.asarray(day, dtype=np.int64) + 3) % DAYS_OF_WEEK


def _normalise(counts: np.ndarray) -> np.ndarray:
    """(7, 24) rows that sum to one; an empty weekday borrows the all-days shape (flat if none)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=1, keepdims=True)
    overall = counts.sum(axis=0)
    fallback = overall / overall.sum() if overall.sum() > 0 else np.full(HOURS, 1.0 / HOURS)
    return np.where(total > 0, counts / np.where(total > 0, total, 1.0), fallback[None, :])


@dataclass(frozen=True)
class HourProfile:
    """``share[w, h]``: the share of weekday ``w``'s demand that falls in local hour ``h``."""

    share: np.ndarray

    def __post_init__(self) -> None:
        if self.share.shape != (DAYS_OF_WEEK, HOURS):
            raise ValueError(f"an hour profile is ({DAYS_OF_WEEK}, {HOURS}); got {self.share.shape}")

    @property
    def cumulative(self) -> np.ndarray:
        """(7, 25): share seen before the start of each hour; column 24 is the whole day (1.0)."""
        return np.concatenate([np.zeros((DAYS_OF_WEEK, 1)), np.cumsum(self.share, axis=1)], axis=1)

    def share_seen(self, day: np.ndarray, hour_of_day: np.ndarray, fraction: np.ndarray) -> np.ndarray:
        """Share of the day's demand normally seen ``fraction`` of the way into ``hour_of_day``."""
        return share_seen(self.share[None], np.zeros(np.shape(day), np.int64), day, hour_of_day, fraction)


def share_seen(
    shares: np.ndarray, row: np.ndarray, day: np.ndarray, hour_of_day: np.ndarray, fraction: np.ndarray
) -> np.ndarray:
    """Vectorised :meth:`HourProfile.share_seen` over several profiles.

    ``shares`` (P, 7, 24); per element, ``row`` picks its profile, ``day`` its weekday, and the
    moment is ``fraction`` (0..1) of the way through local hour ``hour_of_day`` (0..23).
    """
    row = np.asarray(row, dtype=np.int64)
    dow = day_of_week(day)
    hour = np.clip(np.asarray(hour_of_day, dtype=np.int64), 0, HOURS - 1)
    frac = np.clip(np.asarray(fraction, dtype=np.float64), 0.0, 1.0)
    cumulative = np.concatenate([np.zeros((*shares.shape[:2], 1)), np.cumsum(shares, axis=2)], axis=2)
    before = cumulative[row, dow, hour]
    return np.clip(before + frac * shares[row, dow, hour], 0.0, 1.0)


def learn_profile(day: np.ndarray, hour_of_day: np.ndarray, weight: np.ndarray | None = None) -> HourProfile:
    """The profile of events at (local day index, hour of day), weighted (default: one per event)."""
    counts = np.zeros((DAYS_OF_WEEK, HOURS))
    w = np.ones(np.shape(day)) if weight is None else np.asarray(weight, dtype=np.float64)
    np.add.at(counts, (day_of_week(day), np.asarray(hour_of_day, dtype=np.int64) % HOURS), w)
    return HourProfile(_normalise(counts))


def market_level(observed: np.ndarray, expected: np.ndarray, prior: float = 30.0,
                 bounds: tuple[float, float] = (0.5, 4.0)) -> np.ndarray:
    """Shop-wide demand level: all SKUs' order lines over all SKUs' expected lines (1 = as forecast).

    ``prior`` pseudo-lines keep it near 1 while little is known (early in a day); ``bounds`` clip
    it, so one shop-wide rush never hides a SKU completely.
    """
    return np.clip((np.asarray(observed, np.float64) + prior) / (np.asarray(expected, np.float64) + prior), *bounds)


DEFAULT_PROFILE = HourProfile(_normalise(np.asarray(_ONLINE_RETAIL_SHARE, dtype=np.float64)))


class ProfileLearner:
    """Per-category hour profiles learned online, shrunk towards a prior profile.

    ``share = (prior_mass * prior + counts) / (prior_mass + total)`` per weekday, so a category
    needs about ``prior_mass`` order lines on a weekday before its own hours dominate. Counts are
    scaled down once a weekday holds ``max_mass`` lines, so old habits fade.
    """

    def __init__(self, prior: HourProfile = DEFAULT_PROFILE, prior_mass: float = 200.0,
                 max_mass: float = 20_000.0, max_categories: int = 10_000) -> None:
        if prior_mass <= 0 or max_mass <= prior_mass:
            raise ValueError("need 0 < prior_mass < max_mass")
        self.prior = prior
        self.prior_mass = prior_mass
        self.max_mass = max_mass
        self.max_categories = max_categories
        self._index: dict[str | None, int] = {}
        self._counts = np.zeros((0, DAYS_OF_WEEK, HOURS))

    def _rows(self, categories: Sequence[str | None], grow: bool) -> np.ndarray:
        rows = np.full(len(categories), -1, dtype=np.int64)
        for i, c in enumerate(categories):
            r = self._index.get(c)
            if r is None and grow and len(self._index) < self.max_categories:
                r = self._index[c] = len(self._index)
            rows[i] = -1 if r is None else r
        if len(self._index) > self._counts.shape[0]:
            extra = np.zeros((len(self._index) - self._counts.shape[0], DAYS_OF_WEEK, HOURS))
            self._counts = np.concatenate([self._counts, extra])
        return rows

    def observe(self, categories: Sequence[str | None], day: np.ndarray, hour_of_day: np.ndarray,
                weight: np.ndarray | None = None) -> None:
        """Count order lines per element: its category, local day index, hour of day (and count)."""
        if len(categories) == 0:
            return
        rows = self._rows(categories, grow=True)
        ok = rows >= 0
        w = np.ones(len(categories)) if weight is None else np.asarray(weight, dtype=np.float64)
        np.add.at(self._counts, (rows[ok], day_of_week(np.asarray(day)[ok]),
                                 np.asarray(hour_of_day, dtype=np.int64)[ok] % HOURS), w[ok])
        # Only the categories counted into can have passed max_mass (the rest were scaled before).
        touched = np.unique(rows[ok])
        counts = self._counts[touched]
        mass = counts.sum(axis=2, keepdims=True)
        self._counts[touched] = counts * np.minimum(1.0, self.max_mass / np.maximum(mass, 1.0))

    def shares(self) -> np.ndarray:
        """(P + 1, 7, 24): row 0 is the prior, row ``r + 1`` the learned category ``r``."""
        return self.shares_for(np.arange(len(self._index) + 1))

    def shares_for(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), 7, 24): the profiles of these :meth:`rows_for` indices, and only those (a
        shop with thousands of categories would otherwise recompute all of them per call)."""
        rows = np.asarray(rows, dtype=np.int64)
        prior = self.prior.share[None]
        out = np.repeat(prior, len(rows), axis=0)
        learned = rows > 0
        if learned.any():
            counts = self._counts[rows[learned] - 1]
            total = counts.sum(axis=2, keepdims=True)
            out[learned] = (self.prior_mass * prior + counts) / (self.prior_mass + total)
        return out

    def rows_for(self, categories: Sequence[str | None]) -> np.ndarray:
        """Index into :meth:`shares` per category (0, the prior, for an unseen one)."""
        return self._rows(categories, grow=False) + 1


class MarketLevel:
    """Running shop-wide level per local day, for a worker that sees SKUs one batch at a time.

    Each SKU's latest forecast contributes its expected order lines to every day it covers from
    its start, its latest counts of order lines to the days they were counted on; both are
    replaced when the SKU is seen again, so the totals stay exact without re-reading every SKU.
    A SKU's level leaves the SKU itself out (its own surge must not explain itself away). After a
    restart only the SKUs seen since count (the ``prior`` of :func:`market_level` keeps the level
    near 1 until the totals mean something).
    """

    def __init__(self, prior: float = 30.0, max_skus: int = 500_000, keep_days: int = 8) -> None:
        self.prior = prior
        self.max_skus = max_skus
        self.keep_days = keep_days
        # Per SKU one row of a few numpy tables, not a Python object per SKU: the worker's cyclic
        # GC scanned every replaced per-SKU object (a pause of tens of ms per 50k SKUs), and the
        # batch's arithmetic is vectorised. Forecast start day, expected lines of each forecast
        # day, last observed day, observed lines of the keep_days days up to it (slot day % keep).
        self._index: dict[str, int] = {}
        self._horizon = 0
        self._start = np.zeros(0, dtype=np.int64)
        self._expected = np.zeros((0, 0), dtype=np.float32)
        self._last_obs = np.zeros(0, dtype=np.int64)
        self._observed = np.zeros((0, keep_days), dtype=np.float32)
        self._exp_total: dict[int, float] = {}
        self._obs_total: dict[int, float] = {}

    def _forget_skus(self, horizon: int) -> None:
        """Drop every SKU's row but keep the day totals (bounded memory, or a new model horizon)."""
        self._index.clear()
        self._horizon = horizon
        self._start = np.zeros(1024, dtype=np.int64)
        self._expected = np.zeros((1024, horizon), dtype=np.float32)
        self._last_obs = np.zeros(1024, dtype=np.int64)
        self._observed = np.zeros((1024, self.keep_days), dtype=np.float32)

    def _rows_for(self, skus: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Table rows of ``skus`` (new ones appended) and which of them are new."""
        index = self._index
        rows = np.fromiter((index.get(s, -1) for s in skus), dtype=np.int64, count=len(skus))
        fresh = rows < 0
        if fresh.any():
            first = len(index)
            for j, i in enumerate(np.flatnonzero(fresh).tolist()):
                index[skus[i]] = first + j
            rows[fresh] = np.arange(first, len(index))
            if len(index) > len(self._start):
                cap = max(2 * len(self._start), len(index))
                grow = cap - len(self._start)
                self._start = np.concatenate([self._start, np.zeros(grow, dtype=np.int64)])
                self._last_obs = np.concatenate([self._last_obs, np.zeros(grow, dtype=np.int64)])
                self._expected = np.vstack([self._expected, np.zeros((grow, self._horizon), dtype=np.float32)])
                self._observed = np.vstack([self._observed, np.zeros((grow, self.keep_days), dtype=np.float32)])
        return rows, fresh

    def update(self, skus: Sequence[str], start_day: np.ndarray, expected: np.ndarray,
               observed_today: np.ndarray) -> None:
        """Per SKU: the forecast's expected order lines for days ``start_day ..`` (n, H), and the
        order lines counted so far on ``start_day`` (its today). Earlier days keep what they had."""
        n = len(skus)
        if n == 0:
            return
        days = np.asarray(start_day, dtype=np.int64)
        exp32 = np.asarray(expected, dtype=np.float32)
        obs32 = np.asarray(observed_today, dtype=np.float32)
        if len(set(skus)) < n:  # a SKU twice: in order, each replacing the one before
            for i in range(n):
                self.update([skus[i]], days[i : i + 1], exp32[i : i + 1], obs32[i : i + 1])
            return
        h, keep = exp32.shape[1], self.keep_days
        if h != self._horizon or len(self._index) + n > self.max_skus:
            self._forget_skus(h)
        rows, fresh = self._rows_for(skus)
        known = ~fresh
        exp_days, exp_delta = [days[:, None] + np.arange(h)], [exp32.astype(np.float64)]
        last = days.copy()
        counts = np.zeros((n, keep), dtype=np.float64)
        if known.any():
            r = rows[known]
            # The old forecast leaves every day from the new one's start on.
            old_days = self._start[r][:, None] + np.arange(h)
            leaving = old_days >= days[known][:, None]
            exp_days.append(old_days[leaving][:, None])
            exp_delta.append(-self._expected[r][leaving].astype(np.float64)[:, None])
            last[known] = self._last_obs[r]
            counts[known] = self._observed[r]
        # Days that entered the kept window since the last observation start again at 0.
        slot_day = days[:, None] - (days[:, None] - np.arange(keep)) % keep  # the day slot j holds
        moved = days > last
        counts[moved[:, None] & (slot_day > last[:, None])] = 0.0
        last = np.where(moved, days, last)
        kept = np.flatnonzero(days > last - keep)  # (a day older than the window is not kept)
        slot = days[kept] % keep
        obs_delta = obs32[kept].astype(np.float64) - counts[kept, slot]
        counts[kept, slot] = obs32[kept]
        _add_by_day(self._exp_total, np.concatenate([d.ravel() for d in exp_days]),
                    np.concatenate([v.ravel() for v in exp_delta]))
        _add_by_day(self._obs_total, days[kept], obs_delta)
        self._start[rows] = days
        self._expected[rows] = exp32
        self._last_obs[rows] = last
        self._observed[rows] = counts
        newest = max(self._obs_total, default=0)
        for totals in (self._exp_total, self._obs_total):
            for d in [d for d in totals if d < newest - 31]:
                del totals[d]

    def _own(self, sku: str, day: int) -> tuple[float, float]:
        """The SKU's own (observed, expected) order lines on ``day``."""
        r = self._index.get(sku)
        if r is None:
            return 0.0, 0.0
        start, last_obs, keep = int(self._start[r]), int(self._last_obs[r]), self.keep_days
        own_exp = float(self._expected[r, day - start]) if 0 <= day - start < self._horizon else 0.0
        own_obs = float(self._observed[r, day % keep]) if last_obs - keep < day <= last_obs else 0.0
        return own_obs, own_exp

    def level(self, skus: Sequence[str], days: np.ndarray, share_of_today: np.ndarray,
              today: np.ndarray) -> np.ndarray:
        """(n, W) level of every SKU's window days, leaving the SKU out; ``today`` (n, 1) marks the
        current day, whose expectation is scaled by ``share_of_today`` (n, 1)."""
        days = np.asarray(days, dtype=np.int64)
        unique, inverse = np.unique(days, return_inverse=True)
        inverse = inverse.reshape(days.shape)
        obs = np.array([self._obs_total.get(d, 0.0) for d in unique.tolist()])[inverse]
        exp = np.array([self._exp_total.get(d, 0.0) for d in unique.tolist()])[inverse]
        rows = np.fromiter((self._index.get(s, -1) for s in skus), dtype=np.int64, count=len(skus))
        have = rows >= 0
        if have.any():
            r, d = rows[have], days[have]
            offset = d - self._start[r][:, None]
            in_fc = (offset >= 0) & (offset < self._horizon)
            own_exp = np.where(in_fc, self._expected[r[:, None], np.clip(offset, 0, max(self._horizon - 1, 0))], 0.0)
            last = self._last_obs[r][:, None]
            in_obs = (d > last - self.keep_days) & (d <= last)
            own_obs = np.where(in_obs, self._observed[r[:, None], d % self.keep_days], 0.0)
            obs[have] -= own_obs
            exp[have] -= own_exp
        exp = np.where(days == today, exp * share_of_today, exp)
        return market_level(np.maximum(obs, 0.0), np.maximum(exp, 0.0), self.prior)


def _add_by_day(totals: dict[int, float], days: np.ndarray, values: np.ndarray) -> None:
    """``totals[day] += value`` for every pair, one dictionary update per distinct day."""
    if days.size == 0:
        return
    unique, inverse = np.unique(days, return_inverse=True)
    sums = np.bincount(inverse.ravel(), weights=values, minlength=len(unique))
    for d, v in zip(unique.tolist(), sums.tolist(), strict=True):
        totals[d] = totals.get(d, 0.0) + v
