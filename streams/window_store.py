"""The per-SKU rolling window store: its protocol and the batch-first values it speaks.

The worker hands the store the valid order lines of a micro-batch, each with its Kafka
position (``partition``, ``offset``) and its market-local day/hour bucket. The store counts each
line exactly once, even when Kafka redelivers (offset fencing per SKU and partition) or a
producer retries with a new offset (dedup by ``dedup_key`` within a horizon), and reports the
lines that arrived beyond the grace period so the caller can route them to ``orders.late``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from streams.buckets import local_day_hour
from streams.contracts import OrderEvent

Grain = Literal["day", "hour"]


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """One valid order line with its source position and its market-local buckets."""

    sku: str
    partition: int
    offset: int
    dedup_key: str
    event_ts: float
    """Epoch seconds, UTC."""
    day: int
    hour: int
    units: int
    revenue_milli: int
    price: float
    category: str | None = None


@dataclass
class ApplyResult:
    applied: int = 0
    """Events counted into buckets."""
    fenced: int = 0
    """Skipped: offset <= the last offset seen for that SKU and partition (a redelivery)."""
    duplicates: int = 0
    """Skipped: the same ``dedup_key`` was already counted within the dedup horizon."""
    late: list[OrderUpdate] = field(default_factory=list)
    """Rejected, older than the SKU watermark minus the grace period, in input order."""
    late_watermark_ts: list[float] = field(default_factory=list)
    """The SKU watermark each ``late`` event was judged against (same order as ``late``)."""
    touched: list[str] = field(default_factory=list)
    """SKUs with at least one applied event, sorted, unique."""


@dataclass(frozen=True, slots=True)
class SkuMeta:
    sku: str
    first_seen_ts: float
    """Earliest event time counted for the SKU."""
    watermark_ts: float
    """Latest event time counted for the SKU."""
    category: str | None
    last_price: float
    """Unit price of the latest event by event time."""
    watermark_day: int
    watermark_hour: int


@dataclass
class DayWindows:
    """Dense last-``L``-days windows for a batch of SKUs, oldest → newest, zeros where no orders."""

    skus: list[str]
    end_day: np.ndarray
    """(n,) int64: the day index of the last column, per SKU."""
    units: np.ndarray
    """(n, L) float32."""
    orders: np.ndarray
    """(n, L) float32: order lines counted."""
    revenue_milli: np.ndarray
    """(n, L) float64."""
    meta: list[SkuMeta | None]


@dataclass
class HourWindows:
    """Dense last-``L``-hours windows; same layout as :class:`DayWindows`, hour indices."""

    skus: list[str]
    end_hour: np.ndarray
    units: np.ndarray
    orders: np.ndarray
    revenue_milli: np.ndarray
    meta: list[SkuMeta | None]


@runtime_checkable
class WindowStore(Protocol):
    async def apply(self, updates: Sequence[OrderUpdate]) -> ApplyResult:
        """Count a batch exactly once; ``updates`` in Kafka order within each partition."""
        ...

    async def read_days(self, skus: Sequence[str], length: int, end_day: Sequence[int] | None = None) -> DayWindows:
        """Last ``length`` days up to ``end_day`` (inclusive; default: each SKU's watermark day)."""
        ...

    async def read_hours(self, skus: Sequence[str], length: int, end_hour: Sequence[int] | None = None) -> HourWindows:
        """Last ``length`` hours up to ``end_hour`` (inclusive; default: the watermark hour)."""
        ...

    async def read_recent(self, skus: Sequence[str], days: int, hours: int) -> tuple[DayWindows, HourWindows]:
        """``read_days(skus, days)`` and ``read_hours(skus, hours)`` as of one moment (one round
        trip on Redis: the worker's read of every batch)."""
        ...

    async def apply_and_read(self, updates: Sequence[OrderUpdate], skus: Sequence[str], days: int,
                             hours: int) -> tuple[ApplyResult, DayWindows, HourWindows | None]:
        """``apply(updates)``, then ``read_recent(skus, days, hours)`` as it sees the store after
        that (``read_days`` and ``None`` when ``hours`` is 0): the worker's two steps of a batch."""
        ...

    async def meta(self, skus: Sequence[str]) -> list[SkuMeta | None]: ...

    async def totals(self, sku: str, grain: Grain) -> dict[int, tuple[int, int, int]]:
        """Every retained bucket with orders: bucket index → (units, orders, revenue_milli)."""
        ...


def updates_from_orders(
    orders: Sequence[OrderEvent], partitions: Sequence[int], offsets: Sequence[int], tz: str
) -> list[OrderUpdate]:
    """Position validated orders and place each in its local day/hour bucket (vectorised)."""
    if not orders:
        return []
    ts = np.array([o.event_time.timestamp() for o in orders], dtype=np.float64)
    days, hours = local_day_hour(ts, tz)
    return [
        OrderUpdate(
            # Interned: the worker's per-SKU maps then share one string per SKU, not one per batch.
            sku=sys.intern(o.sku),
            partition=int(p),
            offset=int(off),
            dedup_key=o.dedup_key,
            event_ts=float(t),
            day=int(d),
            hour=int(h),
            units=o.quantity,
            revenue_milli=o.revenue_milli,
            price=o.unit_price,
            category=o.category,
        )
        for o, p, off, t, d, h in zip(orders, partitions, offsets, ts, days, hours, strict=True)
    ]
