"""The WindowStore contract, run against a real standalone Redis and a real 3-node Redis Cluster.

Each test gets its own key prefix; the backends are started once per session (conftest.py).
"""

from __future__ import annotations

import asyncio
import random
import struct
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pytest
from redis.crc import key_slot

from streams.buckets import date_to_day, local_day_hour
from streams.redis_window_store import META_FORMAT, RedisWindowStore, sku_keys, sku_tag
from streams.window_store import OrderUpdate, WindowStore
from tests.contract.conftest import STORE_DEFAULTS, Backend
from tests.contract.window_reference import ReferenceWindows

pytestmark = pytest.mark.contract

TZ = "Europe/London"
T0 = datetime(2024, 6, 3, 9, 0, tzinfo=UTC).timestamp()  # a Monday, 10:00 local (BST)
HOUR = 3600.0


def upd(
    sku: str, offset: int, ts: float, *, units: int = 1, price: float = 1.5, key: str | None = None,
    partition: int = 0, category: str | None = "toys",
) -> OrderUpdate:  # fmt: skip
    day, hour = local_day_hour(np.array([ts]), TZ)
    return OrderUpdate(
        sku=sku, partition=partition, offset=offset, dedup_key=key or f"ord{partition}-{offset}#0",
        event_ts=ts, day=int(day[0]), hour=int(hour[0]), units=units,
        revenue_milli=round(units * price * 1000), price=price, category=category,
    )  # fmt: skip


def expected_totals(updates: list[OrderUpdate], grain: str) -> dict[int, tuple[int, int, int]]:
    sums: dict[int, list[int]] = {}
    for u in updates:
        s = sums.setdefault(u.day if grain == "day" else u.hour, [0, 0, 0])
        s[0] += u.units
        s[1] += 1
        s[2] += u.revenue_milli
    return {b: (v[0], v[1], v[2]) for b, v in sorted(sums.items())}


def stream(seed: int, n_events: int = 1500, n_skus: int = 12, span_days: float = 30) -> list[OrderUpdate]:
    """A Kafka-like stream: per-partition offsets, mostly in time order, some stragglers within
    and beyond the grace period, producer retries (same order line, new offset), odd SKU ids."""
    rng = random.Random(seed)
    skus = [f"SKU-{i}" for i in range(n_skus - 2)] + ["weird{sku}", "%7B"]
    offsets = [0, 0, 0]
    out: list[OrderUpdate] = []
    step = span_days * 86_400 / n_events
    for i in range(n_events):
        if rng.random() < 0.06 and out:
            prior = rng.choice(out[-200:])  # producer retry: same line, same time, new offset
            out.append(
                OrderUpdate(prior.sku, prior.partition, offsets[prior.partition], prior.dedup_key,
                            prior.event_ts, prior.day, prior.hour, prior.units, prior.revenue_milli,
                            prior.price, prior.category)
            )  # fmt: skip
            offsets[prior.partition] += 1
            continue
        sku = skus[min(int(rng.expovariate(0.25)), n_skus - 1)]
        partition = skus.index(sku) % 3
        ts = T0 + i * step + rng.uniform(0, 60)
        if rng.random() < 0.08:
            ts -= rng.uniform(0.2, 2.5) * HOUR  # straggler: some within the 1 h grace, some not
        out.append(upd(sku, offsets[partition], ts, units=rng.randint(1, 40), price=rng.choice([0.42, 1.25, 7.95]),
                       partition=partition, category=rng.choice([None, "home", "toys"])))  # fmt: skip
        offsets[partition] += 1
    return sorted(out, key=lambda u: (u.partition, u.offset))  # a valid per-partition order


def at_least_once(updates: list[OrderUpdate], seed: int, batch: int = 97) -> list[list[OrderUpdate]]:
    """Deliveries of ``updates`` as a crashing consumer sees them: every event at least once,
    in order, with rewinds of 1-3 batches after random crashes."""
    rng = random.Random(seed)
    deliveries: list[list[OrderUpdate]] = []
    pos = 0
    while pos < len(updates):
        size = rng.randint(1, batch)
        deliveries.append(updates[pos : pos + size])
        pos += size
        if rng.random() < 0.3:
            pos = max(0, pos - rng.randint(1, 3) * size)  # crash before commit: re-consume
    return deliveries


