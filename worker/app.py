"""The wiring module: the only one that imports Faust and knows every stage.

``build_app(settings)`` returns a Faust app that serves the HTTP API and runs
:class:`worker.orders_consumer.OrdersConsumer`: ``orders`` in micro-batches (aiokafka
``getmany``, not Faust's per-event streams: see that module for why and the measurements in
docs/benchmarks.md) handed to :class:`worker.pipeline.BatchProcessor`, outputs sent in record
batches by :class:`worker.emitter.KafkaEmitter`.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import faust
import redis.asyncio as aioredis
import torch
from faust.app.base import BootStrategy
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from model.predictor import Forecaster
from streams.ingest import RawRecord
from streams.redis_scripts import pack_with_hiredis
from streams.redis_window_store import RedisWindowStore
from streams.topics import ALERTS, FORECASTS, ORDERS_DLQ, ORDERS_LATE
from worker import metrics
from worker.alerting import RedisAlertStates, thresholds_for
from worker.connections import faust_credentials, redis_kwargs
from worker.emitter import KafkaEmitter, OutputTopics
from worker.http_api import latest_outputs, output_recorder, register_routes
from worker.model_watch import ModelWatcher
from worker.orders_consumer import OrdersConsumer, output_producer
from worker.pipeline import BatchProcessor
from worker.settings import Settings

log = logging.getLogger("skucast.worker")

RETRY_MAX_DELAY_S = 10.0
T = TypeVar("T")


def redis_client(settings: Settings) -> aioredis.Redis:
    # Two quick in-client retries ride out a blip; an outage reaches RedisRetry at once,
    # which logs it and backs off (redis-py's default retries take seconds before it surfaces).
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)
    client = aioredis.Redis(**redis_kwargs(settings), socket_timeout=10, socket_connect_timeout=5, retry=retry)
    return pack_with_hiredis(client)


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


class _BootWithoutFaustKafka(BootStrategy):
    """Faust runs the web server and the lifecycle; Kafka I/O is OrdersConsumer's and KafkaEmitter's."""

    enable_kafka_consumer = False
    enable_kafka_producer = False


class WorkerApp(faust.App):
    BootStrategy = _BootWithoutFaustKafka


def output_topics(settings: Settings) -> OutputTopics:
    return OutputTopics(
        forecasts=settings.topic(FORECASTS),
        alerts=settings.topic(ALERTS),
        dlq=settings.topic(ORDERS_DLQ),
        late=settings.topic(ORDERS_LATE),
    )


def build_app(settings: Settings, forecaster: Forecaster) -> faust.App:
    datadir = settings.state_dir / "faust" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    # One intra-op thread: the inference thread shares the machine with the event loop, and two
    # OpenMP threads spinning on a busy 2-core machine made each batched call ~10x slower.
    torch.set_num_threads(settings.torch_threads or 1)
    app = WorkerApp(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
        datadir=str(datadir),
        topic_allow_declare=False,  # topics are created by worker.topics_admin, explicitly
        topic_disable_leader=True,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
    )
    emitter = KafkaEmitter(output_topics(settings), lambda: output_producer(settings))
    client = redis_client(settings)
    store = window_store(settings, client)
    latest = latest_outputs(settings, client)
    retry = RedisRetry(settings)
    processor = BatchProcessor(
        settings, store, forecaster, emitter, on_outputs=output_recorder(latest),
        alert_states=RedisAlertStates(client, settings.redis_prefix),
        thresholds=thresholds_for(settings, settings.model_dir, forecaster.version),
        retry=retry,
    )
    metrics.MODEL_INFO.labels(forecaster.version, str(forecaster.device)).set(1)
    if settings.model_poll_s > 0:
        watcher = ModelWatcher(settings, forecaster.version)

        @app.timer(interval=settings.model_poll_s)
        async def watch_model() -> None:
            swap = await watcher.poll()
            if swap is not None:
                processor.set_model(*swap)
                metrics.MODEL_INFO.clear()
                metrics.MODEL_INFO.labels(swap[0].version, str(swap[0].device)).set(1)

    async def handle(records: list[RawRecord]) -> asyncio.Future[None]:
        # A retried batch is safe: the window store fences what it already applied.
        _, delivered = await retry(lambda: processor.start(records), f"this batch of {len(records)}")
        return delivered  # the consumer commits the batch's offsets once this is done

    async def flush_deferred() -> None:
        try:
            await processor.flush_deferred()
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            # They stay deferred (and their offsets held): the next idle poll tries again.
            log.warning("deferred forecasts not sent, Redis at %s unavailable (%s)", settings.redis_address, exc)

    orders = OrdersConsumer(settings, handle, emitter, hold=processor.commit_hold, on_idle=flush_deferred)
    app.service(orders)  # type: ignore[arg-type]  # instances work too

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    register_routes(app, store, latest, settings, model_version=lambda: processor.model.version,
                    assigned_partitions=lambda: orders.assigned_partitions)
    tune_gc()
    tune_malloc()
    return app


def tune_malloc() -> None:
    """Give big batch arrays back to the OS when freed, and keep to two malloc arenas.

    glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after which a
    batch's numpy arrays (windows of thousands of SKUs) come from the heap and fragment it; the
    inference thread also gets arenas of its own. A fixed threshold and two arenas keep the RSS
    near what is live (docs/benchmarks.md, memory). A no-op where libc is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_mmap_threshold, m_arena_max = -3, -8  # from glibc's malloc.h
    mallopt(m_mmap_threshold, 256 * 1024)
    mallopt(m_arena_max, 2)


def tune_gc() -> None:
    """Freeze the startup heap and collect young objects every 50k allocations, not every 700.

    The hot path allocates dozens of objects per event, nearly all freed by reference counting;
    at Python's default threshold the cyclic collector ran every few events and rescanned the
    startup heap (torch, Faust, pydantic), ~40 % of the worker's CPU: in-process, 24k events per
    CPU-second became 39k (docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class RedisRetry:
    """Runs a step until Redis answers: logs the address and the command that starts it, backs off."""

    def __init__(self, settings: Settings) -> None:
        self._address = settings.redis_address

    async def __call__(self, step: Callable[[], Awaitable[T]], what: str) -> T:
        delay = 0.2
        while True:
            try:
                return await step()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                metrics.RETRIES.labels("redis").inc()
                log.warning("Redis at %s unavailable (%s); retrying %s in %.1fs (start it with: skucast services up)",
                            self._address, exc, what, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_DELAY_S)

