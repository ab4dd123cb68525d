"""The wiring module: the only one that imports Faust and knows every stage.

``build_app(settings)`` returns a Faust app whose single agent consumes ``orders`` in
micro-batches (``stream.take_events``) and hands them to :class:`worker.pipeline.BatchProcessor`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from model.predictor import Forecaster
from streams.ingest import RawRecord
from streams.redis_window_store import RedisWindowStore
from streams.topics import ALERTS, FORECASTS, ORDERS, ORDERS_DLQ, ORDERS_LATE
from worker import metrics
from worker.emitter import TopicEmitter
from worker.pipeline import BatchProcessor
from worker.settings import Settings

log = logging.getLogger("skucast.worker")

RETRY_MAX_DELAY_S = 10.0


def redis_client(settings: Settings) -> aioredis.Redis:
    password = settings.redis_password.get_secret_value() if settings.redis_password else None
    return aioredis.Redis(
        host=settings.redis_host,
        port=settings.redis_port,
        db=settings.redis_db,
        password=password,
        socket_timeout=10,
        socket_connect_timeout=5,
    )


def window_store(settings: Settings, client: Any) -> RedisWindowStore:
    return RedisWindowStore(
        client,
        settings.redis_prefix,
        grace_s=settings.late_grace_hours * 3600,
        dedup_horizon_s=settings.dedup_horizon_days * 86400,
        day_retention=settings.day_retention,
        hour_retention=settings.hour_retention_days,
        idle_ttl_s=settings.sku_idle_ttl_days * 86400,
    )


def build_app(settings: Settings, forecaster: Forecaster) -> faust.App:
    datadir = settings.state_dir / "faust" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        datadir=str(datadir),
        value_serializer="raw",
        key_serializer="raw",
        topic_allow_declare=False,  # topics are created by worker.topics_admin, explicitly
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        producer_linger_ms=5,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
    )

    def topic(name: str, partitions: int) -> faust.TopicT:
        return app.topic(settings.topic(name), key_type=bytes, value_type=bytes, partitions=partitions)

    orders = topic(ORDERS, settings.orders_partitions)
    emitter = TopicEmitter(
        forecasts=topic(FORECASTS, settings.output_partitions),
        alerts=topic(ALERTS, settings.output_partitions),
        dlq=topic(ORDERS_DLQ, 1),
        late=topic(ORDERS_LATE, 1),
    )
    client = redis_client(settings)
    processor = BatchProcessor(settings, window_store(settings, client), forecaster, emitter)
    metrics.MODEL_INFO.labels(forecaster.version, str(forecaster.device)).set(1)

    @app.agent(orders)
    async def consume_orders(stream: faust.StreamT) -> None:
        batches = stream.take_events(  # type: ignore[attr-defined]  # faust-streaming API, absent from StreamT
            settings.batch_max_events, within=settings.batch_within_s
        )
        async for events in batches:
            records = [
                RawRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.message.value)
                for e in events
            ]
            await process_with_retry(processor, records, settings)

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        try:
            await client.ping()
            redis_ok = True
        except (RedisConnectionError, RedisTimeoutError, OSError):
            redis_ok = False
        return web.json({"redis": redis_ok, "model": forecaster.version})

    return app


async def process_with_retry(processor: BatchProcessor, records: list[RawRecord], settings: Settings) -> None:
    """Retry a batch while Redis is down: safe, because the window store fences by offset."""
    delay = 0.2
    while True:
        try:
            await processor.process(records)
            return
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            metrics.RETRIES.labels("redis").inc()
            log.warning(
                "Redis at %s unavailable (%s); retrying this batch of %d in %.1fs "
                "(start it with: skucast services up)",
                settings.redis_address, exc, len(records), delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