def reference() -> ReferenceWindows:
    keys = ("grace_s", "dedup_horizon_s", "day_retention", "hour_retention")
    return ReferenceWindows(**{k: STORE_DEFAULTS[k] for k in keys})


async def replay(store: WindowStore, deliveries: list[list[OrderUpdate]]) -> dict[str, Any]:
    """Apply every delivery; return everything observable, for comparisons."""
    applied = fenced = dups = 0
    late: list[OrderUpdate] = []
    for d in deliveries:
        r = await store.apply(d)
        applied, fenced, dups = applied + r.applied, fenced + r.fenced, dups + r.duplicates
        late += r.late
        assert r.touched == sorted(set(r.touched)) and set(r.touched) <= {u.sku for u in d}
        assert r.applied + r.fenced + r.duplicates + len(r.late) == len(d)
    skus = sorted({u.sku for d in deliveries for u in d})
    days = await store.read_days(skus, 12)
    hours = await store.read_hours(skus, 60)
    return {
        "counts": (applied, fenced, dups),
        "late": late,
        "day_totals": {s: await store.totals(s, "day") for s in skus},
        "hour_totals": {s: await store.totals(s, "hour") for s in skus},
        "meta": await store.meta(skus),
        "days": (days.end_day.tolist(), days.units.tolist(), days.orders.tolist(), days.revenue_milli.tolist()),
        "hours": (hours.end_hour.tolist(), hours.units.tolist(), hours.revenue_milli.tolist()),
    }


def test_store_satisfies_protocol(backend: Backend) -> None:
    async def body(store: RedisWindowStore, client: Any) -> None:
        assert isinstance(store, WindowStore)

    backend.run(body)


def test_same_batch_twice_leaves_exact_totals(backend: Backend) -> None:
    batch = [upd(f"S{i % 5}", i, T0 + i * 600, units=i + 1) for i in range(40)]

    async def body(store: RedisWindowStore, client: Any) -> None:
        first = await store.apply(batch)
        again = await store.apply(batch)
        assert (first.applied, first.fenced, first.duplicates, first.late) == (40, 0, 0, [])
        assert first.touched == [f"S{i}" for i in range(5)]
        assert (again.applied, again.fenced, again.touched) == (0, 40, [])
        for i in range(5):
            mine = [u for u in batch if u.sku == f"S{i}"]
            assert await store.totals(f"S{i}", "day") == expected_totals(mine, "day")
            assert await store.totals(f"S{i}", "hour") == expected_totals(mine, "hour")

    backend.run(body)


@pytest.mark.parametrize("batch", [97, 1], ids=["batches", "one-event-calls"])
def test_redelivery_with_rewinds_matches_the_reference_exactly(backend: Backend, batch: int) -> None:
    # batch 1: every SKU of every Lua call has a single event (the script's own path for that)
    events = stream(seed=7)
    deliveries = at_least_once(events, seed=11, batch=batch)
    assert sum(map(len, deliveries)) > len(events) * 1.2  # the plan really redelivers
    ref = reference()
    want = ref.apply(events)
    assert want.applied and want.duplicates and want.late  # the stream exercises every path

    got = backend.run(lambda store, client: replay(store, deliveries))
    assert got["counts"][0] == want.applied
    assert got["counts"][2] == want.duplicates
    assert got["counts"][1] == sum(map(len, deliveries)) - len(events)  # every extra copy fenced
    assert got["late"] == want.late  # each late event reported once, in stream order
    for sku in got["day_totals"]:
        assert got["day_totals"][sku] == ref.totals(sku, "day"), sku
        assert got["hour_totals"][sku] == ref.totals(sku, "hour"), sku
    assert got["meta"] == [ref.meta(s) for s in sorted(got["day_totals"])]


