"""LatestOutputs on the real Redis: latest forecast per SKU, the movers ranking and its cap, the
open-alerts hash through an alert's lifecycle, and the bounded list of recent alert events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

import pytest
import redis.asyncio as aioredis

from streams.contracts import AlertEvent, ForecastEvent
from streams.latest_store import LatestOutputs, mover_score
from tests.support import drop_prefix_and_close, unique

pytestmark = [pytest.mark.integration]

T0 = datetime(2011, 12, 9, 12, 0, tzinfo=UTC)


def forecast(sku: str, level: float, made_at: datetime = T0) -> ForecastEvent:
    return ForecastEvent(sku=sku, made_at=made_at, as_of=made_at, start_date=date(2011, 12, 9), horizon=3,
                         quantiles=[0.1, 0.5, 0.9], values=[[level / 2, level, level * 2]] * 3,
                         model_version="v1", history_days=30)


def alert(sku: str, state: str, severity: str = "warning", score: float = 5.0, n: int = 0) -> AlertEvent:
    return AlertEvent(alert_id=f"id-{sku}", sku=sku, state=state, kind="surge", severity=severity,  # type: ignore[arg-type]
                      day=date(2011, 12, 9), event_time=T0, observed=100.0 + n, expected=10.0, lower=2.0,
                      upper=20.0, score=score, festival="Christmas" if sku == "B" else None,
                      model_version="v1", made_at=T0)


def run(coro_fn: Callable[[LatestOutputs, aioredis.Redis], Awaitable[None]], **kwargs: int) -> None:
    async def main() -> None:
        client = aioredis.Redis(host="127.0.0.1", port=6379)
        prefix = unique("latest")
        try:
            await coro_fn(LatestOutputs(client, prefix, **kwargs), client)
        finally:
            await drop_prefix_and_close(client, prefix)

    asyncio.run(main())


def test_latest_forecast_per_sku_round_trips(services: None) -> None:
    async def check(latest: LatestOutputs, client: aioredis.Redis) -> None:
        old, new = forecast("A", 5.0), forecast("A", 7.0, made_at=T0.replace(hour=13))
        await latest.record([old, forecast("{odd}", 1.0)], [])
        await latest.record([new], [])
        assert await latest.forecast("A") == new
        assert await latest.forecasts(["A", "missing", "{odd}"]) == [new, None, forecast("{odd}", 1.0)]
        assert await latest.forecast("missing") is None
        # Hash-tagged by SKU beside the window store's keys, braces percent-encoded.
        assert await client.exists(latest.forecast_key("A")) and latest.forecast_key("A").endswith(":{A}:fc")
        assert latest.forecast_key("{odd}").endswith(":{%7Bodd%7D}:fc")
        assert 0 < await client.ttl(latest.forecast_key("A")) <= 430 * 86_400
        # The bytes already sent to Kafka are stored as they are (serialised once per batch).
        from streams.contracts import wire_json

        newer = forecast("A", 9.0, made_at=T0.replace(hour=14))
        await latest.record([newer], [], [wire_json(newer)])
        assert await client.get(latest.forecast_key("A")) == wire_json(newer)
        assert await latest.forecast("A") == newer

    run(check)


def test_movers_rank_by_expected_units_and_stay_capped(services: None) -> None:
    async def check(latest: LatestOutputs, client: aioredis.Redis) -> None:
        await latest.record([forecast(s, lvl) for s, lvl in [("A", 1), ("B", 9), ("C", 4), ("D", 6), ("E", 2)]], [])
        top = await latest.top_movers(10)
        assert [s for s, _ in top] == ["B", "D", "C"]  # capped at 3: A and E dropped
        assert top[0][1] == mover_score(forecast("B", 9)) == 27.0  # 3 days of p50 = 9
        await latest.record([forecast("B", 0.5)], [])  # B slows down
        assert [s for s, _ in await latest.top_movers(2)] == ["D", "C"]
        assert await latest.top_movers(0) == []

    run(check, max_movers=3)


def test_open_alerts_follow_the_lifecycle(services: None) -> None:
    async def check(latest: LatestOutputs, client: aioredis.Redis) -> None:
        await latest.record([], [alert("A", "opened"), alert("B", "opened", "critical", 12.0)])
        assert [a.sku for a in await latest.open_alerts()] == ["B", "A"]  # most severe first
        updated = alert("A", "updated", "critical", 20.0)
        await latest.record([], [updated])
        assert (await latest.open_alerts())[0] == updated
        await latest.record([], [alert("A", "resolved", "critical")])
        assert [a.sku for a in await latest.open_alerts()] == ["B"]
        # Opened and resolved inside one batch: applied in order, nothing left open.
        await latest.record([], [alert("C", "opened"), alert("C", "resolved")])
        assert [a.sku for a in await latest.open_alerts()] == ["B"]
        recent = await latest.recent_alerts(10)
        assert [(a.sku, a.state) for a in recent] == [("C", "resolved"), ("C", "opened"), ("A", "resolved"),
                                                      ("A", "updated"), ("B", "opened"), ("A", "opened")][:4]
        assert (await latest.open_alerts())[0].festival == "Christmas"

    run(check, max_recent_alerts=4)

