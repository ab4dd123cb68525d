"""The latest outputs in Redis, so that any worker can answer queries about any SKU.

The owning worker writes each batch's forecasts and alert events here after emitting them to
Kafka; the HTTP API of every worker reads them. Key layout (``prefix`` shared with the window
store; per-SKU keys carry the SKU's hash tag, so they live in its cluster slot)::

    <prefix>:{<sku>}:fc     string  the SKU's latest ForecastEvent, JSON
    <prefix>:movers         zset    SKU → expected units over the next ``MOVER_DAYS`` days (p50),
                                    capped at ``max_movers`` members (the smallest are dropped)
    <prefix>:alerts:open    hash    SKU → its open AlertEvent, JSON (one open alert per SKU)
    <prefix>:alerts:recent  list    the latest ``max_recent_alerts`` AlertEvents, newest first

Writes are last-writer-wins: one worker owns a SKU's partition, so a SKU has one writer except
for the moment of a rebalance.

Usage (``client`` a ``redis.asyncio.Redis`` or ``RedisCluster``)::

    latest = LatestOutputs(client, "skc")
    await latest.record(forecasts, alerts)
    fc = await latest.forecast("85123A")          # ForecastEvent | None
    top = await latest.top_movers(8)               # [(sku, expected units), ...]
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from typing import cast

from redis.asyncio import Redis, RedisCluster

from streams.contracts import AlertEvent, ForecastEvent, wire_json
from streams.contracts import forecast_json as as_json
from streams.redis_scripts import set_many, sku_tag

MOVER_DAYS = 7
"""A mover's score: the p50 forecast summed over this many days (or the horizon, if shorter)."""


def mover_score(fc: ForecastEvent) -> float:
    """Expected units over the first ``MOVER_DAYS`` forecast days, at the median quantile."""
    mid = _median_index(tuple(fc.quantiles))
    return float(sum(day[mid] for day in fc.values[:MOVER_DAYS]))


@functools.lru_cache(maxsize=64)
def _median_index(quantiles: tuple[float, ...]) -> int:
    return min(range(len(quantiles)), key=lambda q: abs(quantiles[q] - 0.5))


class LatestOutputs:
    """Latest forecast per SKU, the movers ranking, open alerts and recent alert events."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        prefix: str,
        *,
        max_movers: int = 1000,
        max_recent_alerts: int = 200,
        forecast_ttl_s: int = 430 * 86_400,
    ) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("prefix must be non-empty and free of braces (they are the hash tag)")
        if max_movers < 1 or max_recent_alerts < 1 or forecast_ttl_s < 1:
            raise ValueError("max_movers, max_recent_alerts and forecast_ttl_s must be positive")
        self._client = client
        self._prefix = prefix
        self._max_movers = max_movers
        self._max_recent = max_recent_alerts
        self._ttl = forecast_ttl_s
        self.movers_key = f"{prefix}:movers"
        self.open_key = f"{prefix}:alerts:open"
        self.recent_key = f"{prefix}:alerts:recent"

    def forecast_key(self, sku: str) -> str:
        return f"{self._prefix}:{{{sku_tag(sku)}}}:fc"

    # -- writes -----------------------------------------------------------------------------

    async def record(self, forecasts: Sequence[ForecastEvent], alerts: Sequence[AlertEvent],
                     forecast_json: Sequence[bytes] | None = None) -> None:
        """Store one batch's outputs: the per-SKU forecasts in a few Lua calls (:func:`set_many`),
        beside one non-transactional pipeline for the shared keys. ``forecast_json``: each
        forecast already serialised (the bytes sent to Kafka), when the caller has it."""
        if not forecasts and not alerts:
            return
        pipe = self._client.pipeline(transaction=False)
        writes = []
        if forecasts:
            skus = [fc.sku for fc in forecasts]
            values = forecast_json if forecast_json is not None else [as_json(fc) for fc in forecasts]
            writes.append(set_many(self._client, skus, [self.forecast_key(s) for s in skus], values, self._ttl))
            pipe.zadd(self.movers_key, {fc.sku: mover_score(fc) for fc in forecasts})
            pipe.zremrangebyrank(self.movers_key, 0, -(self._max_movers + 1))
        for alert in alerts:  # in event order: a batch may open and resolve the same SKU
            if alert.state == "resolved":
                pipe.hdel(self.open_key, alert.sku)
            else:
                pipe.hset(self.open_key, alert.sku, wire_json(alert))
        if alerts:
            pipe.lpush(self.recent_key, *[wire_json(a) for a in alerts])
            pipe.ltrim(self.recent_key, 0, self._max_recent - 1)
        # The SKU keys and the shared keys (movers, alerts) travel side by side.
        await asyncio.gather(pipe.execute(), *writes)

    # -- reads ------------------------------------------------------------------------------

    async def forecast(self, sku: str) -> ForecastEvent | None:
        raw = await self._client.get(self.forecast_key(sku))
        return ForecastEvent.model_validate_json(raw) if raw else None

    async def forecasts(self, skus: Sequence[str]) -> list[ForecastEvent | None]:
        """Latest forecast of each SKU (None where there is none), one pipelined round trip."""
        if not skus:
            return []
        pipe = self._client.pipeline(transaction=False)
        for sku in skus:
            pipe.get(self.forecast_key(sku))
        replies = await pipe.execute()
        return [ForecastEvent.model_validate_json(r) if r else None for r in replies]

    async def top_movers(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` SKUs with the highest expected units, highest first."""
        if n < 1:
            return []
        rows = await self._client.zrevrange(self.movers_key, 0, n - 1, withscores=True)
        return [(_text(row[0]), float(row[1])) for row in cast(list[tuple[bytes, float]], rows)]

    async def open_alerts(self) -> list[AlertEvent]:
        """Every open alert, the most severe and then the highest score first."""
        raw = await self._client.hgetall(self.open_key)
        alerts = [AlertEvent.model_validate_json(v) for v in raw.values()]
        rank = {"critical": 0, "warning": 1, "info": 2}
        return sorted(alerts, key=lambda a: (rank[a.severity], -a.score, a.sku))

    async def recent_alerts(self, n: int) -> list[AlertEvent]:
        """The latest ``n`` alert events of any state, newest first."""
        if n < 1:
            return []
        raw = await self._client.lrange(self.recent_key, 0, n - 1)
        return [AlertEvent.model_validate_json(v) for v in raw]

    async def ping(self) -> bool:
        return bool(await self._client.ping())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