def test_an_older_batch_after_a_newer_one_is_fenced_per_partition(backend: Backend) -> None:
    older = [upd("S", i, T0 + i * 60) for i in range(10)]
    newer = [upd("S", i, T0 + i * 60) for i in range(10, 20)]
    other_partition = [upd("S", i, T0 + 1300 + i, partition=1) for i in range(3)]

    async def body(store: RedisWindowStore, client: Any) -> None:
        assert (await store.apply(newer)).applied == 10
        replayed = await store.apply(older)
        assert (replayed.applied, replayed.fenced) == (0, 10)
        assert (await store.apply(other_partition)).applied == 3  # offsets are per partition
        assert (await store.apply(older + newer + other_partition)).fenced == 23
        assert await store.totals("S", "day") == expected_totals(newer + other_partition, "day")

    backend.run(body)


def test_duplicate_order_line_with_new_offset_is_counted_once(backend: Backend) -> None:
    first = upd("S", 0, T0, units=5, key="A-1#0")
    retry_later = upd("S", 7, T0, units=5, key="A-1#0")
    retry_same_batch = [upd("S", 8, T0 + 10, units=2, key="B#0"), upd("S", 9, T0 + 10, units=2, key="B#0")]
    reused_after_horizon = upd("S", 10, T0 + 2 * 86_400, units=3, key="A-1#0")

    async def body(store: RedisWindowStore, client: Any) -> None:
        await store.apply([first])
        r = await store.apply([retry_later, *retry_same_batch])
        assert (r.applied, r.duplicates, r.fenced) == (1, 2, 0)
        assert await store.totals("S", "day") == {first.day: (7, 2, 10_500)}
        # beyond the dedup horizon (1 day here) the same key is a new order line
        assert (await store.apply([reused_after_horizon])).applied == 1

    backend.run(body)


def test_late_within_grace_lands_in_its_bucket_beyond_grace_is_returned(backend: Backend) -> None:
    midnight = datetime(2024, 6, 4, 23, 0, tzinfo=UTC).timestamp()  # 00:00 BST, 5 June
    head = upd("S", 0, midnight + 1800, units=4)  # 00:30 on 5 June
    in_grace = upd("S", 1, midnight - 1200, units=3)  # 50 min earlier: 23:40 on 4 June
    beyond = upd("S", 2, midnight + 1800 - 2 * HOUR, units=9)  # 2 h behind the watermark

    async def body(store: RedisWindowStore, client: Any) -> None:
        await store.apply([head])
        r = await store.apply([in_grace, beyond])
        assert (r.applied, r.late, r.late_watermark_ts) == (1, [beyond], [head.event_ts])
        assert r.touched == ["S"]
        assert await store.totals("S", "day") == {in_grace.day: (3, 1, 4500), head.day: (4, 1, 6000)}
        assert in_grace.day == head.day - 1
        again = await store.apply([in_grace, beyond])  # redelivered: fenced, not reported again
        assert (again.fenced, again.late) == (2, [])
        meta = (await store.meta(["S"]))[0]
        assert meta is not None and meta.watermark_ts == head.event_ts  # late events never move it

    backend.run(body)


def test_watermark_and_meta(backend: Backend) -> None:
    a = upd("S", 0, T0, price=2.0, category="toys")
    b = upd("S", 1, T0 + 5 * HOUR, price=3.0, category=None)  # latest: price, keeps category
    c = upd("S", 2, T0 + 4.5 * HOUR, price=9.0, category="garden")  # older than b: no effect

    async def body(store: RedisWindowStore, client: Any) -> None:
        assert await store.meta(["S", "nobody"]) == [None, None]
        await store.apply([a, b, c])
        meta = (await store.meta(["S"]))[0]
        assert meta is not None
        assert (meta.first_seen_ts, meta.watermark_ts, meta.last_price) == (a.event_ts, b.event_ts, 3.0)
        assert meta.category == "toys"
        assert (meta.watermark_day, meta.watermark_hour) == (b.day, b.hour)
        # an in-grace event older than the first one moves first_seen back
        await store.apply([upd("F", 0, T0), upd("F", 1, T0 - 0.5 * HOUR)])
        meta = (await store.meta(["F"]))[0]
        assert meta is not None and meta.first_seen_ts == T0 - 0.5 * HOUR and meta.watermark_ts == T0

    backend.run(body)


