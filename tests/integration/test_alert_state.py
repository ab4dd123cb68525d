"""Alert state on the real Redis: per-SKU hash-tagged hashes, stock levels, and a restarted
tracker that neither re-opens an open alert nor forgets to resolve it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio as aioredis

from model.surge import AlertState
from model.thresholds import Thresholds
from tests.support import drop_prefix_and_close, unique
from tests.unit.test_alerting import DAY, NOW, batch_scores
from worker.alerting import AlertTracker, RedisAlertStates, set_stock

pytestmark = [pytest.mark.integration]


def run(body: Callable[[aioredis.Redis, str], Awaitable[None]]) -> None:
    async def main() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=6379)
        prefix = unique("alerts")
        try:
            await body(client, prefix)
        finally:
            await drop_prefix_and_close(client, prefix)

    asyncio.run(main())


def test_states_round_trip_in_hash_tagged_keys(services: None) -> None:
    async def body(client: aioredis.Redis, prefix: str) -> None:
        states = RedisAlertStates(client, prefix)
        assert states.key("85123A") == f"{prefix}:{{85123A}}:a"
        assert states.key("a{b}") == f"{prefix}:{{a%7Bb%7D}}:a"  # braces never break the hash tag
        surge = AlertState("abc", "warning", DAY * 24 + 10, DAY)
        drop = AlertState("def", "info", DAY * 24 + 11, DAY, resolved_hour=DAY * 24 + 40)
        await states.save([("A", "surge", surge), ("B", "drop", drop)])
        await set_stock(client, prefix, "A", 120.5)
        loaded = await states.load(["A", "B", "C"])
        assert loaded[0].states == {"surge": surge} and loaded[0].stock == 120.5
        assert loaded[1].states == {"drop": drop} and loaded[1].stock is None
        assert loaded[2].states == {} and loaded[2].stock is None
        await set_stock(client, prefix, "A", None)
        assert (await states.load(["A"]))[0].stock is None
        await client.hset(states.key("C"), "surge", b"not json")  # unreadable: treated as none
        assert (await states.load(["C"]))[0].states == {}

    run(body)


def test_a_restarted_tracker_keeps_the_lifecycle(services: None) -> None:
    async def body(client: aioredis.Redis, prefix: str) -> None:
        first = AlertTracker(RedisAlertStates(client, prefix), Thresholds(), cooldown_hours=6)
        scores, ctx = batch_scores([60.0, 6.0])
        opened = first.decide(scores, ctx, await first.load(ctx.skus), "v1", NOW)  # type: ignore[arg-type]
        assert [e.state for e in opened] == ["opened"]
        await first.save(first.take_pending())

        # "Restart": a new tracker, only Redis in common.
        second = AlertTracker(RedisAlertStates(client, prefix), Thresholds(), cooldown_hours=6)
        await set_stock(client, prefix, "S0", 500.0)
        assert second.decide(scores, ctx, await second.load(ctx.skus), "v1", NOW) == []  # type: ignore[arg-type]
        calm, calm_ctx = batch_scores([6.0, 6.0])
        calm_ctx.day, calm_ctx.hour = calm_ctx.day + 1, calm_ctx.hour + 24
        resolved = second.decide(calm, calm_ctx, await second.load(calm_ctx.skus), "v1", NOW)  # type: ignore[arg-type]
        assert [(e.state, e.alert_id) for e in resolved] == [("resolved", opened[0].alert_id)]
        await second.save(second.take_pending())
        stored = (await RedisAlertStates(client, prefix).load(["S0"]))[0]
        assert not stored.states["surge"].is_open and stored.stock == 500.0

    run(body)
