"""What the end-to-end benchmarks share: order streams, topics, a worker process, CPU, reports.

Every benchmark here measures against the real Kafka and Redis (``skucast services up``) and
prints ratios measured side by side in one run, because the machine may be shared: absolute
rates move with the load, which is recorded (``os.getloadavg``) in every JSON report.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Producer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support import BOOTSTRAP, WorkerProcess, metric_value, unique, worker_env  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.topics_admin import ensure_topics  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "data" / "online_retail.parquet"
WEEK_S = 7 * 86_400
BENCH_MODEL_DIR = Path.home() / ".cache" / "skucast" / "bench-model"
__all__ = ["BOOTSTRAP", "WorkerProcess", "metric_value", "unique", "worker_env"]


# -- the machine ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where and under what load a report was measured."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=ROOT, timeout=5).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_head": rev,
        "loadavg": list(os.getloadavg()),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# -- order streams -------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderMix:
    """The Online Retail order lines as columns: the SKU mix, quantities, prices, customers."""

    order_id: np.ndarray  # str
    line: np.ndarray  # int64
    sku: np.ndarray  # str
    quantity: np.ndarray  # int64
    unit_price: np.ndarray  # float64
    event_ts: np.ndarray  # float64, epoch seconds, ascending
    customer_id: np.ndarray  # object: str | None

    def __len__(self) -> int:
        return len(self.sku)


def load_mix() -> OrderMix:
    from model.data import clean, load_raw, to_order_lines

    lines = to_order_lines(clean(load_raw(DATA)))
    return OrderMix(
        order_id=lines["order_id"].to_numpy(dtype=str),
        line=lines["line"].to_numpy(dtype=np.int64),
        sku=lines["sku"].to_numpy(dtype=str),
        quantity=lines["quantity"].to_numpy(dtype=np.int64),
        unit_price=lines["unit_price"].to_numpy(dtype=np.float64),
        event_ts=lines["event_time"].astype("int64").to_numpy() / 1e6,  # datetime64[us]
        customer_id=lines["customer_id"].to_numpy(dtype=object),
    )


def replicate(mix: OrderMix, n: int, end_ts: float) -> Iterator[tuple[bytes, bytes]]:
    """``n`` (key, JSON) order messages: copies of the real lines, each copy shifted later.

    Copy ``k`` is the data set shifted by ``k`` whole spans (whole weeks, so weekdays stay),
    order ids get ``-k``; the last copy ends at ``end_ts`` (so nothing lies in the future).
    Within each SKU the stream stays in event-time order, as a replay would be.
    """
    span = (mix.event_ts[-1] - mix.event_ts[0]) // WEEK_S * WEEK_S + WEEK_S
    copies = -(-n // len(mix))
    shift0 = (end_ts - mix.event_ts[-1]) // WEEK_S * WEEK_S - (copies - 1) * span
    made = 0
    for k in range(copies):
        take = min(len(mix), n - made)
        stamps = np.datetime_as_string((mix.event_ts[:take] + shift0 + k * span).astype("datetime64[s]"), unit="s")
        for i in range(take):
            doc: dict[str, Any] = {
                "order_id": f"{mix.order_id[i]}-{k}",
                "line": int(mix.line[i]),
                "sku": str(mix.sku[i]),
                "quantity": int(mix.quantity[i]),
                "unit_price": float(mix.unit_price[i]),
                "currency": "GBP",
                "event_time": stamps[i] + "Z",
                "market": "UK",
            }
            if mix.customer_id[i] is not None:
                doc["customer_id"] = mix.customer_id[i]
            yield doc["sku"].encode(), orjson.dumps(doc)
        made += take


def order_json(order_id: str, sku: str, quantity: int, price: float, event_ts: float) -> bytes:
    """One order line whose event time is ``event_ts`` to the microsecond (latency stamps)."""
    stamp = datetime.fromtimestamp(event_ts, UTC).isoformat(timespec="microseconds")
    return orjson.dumps({"order_id": order_id, "sku": sku, "quantity": quantity, "unit_price": price,
                         "currency": "GBP", "event_time": stamp, "market": "UK"})


# -- Kafka ---------------------------------------------------------------------------------


def stack_settings(name: str, partitions: int = 4) -> Settings:
    return Settings(app_id=name, topic_prefix=f"{name}.", redis_prefix=name, orders_partitions=partitions,
                    output_partitions=partitions)


def create_topics(name: str, partitions: int = 4) -> Settings:
    settings = stack_settings(name, partitions)
    ensure_topics(settings)
    return settings


def bulk_producer() -> Producer:
    return Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 20, "batch.size": 1_000_000,
                     "compression.type": "lz4", "enable.idempotence": True,
                     "queue.buffering.max.messages": 1_000_000})


def produce_all(topic: str, messages: Iterator[tuple[bytes, bytes]]) -> tuple[int, float]:
    """Produce every message and wait for every delivery: (count, seconds)."""
    prod = bulk_producer()
    sent, started = 0, time.perf_counter()
    for key, value in messages:
        while True:
            try:
                prod.produce(topic, value=value, key=key)
                break
            except BufferError:
                prod.poll(0.05)
        sent += 1
        if sent % 10_000 == 0:
            prod.poll(0)
    left = prod.flush(120)
    if left:
        raise RuntimeError(f"{left} messages undelivered to {topic}")
    return sent, time.perf_counter() - started


def delete_topics(settings: Settings) -> None:
    from confluent_kafka.admin import AdminClient

    from streams.topics import topic_specs

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    names = [t.name for t in topic_specs(settings.topic_prefix, 1, 1)]
    for fut in admin.delete_topics(names, operation_timeout=30).values():
        with contextlib.suppress(Exception):  # best-effort cleanup of benchmark topics
            fut.result()


HISTORY_PARTITION = 1_000_000
"""Partition number of preloaded history: no topic has it, so live orders are never fenced by it."""


def preload_history(settings: Settings, mix: OrderMix, skus: Iterable[str], days: int,
                    now: float) -> int:
    """Give ``skus`` their real Online Retail order lines of the data's last ``days`` days, shifted
    so that the data's last day is yesterday, straight into the window store (as a worker that
    had been running would have them). Returns the number of order lines applied."""
    import asyncio

    from streams.buckets import local_day_hour
    from streams.window_store import OrderUpdate
    from worker.app import redis_client, window_store

    wanted = set(map(str, skus))
    last_day = np.floor(mix.event_ts.max() / 86_400)
    shift = (np.floor(now / 86_400) - 1 - last_day) * 86_400
    keep = np.flatnonzero(np.isin(mix.sku, list(wanted)) & (mix.event_ts >= (last_day - days + 1) * 86_400))
    ts = mix.event_ts[keep] + shift
    day, hour = local_day_hour(ts, settings.market_timezone)
    updates = [
        OrderUpdate(sku=str(mix.sku[k]), partition=HISTORY_PARTITION, offset=i, dedup_key=f"history-{k}",
                    event_ts=float(ts[i]), day=int(day[i]), hour=int(hour[i]), units=int(mix.quantity[k]),
                    revenue_milli=round(float(mix.quantity[k] * mix.unit_price[k]) * 1000),
                    price=float(mix.unit_price[k]))
        for i, k in enumerate(keep.tolist())
    ]

    async def apply() -> None:
        client = redis_client(settings)
        try:
            store = window_store(settings, client)
            for lo in range(0, len(updates), 5_000):
                await store.apply(updates[lo : lo + 5_000])
        finally:
            await client.aclose()

    asyncio.run(apply())
    return len(updates)


def drop_redis_prefix(prefix: str, port: int = 6379) -> None:
    import redis

    from worker.redis_keys import keys_under, unlink_all

    with redis.Redis(port=port) as client:
        unlink_all(client, keys_under(client, prefix))


# -- the worker ----------------------------------------------------------------------------


def start_worker(name: str, model_dir: Path, log_dir: Path, **env: str) -> WorkerProcess:
    return WorkerProcess(worker_env(name, model_dir, **env), log_dir / f"{name}.log").start(timeout_s=180)


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the worker (collapsed stacks: one line per stack, count at the end)."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", "200",
                             "--nonblocking", "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def worker_pid(worker: WorkerProcess) -> int:
    if worker.proc is None:
        raise RuntimeError("the worker was not started")
    return worker.proc.pid


def redis_cpu() -> float:
    import redis

    info = redis.Redis(port=6379).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def scrape(worker: WorkerProcess) -> dict[str, float]:
    """The worker's counters that the benchmarks follow."""
    text = worker.metrics()
    names = ("skucast_events_consumed_total", "skucast_events_applied_total", "skucast_forecasts_emitted_total",
             "skucast_alerts_total", "skucast_dead_letters_total", "skucast_late_events_total")
    return {n.removeprefix("skucast_").removesuffix("_total"): metric_value(text, n) for n in names}


