"""Where the worker's outputs go: the ``Emitter`` protocol and its Kafka implementation.

:class:`KafkaEmitter` is the worker's: every output of a batch goes out as one record batch per
(topic, partition) through aiokafka's batch API — no await per message — and ``emit`` returns
only once the broker has acknowledged every batch (``acks=all``), so offsets are committed
after delivery. A failed batch is resent with backoff until it is delivered (a broker restart
delays the worker, it never drops an output); a resend may duplicate outputs, which consumers
of the keyed, compacted ``forecasts`` topic never notice.

Before it, outputs went through Faust topics, one awaited send per message; see
docs/benchmarks.md for what that cost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from streams.contracts import AlertEvent, DeadLetter, ForecastEvent, LateEvent, wire_json
from streams.contracts import forecast_json as as_json

log = logging.getLogger("skucast.emitter")

Message = tuple[str, bytes | None, bytes]
"""(topic, key, value)."""


class Emitter(Protocol):
    async def emit(
        self,
        forecasts: Sequence[ForecastEvent],
        alerts: Sequence[AlertEvent],
        dead: Sequence[DeadLetter],
        late: Sequence[LateEvent],
        forecast_json: Sequence[bytes] | None = None,
    ) -> None:
        """Publish everything of one batch; return only once delivery is confirmed.

        ``forecast_json``: each forecast already serialised
        (:func:`streams.contracts.forecast_json`), when the caller has it."""


@dataclass(frozen=True)
class OutputTopics:
    forecasts: str
    alerts: str
    dlq: str
    late: str


def output_messages(
    topics: OutputTopics,
    forecasts: Sequence[ForecastEvent],
    alerts: Sequence[AlertEvent],
    dead: Sequence[DeadLetter],
    late: Sequence[LateEvent],
    forecast_json: Sequence[bytes] | None = None,
) -> list[Message]:
    """Every output of a batch as (topic, key, value); keys are SKUs (dead letters have none)."""
    values = forecast_json if forecast_json is not None else [as_json(f) for f in forecasts]
    out: list[Message] = [(topics.forecasts, f.sku.encode(), v) for f, v in zip(forecasts, values, strict=True)]
    out += [(topics.alerts, a.sku.encode(), wire_json(a)) for a in alerts]
    out += [(topics.dlq, None, wire_json(d)) for d in dead]
    out += [(topics.late, e.order.sku.encode(), wire_json(e)) for e in late]
    return out


class KafkaEmitter:
    """Batched sends with delivery confirmed; see the module doc. ``start``/``stop`` own the producer."""

    def __init__(
        self,
        topics: OutputTopics,
        producer_factory: Callable[[], AIOKafkaProducer],
        retry_max_delay_s: float = 10.0,
    ) -> None:
        self.topics = topics
        self._factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._retry_max_delay_s = retry_max_delay_s
        self._partitioner = DefaultPartitioner()
        # murmur2 is pure Python in aiokafka: a SKU's partition is computed once.
        self._partition_of: dict[tuple[str, bytes], int] = {}
        self._partition_count: dict[str, int] = {}

    async def start(self) -> None:
        self._producer = self._factory()
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()  # flushes what is queued
            self._producer = None

    async def emit(
        self,
        forecasts: Sequence[ForecastEvent],
        alerts: Sequence[AlertEvent],
        dead: Sequence[DeadLetter],
        late: Sequence[LateEvent],
        forecast_json: Sequence[bytes] | None = None,
    ) -> None:
        await self.send(output_messages(self.topics, forecasts, alerts, dead, late, forecast_json))

    async def send(self, messages: list[Message]) -> None:
        """Deliver every message; resend failed batches with backoff until all are acknowledged."""
        delay = 0.2
        while messages:
            sent = await self._send_batches(messages)
            results = await asyncio.gather(*(fut for fut, _ in sent), return_exceptions=True)
            failed = [m for (_, batch), r in zip(sent, results, strict=True) if isinstance(r, BaseException)
                      for m in batch]
            errors = [r for r in results if isinstance(r, BaseException)]
            for err in errors:
                if not isinstance(err, KafkaError | OSError | asyncio.TimeoutError):
                    raise err
            if failed:
                log.warning("Kafka did not acknowledge %d of %d outputs (%s); resending in %.1fs",
                            len(failed), len(messages), errors[0], delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max_delay_s)
            messages = failed

    async def _send_batches(self, messages: list[Message]) -> list[tuple[Awaitable[Any], list[Message]]]:
        """Queue the messages as record batches, one (or more, when full) per topic partition."""
        producer = self._producer
        if producer is None:
            raise RuntimeError("KafkaEmitter.start() was not awaited")
        partitions = {topic: sorted(await producer.partitions_for(topic)) for topic in {m[0] for m in messages}}
        by_partition: dict[tuple[str, int], list[Message]] = {}
        for msg in messages:
            by_partition.setdefault((msg[0], self._partition(msg[0], msg[1], partitions[msg[0]])), []).append(msg)
        sent: list[tuple[Awaitable[Any], list[Message]]] = []
        for (topic, partition), batch in by_partition.items():
            start = 0
            while start < len(batch):
                builder = producer.create_batch()
                end = start
                while end < len(batch) and builder.append(key=batch[end][1], value=batch[end][2],
                                                          timestamp=None) is not None:
                    end += 1
                if end == start:
                    raise ValueError(f"an output of {len(batch[start][2])} bytes exceeds the producer's batch size")
                future = await producer.send_batch(builder, topic, partition=partition)
                sent.append((future, batch[start:end]))
                start = end
        return sent

    def _partition(self, topic: str, key: bytes | None, partitions: list[int]) -> int:
        """The partition the Java client would pick for ``key`` (murmur2), random for no key."""
        if key is None:
            return int(random.choice(partitions))
        if self._partition_count.get(topic) != len(partitions) or len(self._partition_of) >= 1_000_000:
            self._partition_of.clear()  # partitions were added: every key moves
            self._partition_count[topic] = len(partitions)
        part = self._partition_of.get((topic, key))
        if part is None:
            part = self._partition_of[(topic, key)] = int(self._partitioner(key, partitions, partitions))
        return part
