"""Helpers shared by the integration and end-to-end tiers (real services, real processes)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer

ROOT = Path(__file__).resolve().parents[1]
SKUCAST = str(Path(sys.executable).with_name("skucast"))
if not Path(SKUCAST).exists():
    SKUCAST = shutil.which("skucast") or "skucast"
BOOTSTRAP = "127.0.0.1:9092"


NAMES_USED: list[str] = []
"""Every ``unique()`` name of this test session: its Redis keys and topics are removed at the end."""


def unique(name: str) -> str:
    made = f"{name}-{uuid.uuid4().hex[:8]}"
    NAMES_USED.append(made)
    return made


def remove_test_data(names: list[str], redis_port: int = 6379, bootstrap: str = BOOTSTRAP) -> None:
    """Delete the Redis keys (``<name>:*``) and Kafka topics (``<name>.*``) these names created,
    so repeated runs do not grow the services' data (a large Redis makes every fork for an AOF
    rewrite slower, which shows in latency benchmarks run on the same services)."""
    import redis
    from confluent_kafka.admin import AdminClient

    from worker.redis_keys import keys_under, unlink_all

    client = redis.Redis(port=redis_port, socket_connect_timeout=2)
    try:
        for name in names:
            unlink_all(client, keys_under(client, name))
    except redis.RedisError:
        pass  # the services are down: nothing to clean
    finally:
        client.close()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        topics = [t for t in admin.list_topics(timeout=10).topics if any(t.startswith(f"{n}.") for n in names)]
        if topics:
            for future in admin.delete_topics(topics, operation_timeout=30).values():
                future.result()
    except Exception:  # best effort: a missing broker or topic is fine here
        pass


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerProcess:
    """``skucast worker`` as a subprocess with its own topics, group and Redis prefix."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.port = int(env["SKUCAST_WEB_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen([SKUCAST, "worker"], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker did not become healthy:\n{self.log()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def produce(topic: str, messages: list[tuple[bytes | None, bytes]], bootstrap: str = BOOTSTRAP) -> None:
    prod = Producer({"bootstrap.servers": bootstrap, "linger.ms": 10, "enable.idempotence": True})
    for key, value in messages:
        prod.produce(topic, key=key, value=value)
    assert prod.flush(30) == 0


def consume_all(
    topic: str, *, until: Any = None, timeout_s: float = 60, idle_s: float | None = None, bootstrap: str = BOOTSTRAP
) -> list[dict]:
    """Read ``topic`` from the beginning until ``until(docs)`` is true, idle or timeout."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("test"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    docs: list[dict] = []
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                if until is not None and until(docs):
                    break
                if idle_s is not None and docs and time.monotonic() - last > idle_s:
                    break
                continue
            last = time.monotonic()
            docs.append(orjson.loads(msg.value()))
            if until is not None and until(docs):
                break
    finally:
        consumer.close()
    return docs


def metric_value(metrics_text: str, name: str) -> float:
    """Sum of every sample of ``name`` (all label sets) in a Prometheus text page."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for_metric(worker: WorkerProcess, name: str, at_least: float, timeout_s: float = 90) -> float:
    deadline = time.monotonic() + timeout_s
    value = 0.0
    while time.monotonic() < deadline:
        value = metric_value(worker.metrics(), name)
        if value >= at_least:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{name} reached only {value}, wanted {at_least}\n{worker.log()}")


def worker_env(name: str, model_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of an isolated worker: its own topics, consumer group, Redis keys and port."""
    return {
        "SKUCAST_APP_ID": name,
        "SKUCAST_TOPIC_PREFIX": f"{name}.",
        "SKUCAST_REDIS_PREFIX": name,
        "SKUCAST_MODEL_DIR": str(model_dir),
        "SKUCAST_WEB_PORT": str(free_port()),
        "SKUCAST_STATE_DIR": str(Path.home() / ".cache" / "skucast"),
        **extra,
    }


def real_order_lines(start: str = "2011-10-01") -> Any:
    """The bundled Online Retail order lines (cleaned), from ``start`` on, in event-time order."""
    import pandas as pd

    from model.data import clean, load_raw, to_order_lines

    lines = to_order_lines(clean(load_raw(ROOT / "data" / "online_retail.parquet")))
    return lines[lines["event_time"] >= pd.Timestamp(start, tz="UTC")]


Buckets = dict[str, dict[int, tuple[int, int, int]]]


def ground_truth(lines: Any, grain: str = "day", tz: str = "Europe/London") -> Buckets:
    """(units, order lines, revenue in millis) per SKU and local bucket, summed from the input."""
    from collections import defaultdict

    from streams.buckets import local_day_hour

    days, hours = local_day_hour(lines["event_time"].map(lambda t: t.timestamp()).to_numpy(), tz)
    index = days if grain == "day" else hours
    acc: dict[str, dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for sku, b, q, p in zip(lines["sku"], index, lines["quantity"], lines["unit_price"], strict=True):
        cell = acc[sku][int(b)]
        cell[0] += int(q)
        cell[1] += 1
        cell[2] += round(int(q) * float(p) * 1000)
    return {s: {b: (v[0], v[1], v[2]) for b, v in per.items()} for s, per in acc.items()}


async def drop_prefix_and_close(client: Any, prefix: str) -> None:
    """Remove a test's Redis keys (``<prefix>:*``) and close its client."""
    keys = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def redis_buckets(
    prefix: str, skus: list[str], grain: str = "day", redis_port: int = 6379, hour_retention: int | None = None
) -> Buckets:
    """What the worker stored, read through the project's own window store."""
    import asyncio

    import redis.asyncio as aioredis

    from streams.redis_window_store import RedisWindowStore
    from worker.settings import Settings

    hour_retention = hour_retention or Settings.model_fields["hour_retention_days"].default  # the default

    async def read() -> Buckets:
        client = aioredis.Redis(host="127.0.0.1", port=redis_port)
        store = RedisWindowStore(client, prefix, grace_s=48 * 3600, dedup_horizon_s=7 * 86400,
                                 day_retention=420, hour_retention=hour_retention, idle_ttl_s=430 * 86400)
        try:
            return {s: await store.totals(s, grain) for s in skus}  # type: ignore[arg-type]
        finally:
            await client.aclose()

    return asyncio.run(read())


def wait_until_equal(
    expected: Buckets,
    prefix: str,
    grain: str = "day",
    timeout_s: float = 180,
    redis_port: int = 6379,
    hour_retention: int | None = None,
) -> Buckets:
    """Poll Redis until it holds exactly ``expected`` (or time out and return what it holds)."""
    deadline = time.monotonic() + timeout_s
    skus = sorted(expected)
    stored: Buckets = {}
    while time.monotonic() < deadline:
        stored = redis_buckets(prefix, skus, grain, redis_port, hour_retention)
        if stored == expected:
            break
        time.sleep(1)
    return stored
