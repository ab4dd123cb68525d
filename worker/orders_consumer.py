"""Orders in by the batch: aiokafka ``getmany`` → the batch handler → offsets committed after it.

Why not a Faust agent: Faust's per-event stream path (an ``Event`` per message, channel queues,
a processor and an ack awaited per event) costs tens of microseconds an event; on the 2-core
benchmark machine a Faust agent whose body does nothing tops out at 12-15k events/s, below the
20k/s the worker must sustain (docs/benchmarks.md). ``getmany`` hands over whole fetched record
batches, prefetched while the previous batch is processed; Faust still runs the app around it
(web server, routes, lifecycle, signals).

Semantics (the same as the agent's):

- A batch is whatever has arrived, up to ``batch_max_events``: under light load a few events,
  at once (no wait to fill a batch); under backlog full batches. ``batch_within_s`` is the
  longest a poll waits for the first event.
- The handler may return its batch's delivery (a future): the next batch is fetched and handled
  while it is acknowledged; one delivery at most is outstanding, and it is awaited before the
  next one is taken on.
- Offsets are committed only for batches the handler has finished (Redis updated, outputs
  acknowledged), at most every ``COMMIT_INTERVAL_S`` and in the background (a commit never holds
  up the next batch), and always, awaited, before partitions are given away in a rebalance and
  on a clean stop. A crash redelivers at most the uncommitted batches,
  which the window store's offset fencing turns into no-ops.
- Group ``app_id`` with the round-robin assignor, as the Faust consumer used: committed offsets
  carry over from a Faust-consumer deployment.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.errors import CommitFailedError, ConsumerStoppedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from mode import Service

from streams.ingest import RawRecord
from worker import metrics
from worker.connections import faust_credentials
from worker.emitter import KafkaEmitter
from worker.settings import Settings

log = logging.getLogger("skucast.orders")

COMMIT_INTERVAL_S = 1.0
STOP_WAIT_S = 20.0
MAX_BATCH_BYTES = 900_000  # under the broker's default message.max.bytes (1 MB)

Handler = Callable[[list[RawRecord]], Awaitable[Any]]
"""Handles a batch; may return an awaitable that completes once the batch's outputs are delivered."""


def kafka_auth(settings: Settings) -> dict[str, Any]:
    """aiokafka security arguments, derived exactly as Faust derives its own."""
    return dict(credentials_to_aiokafka_auth(faust_credentials(settings)))


def orders_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The orders consumer: manual commits, bulk fetches (the broker returns as soon as data exists)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-orders",
        group_id=settings.app_id,
        partition_assignment_strategy=(RoundRobinPartitionAssignor,),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=settings.batch_max_events,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        session_timeout_ms=30_000,
        heartbeat_interval_ms=3_000,
        max_poll_interval_ms=600_000,  # a batch may wait minutes for Redis to come back
        **kafka_auth(settings),
    )


def output_producer(settings: Settings) -> AIOKafkaProducer:
    """The outputs producer: acks from all in-sync replicas, large record batches."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=f"{settings.app_id}-outputs",
        acks="all",
        max_batch_size=MAX_BATCH_BYTES,
        linger_ms=0,  # batches are built whole by KafkaEmitter; nothing to wait for
        request_timeout_ms=30_000,
        **kafka_auth(settings),
    )


def to_records(fetched: dict[TopicPartition, list[Any]]) -> list[RawRecord]:
    """Fetched messages as RawRecords, each partition's in offset order."""
    return [
        RawRecord(tp.topic, tp.partition, m.offset, m.key, m.value) for tp, msgs in fetched.items() for m in msgs
    ]


def report_lag(consumer: AIOKafkaConsumer, next_offsets: dict[TopicPartition, int]) -> None:
    """Consumer lag per partition once a batch is fetched: high watermark minus the next offset to read."""
    for tp, offset in next_offsets.items():
        highwater = consumer.highwater(tp)
        if highwater is not None:
            metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(highwater - offset, 0))


