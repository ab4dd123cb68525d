"""KafkaEmitter against the real broker: every output delivered when ``send`` returns, once, and
a SKU's outputs always on the partition the Java client's murmur2 partitioner picks."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer

from tests.support import BOOTSTRAP, unique
from worker.emitter import KafkaEmitter, OutputTopics
from worker.orders_consumer import output_producer
from worker.settings import Settings
from worker.topics_admin import ensure_topics

pytestmark = pytest.mark.integration


def read_all(topic: str, expected: int) -> list[tuple[int, bytes | None, bytes | None]]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("emit-test"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list[tuple[int, bytes | None, bytes | None]] = []
    try:
        for _ in range(60):
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if not msg.error():
                    out.append((msg.partition(), msg.key(), msg.value()))
            if len(out) >= expected:
                break
    finally:
        consumer.close()
    return out


def test_batched_sends_are_all_acknowledged_and_keyed_like_the_java_client(services: None) -> None:
    name = unique("emit")
    settings = Settings(app_id=name, topic_prefix=f"{name}.", output_partitions=4)
    ensure_topics(settings)
    topics = OutputTopics(settings.topic("forecasts"), settings.topic("alerts"), settings.topic("orders.dlq"),
                          settings.topic("orders.late"))
    messages = [(topics.forecasts, f"SKU{i % 97}".encode(), f"v{i}".encode()) for i in range(3000)]
    messages += [(topics.dlq, None, b"dead")]

    async def send() -> None:
        emitter = KafkaEmitter(topics, lambda: output_producer(settings))
        await emitter.start()
        try:
            await emitter.send(messages[:1500])
            await emitter.send(messages[1500:])
        finally:
            await emitter.stop()

    asyncio.run(send())
    got = read_all(topics.forecasts, 3000)
    assert sorted(v for _, _, v in got if v) == sorted(v for _, _, v in messages[:3000])  # each once
    for partition, key, _ in got:
        assert key is not None
        assert partition == (murmur2(key) & 0x7FFFFFFF) % 4
    per_key: dict[bytes | None, list[int]] = {}
    for _, key, value in got:  # a key's outputs stay in send order on its partition
        per_key.setdefault(key, []).append(int((value or b"v0")[1:]))
    assert all(seq == sorted(seq) for seq in per_key.values())
    assert [v for _, _, v in read_all(topics.dlq, 1)] == [b"dead"]
