"""Where the worker's outputs go: the ``Emitter`` protocol and its Kafka (Faust) implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

import orjson

from streams.contracts import AlertEvent, DeadLetter, ForecastEvent, LateEvent


def encode(event: Any) -> bytes:
    """JSON bytes of a wire model (orjson over pydantic's JSON-mode dump)."""
    return orjson.dumps(event.model_dump(mode="json"))


class Emitter(Protocol):
    async def emit(
        self,
        forecasts: Sequence[ForecastEvent],
        alerts: Sequence[AlertEvent],
        dead: Sequence[DeadLetter],
        late: Sequence[LateEvent],
    ) -> None:
        """Publish everything of one batch; return only once delivery is confirmed."""


class _Sendable(Protocol):
    async def send(self, *, key: bytes | None, value: bytes) -> Awaitable[Any]: ...


class TopicEmitter:
    """Sends through Faust topics; awaits every delivery before the batch's offsets may commit."""

    def __init__(self, forecasts: Any, alerts: Any, dlq: Any, late: Any) -> None:
        self._forecasts, self._alerts, self._dlq, self._late = forecasts, alerts, dlq, late

    async def emit(
        self,
        forecasts: Sequence[ForecastEvent],
        alerts: Sequence[AlertEvent],
        dead: Sequence[DeadLetter],
        late: Sequence[LateEvent],
    ) -> None:
        pending: list[Awaitable[Any]] = []
        for f in forecasts:
            pending.append(await self._forecasts.send(key=f.sku.encode(), value=encode(f)))
        for a in alerts:
            pending.append(await self._alerts.send(key=a.sku.encode(), value=encode(a)))
        for d in dead:
            pending.append(await self._dlq.send(key=None, value=encode(d)))
        for e in late:
            pending.append(await self._late.send(key=e.order.sku.encode(), value=encode(e)))
        if pending:
            await asyncio.gather(*pending)