def histogram_mean(worker: WorkerProcess, name: str) -> float:
    text = worker.metrics()
    count = metric_value(text, f"{name}_count")
    return metric_value(text, f"{name}_sum") / count if count else 0.0


def train_model(out: Path) -> Path:
    """A small model trained for real (the architecture is what the benchmarks measure)."""
    if not (out / "LATEST").exists():
        skucast = str(Path(sys.executable).with_name("skucast"))
        subprocess.run([skucast, "train", "--top-n", "60", "--epochs", "2", "--out", str(out)], check=True,
                       cwd=ROOT, capture_output=True, timeout=1800)
    return out


def model_dir(arg: Path | None) -> Path:
    """--model-dir, else ./models when it has a model, else one trained once into the cache."""
    if arg is not None:
        return arg
    if (ROOT / "models" / "LATEST").exists():
        return ROOT / "models"
    return train_model(BENCH_MODEL_DIR)


def write_report(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    print(f"wrote {out}")


def run_and_report(
    name: str,
    args: Any,
    run: Callable[[Any, Path], dict[str, Any]],
    render: Callable[[dict[str, Any], Any], None],
) -> None:
    """The common tail of a benchmark's main: run in a scratch dir, print the table, write JSON."""
    import tempfile

    from rich.console import Console

    args.out = args.out or RESULTS / f"{name}{'_quick' if args.quick else ''}.json"
    with tempfile.TemporaryDirectory(prefix="skucast-bench-") as tmp:
        report = run(args, Path(tmp))
    render(report, Console())
    write_report(report, args.out)


def http_get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return orjson.loads(r.read())