async def rewrite_as_legacy(client: Any, meta_key: str) -> None:
    """Turn a SKU's meta hash into the layout written before the meta was packed: one text field
    per value, the dedup keys' event times as text."""
    fields = await client.hgetall(meta_key)
    wm, fs, sm, pr, ex, wd, wh, bd, bh = META_FORMAT.unpack(fields[b"m"][: META_FORMAT.size])
    legacy = {"wm": repr(wm), "fs": repr(fs), "sm": repr(sm), "pr": repr(pr), "ex": int(ex),
              "wd": wd, "wh": wh, "bd": bd, "bh": bh, "cat": fields[b"m"][META_FORMAT.size :]}  # fmt: skip
    for f, v in fields.items():
        if f.startswith(b"#"):
            legacy[f.decode()] = repr(struct.unpack(">d", v)[0])
    await client.hdel(meta_key, "m")
    await client.hset(meta_key, mapping=legacy)


@pytest.mark.parametrize("per_call", [2, 1], ids=["batch", "one-event-calls"])
def test_a_hash_written_before_the_meta_was_packed_is_read_and_then_rewritten(
    backend: Backend, per_call: int
) -> None:
    a = upd("S", 0, T0, units=2, price=2.0, category="toys", key="A#0")
    b = upd("S", 1, T0 + 5 * HOUR, units=3, price=3.0, key="B#0")
    retry = upd("S", 2, T0, units=2, key="A#0")  # producer retry of a: a duplicate
    c = upd("S", 3, T0 + 6 * HOUR, units=4, price=4.0)

    async def body(store: RedisWindowStore, client: Any) -> None:
        meta_key = sku_keys(store.prefix, "S")[0]
        await store.apply([a, b])
        before = (await store.meta(["S"]), await store.totals("S", "day"), await store.totals("S", "hour"))
        days = (await store.read_days(["S"], 3)).units.tolist()
        await rewrite_as_legacy(client, meta_key)
        assert not await client.hexists(meta_key, "m")
        assert (await store.meta(["S"]), await store.totals("S", "day"), await store.totals("S", "hour")) == before
        assert (await store.read_days(["S"], 3)).units.tolist() == days
        rest = [retry, c]
        results = [await store.apply(rest[i : i + per_call]) for i in range(0, len(rest), per_call)]
        assert sum(r.duplicates for r in results) == 1 and sum(r.applied for r in results) == 1
        assert await store.totals("S", "day") == expected_totals([a, b, c], "day")
        meta = (await store.meta(["S"]))[0]
        assert meta is not None and (meta.watermark_ts, meta.last_price, meta.category) == (c.event_ts, 4.0, "toys")
        assert meta.first_seen_ts == a.event_ts
        fields = set(await client.hkeys(meta_key))
        assert b"m" in fields and not fields & {b"wm", b"fs", b"wd", b"bd", b"cat"}

    backend.run(body)


