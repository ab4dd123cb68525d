"""A plain-Python model of the window store's semantics, event by event, for the contract tests.

It is deliberately naive (dicts, no rings, no batching): any batching of the same event
sequence, with any redelivery, must leave a real store agreeing with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streams.window_store import OrderUpdate, SkuMeta


@dataclass
class _Sku:
    last_offset: dict[int, int] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    days: dict[int, list[int]] = field(default_factory=dict)
    hours: dict[int, list[int]] = field(default_factory=dict)
    watermark: float | None = None
    watermark_day: int = 0
    watermark_hour: int = 0
    first_seen: float = 0.0
    price: float = 0.0
    category: str | None = None


@dataclass
class Outcome:
    applied: int = 0
    fenced: int = 0
    duplicates: int = 0
    late: list[OrderUpdate] = field(default_factory=list)


class ReferenceWindows:
    def __init__(self, *, grace_s: float, dedup_horizon_s: float, day_retention: int, hour_retention: int) -> None:
        self.grace_s = grace_s
        self.horizon_s = dedup_horizon_s
        self.day_slots = day_retention + 1
        self.hour_slots = hour_retention * 24 + 1
        self.skus: dict[str, _Sku] = {}

    def apply(self, updates: Sequence[OrderUpdate]) -> Outcome:
        out = Outcome()
        for u in updates:
            self._one(u, out)
        return out

    def _one(self, u: OrderUpdate, out: Outcome) -> None:
        s = self.skus.setdefault(u.sku, _Sku())
        if u.offset <= s.last_offset.get(u.partition, -1):
            out.fenced += 1
            return
        s.last_offset[u.partition] = u.offset
        wm = s.watermark
        prior = s.seen.get(u.dedup_key)
        if wm is not None and prior is not None and prior >= max(wm, u.event_ts) - self.horizon_s:
            out.duplicates += 1
            return
        if wm is not None and u.event_ts < wm - self.grace_s:
            out.late.append(u)
            return
        out.applied += 1
        s.seen[u.dedup_key] = u.event_ts
        if wm is None:
            s.first_seen, s.watermark_day, s.watermark_hour = u.event_ts, u.day, u.hour
        if wm is None or u.event_ts >= wm:
            s.watermark = u.event_ts
            s.price = u.price
            s.category = u.category or s.category
        s.first_seen = min(s.first_seen, u.event_ts)
        s.watermark_day = max(s.watermark_day, u.day)
        s.watermark_hour = max(s.watermark_hour, u.hour)
        for buckets, b in ((s.days, u.day), (s.hours, u.hour)):
            sums = buckets.setdefault(b, [0, 0, 0])
            sums[0] += u.units
            sums[1] += 1
            sums[2] += u.revenue_milli

    def totals(self, sku: str, grain: str) -> dict[int, tuple[int, int, int]]:
        s = self.skus.get(sku)
        if s is None or s.watermark is None:
            return {}
        buckets, top, slots = (
            (s.days, s.watermark_day, self.day_slots)
            if grain == "day"
            else (s.hours, s.watermark_hour, self.hour_slots)
        )
        return {b: (v[0], v[1], v[2]) for b, v in sorted(buckets.items()) if b > top - slots}

    def meta(self, sku: str) -> SkuMeta | None:
        s = self.skus.get(sku)
        if s is None or s.watermark is None:
            return None
        return SkuMeta(sku, s.first_seen, s.watermark, s.category, s.price, s.watermark_day, s.watermark_hour)