class OrdersConsumer(Service):
    """Consumes ``orders`` in batches for ``handler``; owns the consumer and the emitter's producer."""

    def __init__(
        self,
        settings: Settings,
        handler: Handler,
        emitter: KafkaEmitter,
        *,
        hold: Callable[[], Mapping[int, int]] | None = None,
        on_idle: Callable[[], Awaitable[Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        """``hold()``: per partition, an offset not to commit past yet (deferred work, see
        :mod:`worker.coalesce`); ``on_idle()``: called, like a batch, when a poll finds nothing."""
        super().__init__(**kwargs)
        self._settings = settings
        self._topic = settings.topic("orders")
        self._handler = handler
        self._emitter = emitter
        self._hold = hold
        self._on_idle = on_idle
        self._consumer: AIOKafkaConsumer | None = None
        self.assigned_partitions: int | None = None
        """How many ``orders`` partitions this worker owns (None until the first assignment)."""
        self._done: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._committed_at = 0.0
        self._batch_lock = asyncio.Lock()  # held while a batch is handled
        self._commit_task: asyncio.Future[None] | None = None
        # The last handled batch's offsets and its delivery, not yet confirmed.
        self._delivering: tuple[dict[TopicPartition, int], Awaitable[Any]] | None = None

    async def on_start(self) -> None:
        await self._emitter.start()
        self._consumer = orders_consumer(self._settings)
        self._consumer.subscribe([self._topic], listener=_CommitOnRevoke(self))
        await self._consumer.start()

    async def on_stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        try:  # let the batch in flight finish, then commit it (not forever: Redis may be down)
            await asyncio.wait_for(self._batch_lock.acquire(), STOP_WAIT_S)
        except TimeoutError:
            log.warning("stopping without the batch in flight; it will be redelivered and fenced")
        else:
            try:
                await asyncio.wait_for(self._settle(), STOP_WAIT_S)
                if consumer is not None:
                    await self._commit_now(consumer)
            except TimeoutError:
                log.warning("stopping without the last batch's delivery; it will be redelivered and fenced")
            finally:
                self._batch_lock.release()
        if consumer is not None:
            await consumer.stop()
        await self._emitter.stop()

    @Service.task
    async def _consume(self) -> None:
        within_ms = max(1, int(self._settings.batch_within_s * 1000))
        while not self.should_stop:
            consumer = self._consumer
            if consumer is None:
                return
            try:
                fetched = await consumer.getmany(timeout_ms=within_ms, max_records=self._settings.batch_max_events)
            except ConsumerStoppedError:
                return
            async with self._batch_lock:
                if self._consumer is None:
                    return  # stopping: what was just fetched is redelivered to the next owner
                if not fetched:
                    await self._settle()
                    if self._on_idle is not None:
                        await self._on_idle()
                    if self._done and time.monotonic() - self._committed_at >= COMMIT_INTERVAL_S:
                        self._commit_in_background(consumer)
                    continue
                fetched_to = {tp: msgs[-1].offset + 1 for tp, msgs in fetched.items()}
                report_lag(consumer, fetched_to)  # at fetch, like skucast_events_consumed_total
                delivery = await self._handler(to_records(fetched))
                await self._settle()  # the previous batch's: delivered before this one's starts
                if inspect.isawaitable(delivery):
                    self._delivering = (fetched_to, delivery)
                else:
                    self._done.update(fetched_to)
                if time.monotonic() - self._committed_at >= COMMIT_INTERVAL_S:
                    self._commit_in_background(consumer)

    async def _settle(self) -> None:
        """Wait for the outstanding delivery; its batch's offsets may then be committed."""
        if self._delivering is not None:
            fetched_to, delivery = self._delivering
            await delivery
            self._delivering = None
            self._done.update(fetched_to)

    def _commit_in_background(self, consumer: AIOKafkaConsumer) -> None:
        """Commit without holding up the next batch (a commit may wait on a busy coordinator)."""
        if self._commit_task is None or self._commit_task.done():
            self._commit_task = asyncio.ensure_future(self.commit(consumer))

    async def _commit_now(self, consumer: AIOKafkaConsumer) -> None:
        if self._commit_task is not None:
            await asyncio.gather(self._commit_task, return_exceptions=True)
        await self.commit(consumer)

    async def commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the finished batches' offsets of the partitions still assigned to us."""
        done, self._done = self._done, {}
        self._committed_at = time.monotonic()
        assigned = consumer.assignment()
        hold = self._hold() if self._hold is not None else {}
        offsets = {}
        for tp, off in done.items():
            if tp in assigned:
                held = min(off, hold.get(tp.partition, off))
                offsets[tp] = OffsetAndMetadata(held, "")
                if held < off:
                    self._done.setdefault(tp, off)  # commit the rest once the hold is released
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group moved on: the new owner re-reads these events and the fencing skips them.
            log.info("offset commit skipped after a rebalance (%s)", exc)
        except KafkaError as exc:
            log.warning("offset commit failed (%s); the events may be redelivered and fenced", exc)
            for tp, off in done.items():
                self._done.setdefault(tp, off)

    async def on_revoked(self) -> None:
        async with self._batch_lock:
            await self._settle()
            if self._consumer is not None:
                await self._commit_now(self._consumer)


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions move: wait for the batch in flight and commit what is finished."""

    def __init__(self, owner: OrdersConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._owner.on_revoked()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("orders partitions assigned: %s", sorted(tp.partition for tp in assigned))
        self._owner.assigned_partitions = len(assigned)
        metrics.ASSIGNED_PARTITIONS.set(len(assigned))