def test_retention_trims_days_and_hours(backend: Backend) -> None:
    # day_retention 10 → days wd-10..wd kept; hour_retention 2 days → 49 hours kept
    daily = [upd("S", i, T0 + i * 86_400, units=i + 1) for i in range(25)]

    async def body(store: RedisWindowStore, client: Any) -> None:
        for i in range(0, 25, 4):
            await store.apply(daily[i : i + 4])
        wd, wh = daily[-1].day, daily[-1].hour
        days = await store.totals("S", "day")
        assert sorted(days) == [u.day for u in daily if u.day >= wd - 10]
        assert days[wd - 10] == (15, 1, 22_500)
        assert sorted(await store.totals("S", "hour")) == [u.hour for u in daily if u.hour >= wh - 48]
        meta_key = sku_keys(store.prefix, "S")[0]  # dedup horizon 1 day: trimmed with 1/4 slack
        assert 1 <= sum(f.startswith(b"#") for f in await client.hkeys(meta_key)) <= 2
        window = await store.read_days(["S"], 30)
        assert window.units[0].tolist() == [0.0] * 19 + [float(u.units) for u in daily[14:]]
        old = await store.read_days(["S"], 5, end_day=[wd - 12])  # all of it beyond retention
        assert not old.units.any() and old.end_day.tolist() == [wd - 12]
        # a jump of more than the retention clears everything before it
        await store.apply([upd("S", 99, daily[-1].event_ts + 40 * 86_400, units=2)])
        assert list((await store.totals("S", "day")).values()) == [(2, 1, 3000)]
        assert len(await store.totals("S", "hour")) == 1
        # within one call: a bucket that expires by the call's own end is not counted (it would
        # share a ring slot with the newest bucket)
        jump = [upd("J", 0, T0, units=1), upd("J", 1, T0 + 11 * 86_400, units=4)]
        await store.apply(jump)
        assert await store.totals("J", "day") == {jump[1].day: (4, 1, 6000)}
        assert await store.totals("J", "hour") == {jump[1].hour: (4, 1, 6000)}

    backend.run(body)


@pytest.mark.parametrize("per_call", [3, 1], ids=["batches", "one-event-calls"])
def test_expired_slots_are_zeroed_for_every_step_of_the_watermark(backend: Backend, per_call: int) -> None:
    # The hour ring (49 slots) wraps several times. Steps of 1 and 2 hours zero their slots in
    # the same BITFIELD as the increments (one event a call: the new bucket's slot is SET),
    # longer ones with SETRANGE; every path leaves exactly the last 49 hours.
    steps = [1, 2, 3, 1, 1, 5, 2, 1, 7, 2, 2, 1, 4, 1] * 8
    events, ts = [], T0
    for i, step in enumerate(steps):
        ts += step * HOUR
        events.append(upd("S", i, ts, units=i % 9 + 1))

    async def body(store: RedisWindowStore, client: Any) -> None:
        for i in range(0, len(events), per_call):
            await store.apply(events[i : i + per_call])
        top = events[-1].hour
        assert await store.totals("S", "hour") == expected_totals([u for u in events if u.hour > top - 49], "hour")
        assert await store.totals("S", "day") == expected_totals(
            [u for u in events if u.day > events[-1].day - 11], "day"
        )

    backend.run(body)


