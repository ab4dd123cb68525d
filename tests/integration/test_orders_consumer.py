"""OrdersConsumer on the real broker: the next batch is handled while the previous one's outputs
are delivered, at most one delivery is outstanding, and offsets wait for their delivery."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.ingest import RawRecord
from tests.support import BOOTSTRAP, produce, unique
from worker.app import output_topics
from worker.emitter import KafkaEmitter
from worker.orders_consumer import COMMIT_INTERVAL_S, OrdersConsumer, output_producer
from worker.settings import Settings
from worker.topics_admin import ensure_topics

pytestmark = pytest.mark.integration


def committed(settings: Settings) -> int | None:
    reader = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": settings.app_id, "enable.auto.commit": False})
    try:
        (tp,) = reader.committed([TopicPartition(settings.topic("orders"), 0)], timeout=10)
        return tp.offset if tp.offset >= 0 else None
    finally:
        reader.close()


async def until(check: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_offsets_wait_for_delivery_and_one_delivery_is_outstanding(services: None) -> None:
    name = unique("deliver")
    settings = Settings(app_id=name, topic_prefix=f"{name}.", orders_partitions=1, output_partitions=1,
                        batch_max_events=5)
    ensure_topics(settings)
    produce(settings.topic("orders"), [(b"SKU1", b'{"n": %d}' % i) for i in range(20)])

    async def main() -> None:
        handled: list[list[int]] = []
        deliveries: list[asyncio.Future[None]] = []

        async def handler(records: list[RawRecord]) -> asyncio.Future[None]:
            handled.append([r.offset for r in records])
            deliveries.append(asyncio.get_running_loop().create_future())
            return deliveries[-1]

        consumer = OrdersConsumer(settings, handler, KafkaEmitter(output_topics(settings),
                                                                  lambda: output_producer(settings)))
        await consumer.start()
        try:
            # The second batch is handled while the first is being delivered, the third is not.
            await until(lambda: len(handled) == 2)
            await asyncio.sleep(COMMIT_INTERVAL_S + 0.5)
            assert len(handled) == 2 and handled[0] == [0, 1, 2, 3, 4]
            assert committed(settings) is None  # nothing delivered, nothing committed
            deliveries[0].set_result(None)
            await until(lambda: len(handled) == 3)
            await asyncio.sleep(COMMIT_INTERVAL_S + 0.5)  # the next batch triggers the commit
            deliveries[1].set_result(None)
            await until(lambda: len(handled) == 4)
            assert committed(settings) in (5, 10)  # the delivered batches only, never the third
            deliveries[2].set_result(None)
            deliveries[3].set_result(None)
            # With the stream idle, the last delivery is settled and committed too.
            await until(lambda: committed(settings) == 20)
            assert sum(len(h) for h in handled) == 20
        finally:
            for future in deliveries:
                if not future.done():
                    future.set_result(None)
            await consumer.stop()

    asyncio.run(main())
