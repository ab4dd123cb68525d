"""The window store on Redis or Redis Cluster: exact under redelivery, one round trip per batch.

Key layout, all keys of a SKU share the hash tag ``{<sku>}`` (one cluster slot per SKU)::

    <prefix>:{<sku>}:m   hash   m → the meta, packed (:data:`META_FORMAT`): watermark ts,
                                first seen ts, dedup trim mark, last price, last TTL refresh,
                                watermark day / hour index, ring base day / hour; then the
                                category's bytes
                                p<partition> → last offset,
                                #<dedup key> → event ts (a big-endian double), for the dedup
                                horizon
    <prefix>:{<sku>}:d   string day ring: day_retention + 1 slots of 12 bytes
    <prefix>:{<sku>}:h   string hour ring: 24 * hour_retention + 1 slots of 12 bytes

A ring slot holds ``units i32 | orders u24 | revenue_milli i40`` (12 bytes, big-endian,
``BITFIELD INCRBY`` with ``OVERFLOW SAT``: per bucket up to 2.1 billion units, 16.7 million
order lines and ±549 million in revenue, exact to a thousandth; beyond, a bucket saturates rather
than wraps). Bucket ``b`` lives in slot ``(b - base) % slots`` and is valid while
``watermark - slots < b <= watermark``. Advancing the watermark zeroes exactly the slots it
expires, so trimming costs O(expired buckets); reading the last L buckets is one ``GETRANGE``
(two when it wraps), returned as bytes and decoded by numpy. The base is the SKU's first bucket
minus the grace period, so a young SKU's ring only grows as far as its history. (One string for
both rings would save a key and a command per SKU, but costs every SKU its full size, ~10 KB,
from its first order: twice what a SKU in its first year needs.)

Writes: ``window_apply.lua`` takes several SKUs per call on a standalone server and one hash
slot's SKUs per call on a cluster; every call of a batch goes in one non-transactional
pipeline (one round trip per node); on a standalone server each call is written as soon as it
is built (:meth:`streams.redis_scripts.LuaScript.run`). Reads: ``window_read.lua``, batched the
same way, returns a JSON header and the bucket bytes of one grain or of both
(:meth:`RedisWindowStore.read_recent`). The worker sends a batch's update and its read together
(:meth:`RedisWindowStore.apply_and_read`, :func:`streams.redis_scripts.run_in_order`): one round
trip, and Redis runs the update while the read is being built. SKUs whose braces would break the
hash tag are percent-encoded in keys.

Usage (``client`` a ``redis.asyncio.Redis`` or ``RedisCluster``)::

    store = RedisWindowStore(client, "skc", grace_s=48 * 3600, dedup_horizon_s=7 * 86400,
                             day_retention=420, hour_retention=21, idle_ttl_s=430 * 86400)
    result = await store.apply(updates)          # exact under redelivery
    windows = await store.read_days(result.touched, 57)  # last 57 days up to each watermark day
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterator, Sequence
from importlib.resources import files
from typing import Any

import numpy as np
import orjson
from redis.asyncio import Redis, RedisCluster

from streams.redis_scripts import Call, LuaScript, Step, run_in_order, sku_tag, slot_groups
from streams.window_store import (
    ApplyResult,
    DayWindows,
    Grain,
    HourWindows,
    OrderUpdate,
    SkuMeta,
)

SLOT_BYTES = 12
"""A ring slot: ``units i32 | orders u24 | revenue_milli i40``, big-endian (``BITFIELD``)."""
BUCKET_DTYPE = np.dtype([("units", "<i4"), ("orders", "<i4"), ("revenue_milli", "<i8")])


def decode_slots(raw: bytes) -> np.ndarray:
    """Ring bytes (whole slots) as a :data:`BUCKET_DTYPE` array, vectorised.

    >>> b = bytes.fromhex("00000005" "000002" "fffffffc18")  # 5 units, 2 orders, -1000 milli
    >>> decode_slots(b).tolist()
    [(5, 2, -1000)]
    """
    b = np.frombuffer(raw, dtype=np.uint8)[: len(raw) // SLOT_BYTES * SLOT_BYTES].reshape(-1, SLOT_BYTES)
    out = np.empty(b.shape[0], dtype=BUCKET_DTYPE)
    out["units"] = np.ascontiguousarray(b[:, 0:4]).view(">i4").ravel()
    out["orders"] = (b[:, 4].astype(np.int32) << 16) | (b[:, 5].astype(np.int32) << 8) | b[:, 6]
    # 40-bit two's complement: widen to 64 bits, copying the sign bit into the top three bytes.
    wide = np.empty((b.shape[0], 8), dtype=np.uint8)
    wide[:, 3:] = b[:, 7:12]
    wide[:, :3] = np.where(b[:, 7:8] >= 0x80, 0xFF, 0x00)
    out["revenue_milli"] = wide.view(">i8").ravel()
    return out
_APPLY_LUA = files("streams").joinpath("window_apply.lua").read_text()
_READ_LUA = files("streams").joinpath("window_read.lua").read_text()
META_FORMAT = struct.Struct(">dddddiiii")
"""The packed meta before the category: wm fs sm pr ex (doubles), wd wh bd bh (int32)."""


def sku_keys(prefix: str, sku: str) -> tuple[str, str, str]:
    """(meta, day ring, hour ring) keys of one SKU."""
    base = f"{prefix}:{{{sku_tag(sku)}}}:"
    return base + "m", base + "d", base + "h"


def _unpack_meta(sku: str, fixed: bytes, category: str) -> SkuMeta:
    """SkuMeta from the packed meta (without its category) and the category."""
    wm, fs, _sm, pr, _ex, wd, wh, _bd, _bh = META_FORMAT.unpack(fixed)
    return SkuMeta(
        sku=sku, first_seen_ts=fs, watermark_ts=wm, category=category or None, last_price=pr,
        watermark_day=wd, watermark_hour=wh,
    )  # fmt: skip


class RedisWindowStore:
    """:class:`streams.window_store.WindowStore` on Redis; see the module doc for the layout."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str,
        *,
        grace_s: float,
        dedup_horizon_s: float,
        day_retention: int,
        hour_retention: int,
        idle_ttl_s: float,
        skus_per_call: int = 64,
    ) -> None:
        """``hour_retention`` is in days; ``skus_per_call`` caps the SKUs one Lua call handles."""
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("prefix must be non-empty and free of braces (they are the hash tag)")
        if grace_s < 0 or dedup_horizon_s < grace_s:
            raise ValueError("need 0 <= grace_s <= dedup_horizon_s (a forgotten key must be late)")
        if grace_s + 2 * 86_400 > day_retention * 86_400:
            raise ValueError("day_retention must exceed the grace period by two days")
        if grace_s + 3 * 3_600 > hour_retention * 86_400:
            raise ValueError("hour_retention must exceed the grace period by three hours")
        if idle_ttl_s < 1 or skus_per_call < 1:
            raise ValueError("idle_ttl_s and skus_per_call must be positive")
        self._client = client
        self._prefix = prefix
        self._cluster = isinstance(client, RedisCluster)
        self._skus_per_call = skus_per_call
        self.day_slots = day_retention + 1
        self.hour_slots = hour_retention * 24 + 1
        self._apply_args = [
            repr(float(grace_s)),
            repr(float(dedup_horizon_s)),
            str(self.day_slots),
            str(self.hour_slots),
            str(max(1, int(idle_ttl_s))),
            repr(idle_ttl_s / 16),  # TTLs are refreshed at most this often (server time)
            str(math.ceil(grace_s / 86_400) + 1),
            str(math.ceil(grace_s / 3_600) + 3),
        ]
        self._key_cache: dict[str, bytes] = {}
        self._apply = LuaScript(_APPLY_LUA)
        self._read_script = LuaScript(_READ_LUA)

    @property
    def prefix(self) -> str:
        return self._prefix

    # -- grouping ---------------------------------------------------------------------------

    def _groups(self, skus: Sequence[str]) -> list[list[int]]:
        """Indices of ``skus`` grouped into Lua calls: one slot per call on a cluster."""
        return slot_groups(skus, self._cluster, self._skus_per_call)

    def _keys(self, sku: str) -> tuple[bytes, ...]:
        """The SKU's three keys as bytes; the common part is encoded once per SKU (encoding keys
        was most of the client's work; joining bytes is cheap, and only the base is kept)."""
        base = self._key_cache.get(sku)
        if base is None:
            if len(self._key_cache) >= 500_000:
                self._key_cache.clear()
            base = self._key_cache[sku] = sku_keys(self._prefix, sku)[0][:-1].encode()
        return base + b"m", base + b"d", base + b"h"

    # -- writes -----------------------------------------------------------------------------

    async def apply(self, updates: Sequence[OrderUpdate]) -> ApplyResult:
        (script, calls, parse), finish = self._apply_step(updates)
        return finish(await script.run(self._client, calls, parse))

    async def apply_and_read(self, updates: Sequence[OrderUpdate], skus: Sequence[str], days: int,
                             hours: int) -> tuple[ApplyResult, DayWindows, HourWindows | None]:
        skus = list(skus)
        grains, lengths = ("dh", {"d": days, "h": hours}) if hours else ("d", {"d": days})
        apply_step, applied = self._apply_step(updates)
        read_step, read = self._read_step(grains, skus, lengths, None)
        apply_results, read_results = await run_in_order(self._client, [apply_step, read_step])
        out, metas = read(read_results)
        return (applied(apply_results), self._days(skus, out["d"], metas),
                self._hours(skus, out["h"], metas) if hours else None)

    def _apply_step(self, updates: Sequence[OrderUpdate]) -> tuple[Step, Callable[[list[Any]], ApplyResult]]:
        """The apply script's calls for ``updates``, and what makes the result of their replies."""
        by_sku: dict[str, list[int]] = {}
        for i, u in enumerate(updates):
            by_sku.setdefault(u.sku, []).append(i)
        skus = list(by_sku)
        groups = self._groups(skus)

        def calls() -> Iterator[Call]:  # built one by one: Redis runs each while the next is built
            for group in groups:
                keys: list[bytes] = []
                events = []
                for g in group:
                    keys.extend(self._keys(skus[g]))
                    events.append([_wire(updates[i]) for i in by_sku[skus[g]]])
                yield keys, [orjson.dumps(events, option=orjson.OPT_SERIALIZE_NUMPY), *self._apply_args]

        def counted(call: int, reply: bytes) -> tuple[int, int, int, list[str], list[tuple[int, float]]]:
            """One call's (applied, fenced, duplicates, touched SKUs, late (position, watermark))."""
            applied = fenced = dups = 0
            touched: list[str] = []
            late: list[tuple[int, float]] = []
            for g, counts in zip(groups[call], orjson.loads(reply), strict=True):
                applied += counts[0]
                fenced += counts[1]
                dups += counts[2]
                if counts[0]:
                    touched.append(skus[g])
                if len(counts) > 3:
                    positions = by_sku[skus[g]]
                    late.extend((positions[counts[k]], float(counts[k + 1])) for k in range(3, len(counts), 2))
            return applied, fenced, dups, touched, late

        def finish(replies: list[Any]) -> ApplyResult:
            result = ApplyResult()
            late: list[tuple[int, float]] = []
            for applied, fenced, dups, touched, call_late in replies:
                result.applied += applied
                result.fenced += fenced
                result.duplicates += dups
                result.touched.extend(touched)
                late.extend(call_late)
            late.sort()
            result.late = [updates[i] for i, _ in late]
            result.late_watermark_ts = [wm for _, wm in late]
            result.touched.sort()
            return result

        return (self._apply, calls(), counted), finish

    # -- reads ------------------------------------------------------------------------------

    async def _read(
        self, grains: str, skus: Sequence[str], lengths: dict[str, int], end: Sequence[int] | None
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[SkuMeta | None]]:
        """Per grain read (``"d"``, ``"h"``): (end bucket per SKU, (n, length) BUCKET_DTYPE
        buckets); and the SKUs' meta. Both grains come from one Lua call per group of SKUs."""
        (script, calls, parse), finish = self._read_step(grains, skus, lengths, end)
        return finish(await script.run(self._client, calls, parse))

    def _read_step(self, grains: str, skus: Sequence[str], lengths: dict[str, int], end: Sequence[int] | None
                   ) -> tuple[Step, Callable[[list[Any]], tuple[dict[str, tuple[np.ndarray, np.ndarray]],
                                                                list[SkuMeta | None]]]]:
        """The read script's calls for :meth:`_read`, and what makes its result once they ran."""
        if any(length < 1 for length in lengths.values()):
            raise ValueError("length must be >= 1")
        if end is not None and len(end) != len(skus):
            raise ValueError("end must give one bucket per SKU")
        groups = self._groups(skus)
        fixed = [grains, str(self.day_slots), str(self.hour_slots), str(lengths.get("d", 1)), str(lengths.get("h", 1))]

        def calls() -> Iterator[Call]:
            for group in groups:
                keys: list[bytes] = []
                for g in group:
                    meta_key, day_key, hour_key = self._keys(skus[g])
                    keys.append(meta_key)
                    if "d" in grains:
                        keys.append(day_key)
                    if "h" in grains:
                        keys.append(hour_key)
                yield keys, [*fixed, *("" if end is None else str(int(end[g])) for g in group)]

        n = len(skus)
        out = {
            grain: (np.zeros(n, dtype=np.int64), np.zeros((n, lengths[grain]), dtype=BUCKET_DTYPE))
            for grain in grains
        }
        metas: list[SkuMeta | None] = [None] * n

        def place(call: int, reply: list[bytes]) -> None:
            # Writes rows no other call writes: running it again after a resend is harmless.
            header, day_bytes, hour_bytes, packed = reply
            buckets = {grain: decode_slots(day_bytes if grain == "d" else hour_bytes) for grain in grains}
            pos = dict.fromkeys(grains, 0)
            known = 0
            for g, row in zip(groups[call], orjson.loads(header), strict=True):
                if row[0] is not False:
                    fixed = packed[known * META_FORMAT.size : (known + 1) * META_FORMAT.size]
                    metas[g] = _unpack_meta(skus[g], fixed, row[0])
                    known += 1
                for k, grain in enumerate(grains):
                    e, lo, hi = row[1 + 3 * k : 4 + 3 * k]
                    if e is False:
                        continue  # unknown SKU and no end given: zeros, end bucket 0
                    ends, data = out[grain]
                    ends[g] = e
                    if lo <= hi:
                        first = e - lengths[grain] + 1
                        data[g, lo - first : hi - first + 1] = buckets[grain][pos[grain] : pos[grain] + hi - lo + 1]
                        pos[grain] += hi - lo + 1

        return (self._read_script, calls(), place), lambda _replies: (out, metas)

    @staticmethod
    def _days(skus: list[str], read: tuple[np.ndarray, np.ndarray], metas: list[SkuMeta | None]) -> DayWindows:
        ends, data = read
        return DayWindows(
            skus=skus,
            end_day=ends,
            units=data["units"].astype(np.float32),
            orders=data["orders"].astype(np.float32),
            revenue_milli=data["revenue_milli"].astype(np.float64),
            meta=metas,
        )

    @staticmethod
    def _hours(skus: list[str], read: tuple[np.ndarray, np.ndarray], metas: list[SkuMeta | None]) -> HourWindows:
        ends, data = read
        return HourWindows(
            skus=skus,
            end_hour=ends,
            units=data["units"].astype(np.float32),
            orders=data["orders"].astype(np.float32),
            revenue_milli=data["revenue_milli"].astype(np.float64),
            meta=metas,
        )

    async def read_days(self, skus: Sequence[str], length: int, end_day: Sequence[int] | None = None) -> DayWindows:
        skus = list(skus)
        out, metas = await self._read("d", skus, {"d": length}, end_day)
        return self._days(skus, out["d"], metas)

    async def read_hours(self, skus: Sequence[str], length: int, end_hour: Sequence[int] | None = None) -> HourWindows:
        skus = list(skus)
        out, metas = await self._read("h", skus, {"h": length}, end_hour)
        return self._hours(skus, out["h"], metas)

    async def read_recent(self, skus: Sequence[str], days: int, hours: int) -> tuple[DayWindows, HourWindows]:
        skus = list(skus)
        out, metas = await self._read("dh", skus, {"d": days, "h": hours}, None)
        return self._days(skus, out["d"], metas), self._hours(skus, out["h"], metas)

    async def meta(self, skus: Sequence[str]) -> list[SkuMeta | None]:
        # The read script decodes the meta (hashes of the previous layout too); one bucket is read.
        return (await self._read("d", list(skus), {"d": 1}, None))[1]

    async def totals(self, sku: str, grain: Grain) -> dict[int, tuple[int, int, int]]:
        g, slots = ("d", self.day_slots) if grain == "day" else ("h", self.hour_slots)
        out, metas = await self._read(g, [sku], {g: slots}, None)  # the whole ring, oldest first
        if metas[0] is None:
            return {}
        ends, data = out[g]
        row, first = data[0], int(ends[0]) - slots + 1
        nonzero = np.flatnonzero((row["units"] != 0) | (row["orders"] != 0) | (row["revenue_milli"] != 0))
        return {first + int(i): (int(row["units"][i]), int(row["orders"][i]), int(row["revenue_milli"][i]))
                for i in nonzero}


def _wire(u: OrderUpdate) -> list[Any]:
    """One event as ``window_apply.lua`` reads it."""
    return [
        u.partition,
        u.offset,
        u.event_ts,
        u.day,
        u.hour,
        u.units,
        u.revenue_milli,
        u.price,
        "#" + u.dedup_key,  # its field in the meta hash
        u.category or "",
    ]