def test_read_days_is_dense_and_aligned_at_end_day(backend: Backend) -> None:
    events = [upd("A", 0, T0 - 3 * 86_400, units=2), upd("A", 1, T0, units=5), upd("B", 0, T0 - 86_400, units=7)]
    d = events[1].day

    async def body(store: RedisWindowStore, client: Any) -> None:
        await store.apply(events)
        w = await store.read_days(["A", "B", "nobody"], 5)
        assert w.skus == ["A", "B", "nobody"]
        assert w.end_day.tolist() == [d, d - 1, 0]  # each SKU's watermark day, inclusive
        assert w.units.dtype == np.float32 and w.revenue_milli.dtype == np.float64
        assert w.units.tolist() == [[0, 2, 0, 0, 5], [0, 0, 0, 0, 7], [0, 0, 0, 0, 0]]
        assert w.orders.tolist() == [[0, 1, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5]
        assert w.revenue_milli[0].tolist() == [0, 3000, 0, 0, 7500]
        assert [m.sku if m else None for m in w.meta] == ["A", "B", None]
        w = await store.read_days(["A", "B", "nobody"], 3, end_day=[d - 1, d + 1, d])
        assert w.end_day.tolist() == [d - 1, d + 1, d]
        assert w.units.tolist() == [[2, 0, 0], [7, 0, 0], [0, 0, 0]]  # nothing after the watermark

    backend.run(body)


def test_read_recent_is_read_days_and_read_hours_in_one_call(backend: Backend) -> None:
    events = stream(seed=21, n_events=600, n_skus=12, span_days=12)
    skus = [*sorted({e.sku for e in events}), "nobody"]

    async def body(store: RedisWindowStore, client: Any) -> None:
        for i in range(0, len(events), 100):
            await store.apply(events[i : i + 100])
        days, hours = await store.read_recent(skus, 9, 30)
        alone_days, alone_hours = await store.read_days(skus, 9), await store.read_hours(skus, 30)
        for got, want in ((days, alone_days), (hours, alone_hours)):
            assert got.skus == want.skus == skus
            assert got.meta == want.meta
            for name in ("units", "orders", "revenue_milli"):
                np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert days.end_day.tolist() == alone_days.end_day.tolist()
        assert hours.end_hour.tolist() == alone_hours.end_hour.tolist()
        assert days.units.sum() > 0 and hours.units.sum() > 0  # the windows really hold orders
        assert days.meta[-1] is None and days.units[-1].sum() == 0 == hours.units[-1].sum()

    # one SKU per call too: the bytes of each grain are split per SKU correctly
    backend.run(body)
    backend.run(body, skus_per_call=1)


@pytest.mark.parametrize("per_call", [64, 1], ids=["batches", "one-sku-calls"])
def test_apply_and_read_is_apply_then_read_recent(backend: Backend, per_call: int) -> None:
    events = stream(seed=22, n_events=600, n_skus=12, span_days=12)
    skus = [*sorted({e.sku for e in events}), "nobody"]
    ref = reference()
    expected = ref.apply(events)

    async def body(store: RedisWindowStore, client: Any) -> None:
        for i in range(0, len(events), 100):
            batch = events[i : i + 100]
            result, days, hours = await store.apply_and_read(batch, skus, 9, 30)
            assert result.applied + result.fenced + result.duplicates + len(result.late) == len(batch)
            alone_days, alone_hours = await store.read_recent(skus, 9, 30)
            assert hours is not None
            for got, want in ((days, alone_days), (hours, alone_hours)):
                assert got.skus == want.skus == skus and got.meta == want.meta
                for name in ("units", "orders", "revenue_milli"):
                    np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
            assert days.end_day.tolist() == alone_days.end_day.tolist()
        assert expected.applied and expected.late  # the stream has late events too
        for sku in skus[:-1]:  # the batches wrote exactly what the reference counts
            assert await store.totals(sku, "day") == ref.totals(sku, "day"), sku
        # Without hours (a detector that reads none), and after the server lost its scripts: the
        # update is sent again and the read, run after it, sees it.
        await client.script_flush()
        result, days, hours = await store.apply_and_read([upd("late-comer", 0, T0)], ["late-comer"], 2, 0)
        assert result.applied == 1 and hours is None and days.orders.tolist() == [[0.0, 1.0]]

    backend.run(body, skus_per_call=per_call)


@pytest.mark.parametrize(
    ("day", "utc_times", "expected_local_hours"),
    [
        # 31 March 2024: 01:00 GMT → 02:00 BST; local hour 1 never happens
        (date(2024, 3, 31), ["2024-03-31T00:30", "2024-03-31T01:30", "2024-03-31T02:30"], [0, 2, 3]),
        # 27 October 2024: 02:00 BST → 01:00 GMT; local hour 1 happens twice
        (date(2024, 10, 27), ["2024-10-26T23:30", "2024-10-27T00:30", "2024-10-27T01:30", "2024-10-27T02:30"],
         [0, 1, 1, 2]),
    ],
)  # fmt: skip
def test_hour_buckets_follow_the_london_wall_clock_across_dst(
    backend: Backend, day: date, utc_times: list[str], expected_local_hours: list[int]
) -> None:
    times = [datetime.fromisoformat(t).replace(tzinfo=UTC).timestamp() for t in utc_times]
    events = [upd("S", i, ts, units=10 + i) for i, ts in enumerate(times)]
    base = date_to_day(day) * 24

    async def body(store: RedisWindowStore, client: Any) -> None:
        assert (await store.apply(events)).applied == len(events)
        hours = await store.totals("S", "hour")
        want: dict[int, tuple[int, int, int]] = {}
        for h, e in zip(expected_local_hours, events, strict=True):
            u, o, r = want.get(base + h, (0, 0, 0))
            want[base + h] = (u + e.units, o + 1, r + e.revenue_milli)
        assert hours == want
        assert await store.totals("S", "day") == {
            date_to_day(day): (sum(e.units for e in events), len(events), sum(e.revenue_milli for e in events))
        }
        w = await store.read_hours(["S"], 4, end_hour=[base + 3])
        assert w.orders[0].tolist() == [float(expected_local_hours.count(h)) for h in range(4)]

    backend.run(body)


def test_scripts_are_reloaded_after_script_flush(backend: Backend) -> None:
    async def body(store: RedisWindowStore, client: Any) -> None:
        await store.apply([upd("S", 0, T0)])
        await client.script_flush()  # a restart or failover loses the script cache
        assert (await store.apply([upd("S", 1, T0 + 1)])).applied == 1
        await client.script_flush()
        assert (await store.read_days(["S"], 2)).orders.tolist() == [[0.0, 2.0]]

    backend.run(body)


def test_a_skus_keys_share_one_slot_and_expire_when_idle(backend: Backend) -> None:
    async def body(store: RedisWindowStore, client: Any) -> None:
        await store.apply([upd("we{ir}d", 0, T0), upd("plain", 0, T0)])
        for sku in ("we{ir}d", "plain"):
            keys = sku_keys(store.prefix, sku)
            assert len({key_slot(k.encode()) for k in keys}) == 1
            assert key_slot(keys[0].encode()) == key_slot(sku_tag(sku).encode())
            ttls = [await client.ttl(k) for k in keys]
            assert 3500 <= ttls[0] <= 3600 and all(3600 < t <= 3660 for t in ttls[1:]), ttls

    backend.run(body)


def test_ttls_are_refreshed_by_activity_and_a_sku_without_meta_starts_over(backend: Backend) -> None:
    async def body(store: RedisWindowStore, client: Any) -> None:
        meta_key, day_key, _ = sku_keys(store.prefix, "S")
        await store.apply([upd("S", 0, T0, units=5)])
        await asyncio.sleep(1.2)  # idle_ttl 16 s: refreshed at most once a second
        assert await client.ttl(meta_key) <= 15
        await store.apply([upd("S", 1, T0 + 60)])
        assert await client.ttl(meta_key) in (15, 16) and await client.ttl(day_key) in (75, 76)
        # the meta expires first; a ring left behind must not leak into the SKU's next life
        await client.delete(meta_key)
        await store.apply([upd("S", 2, T0 + 120, units=2)])
        assert await store.totals("S", "day") == {upd("S", 2, T0).day: (2, 1, 3000)}

    backend.run(body, idle_ttl_s=16.0)


def test_results_are_identical_on_both_backends(both_backends: list[Backend]) -> None:
    events = stream(seed=3, n_events=900, span_days=20)
    deliveries = at_least_once(events, seed=5, batch=300)
    standalone, cluster = (b.run(lambda store, client: replay(store, deliveries)) for b in both_backends)
    assert standalone == cluster
    # how SKUs are grouped into Lua calls changes nothing either
    assert both_backends[0].run(lambda store, client: replay(store, deliveries), skus_per_call=2) == standalone
    assert standalone["counts"][0] > 0 and standalone["late"]


def test_a_bucket_beyond_its_slot_range_saturates_instead_of_wrapping(backend: Backend) -> None:
    # 100,000 units at 9,000 each: 9e8 in revenue, beyond the i40 milli field (±5.49e8).
    big = upd("BIG", 0, T0, units=100_000, price=9_000.0)
    small = upd("BIG", 1, T0 + 60, units=3, price=2.0)

    async def body(store: RedisWindowStore, client: Any) -> dict[int, tuple[int, int, int]]:
        await store.apply([big, small])
        return await store.totals("BIG", "day")

    totals = backend.run(body)
    assert totals == {big.day: (100_003, 2, 2**39 - 1)}
