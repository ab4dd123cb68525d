"""Event → forecast latency at fixed offered loads, and event → alert for an injected surge.

    python benchmarks/latency.py                         # 1k, 5k, 10k events/s, 20 s each + a surge
    python benchmarks/latency.py --quick                 # smoke test for CI (500/s for 3 s + a surge)
    python benchmarks/latency.py --rates 5000 --seconds 60 --model-dir models

Needs Kafka and Redis (``skucast services up``). One worker runs throughout; a paced
confluent-kafka producer offers each load in turn, a consumer thread reads ``forecasts`` and
``alerts`` as they arrive. Each order's ``event_time`` is its send time (to the microsecond),
and a forecast says up to which event time it has seen (``as_of``, the SKU's watermark): an
order's latency is the arrival time of the first forecast of its SKU with ``as_of`` at or after
the order, minus the order's send time — producer, broker, worker and consumer included. SKUs
follow the Online Retail mix. The surge goes to a SKU given 60 days of ordinary history (two
order lines a day) before the run: in the middle of the busiest load but one, ``--surge-lines``
order lines of it are sent at once; its latency runs from the last of them to the ``opened``
alert. ``--history-days N`` first gives every SKU its real last N days of Online Retail orders in
Redis (shifted to end yesterday); the offered loads are then far above any SKU's history, so
most SKUs also open a surge alert. Writes benchmarks/results/latency.json (_quick).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import multiprocessing
import queue
import signal
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    BOOTSTRAP,
    cpu_seconds,
    create_topics,
    delete_topics,
    drop_redis_prefix,
    load_mix,
    machine,
    metric_value,
    model_dir,
    order_json,
    preload_history,
    redis_cpu,
    run_and_report,
    scrape,
    start_profiler,
    start_worker,
    unique,
    worker_pid,
)

SURGE_SKU = "SURGE-1"
HISTORY_DAYS = 60


class OutputReader:
    """Reads forecasts and alerts from the end of their topics in a process of its own, so the paced
    producer in this one never holds up (through the GIL) the moment an arrival is stamped.

    Keeps (as_of ts, arrival) per SKU and the alerts; :meth:`collect` takes in what has arrived."""

    def __init__(self, forecasts: str, alerts: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.forecasts: dict[str, list[tuple[float, float]]] = defaultdict(list)  # sku -> (as_of ts, arrival)
        self.alerts: list[dict[str, Any]] = []
        self.assigned = ctx.Event()
        self._halt = ctx.Event()
        self._rows: Any = ctx.Queue()
        self._proc = ctx.Process(target=read_outputs, args=(forecasts, alerts, self._rows, self.assigned, self._halt),
                                 daemon=True)

    def start(self) -> None:
        self._proc.start()

    def collect(self) -> None:
        """Take in everything sent so far: until the reader has been silent for a second (it sends
        every 0.2 s while outputs arrive; ``get_nowait`` would stop at a gap in the pipe while its
        feeder thread still holds chunks)."""
        while True:
            try:
                chunk = self._rows.get(timeout=1.0)
            except queue.Empty:
                return
            self._take(chunk)

    def _take(self, chunk: tuple[list[tuple[str, float, float]], list[dict[str, Any]]]) -> None:
        forecasts, alerts = chunk
        for sku, as_of, arrival in forecasts:
            self.forecasts[sku].append((as_of, arrival))
        self.alerts.extend(alerts)

    def stop(self) -> None:
        self._halt.set()
        deadline = time.monotonic() + 10
        while self._proc.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):  # drain: a child with queued data does not exit
                self._take(self._rows.get(timeout=0.1))
        self._proc.join(1)


def read_outputs(forecasts: str, alerts: str, rows: Any, assigned: Any, halt: Any) -> None:
    """The reader process: stamps each output's arrival, sends them on in chunks."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("bench-lat-read"),
                         "auto.offset.reset": "latest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 10, "fetch.min.bytes": 1})
    consumer.subscribe([forecasts, alerts], on_assign=lambda c, parts: assigned.set())
    got: list[tuple[str, float, float]] = []
    opened: list[dict[str, Any]] = []
    sent_at = time.monotonic()
    try:
        while not halt.is_set():
            msg = consumer.poll(0.05)  # returns at the first message (consume(n) waits for n or timeout)
            arrival = time.time()
            if msg is not None and not msg.error() and msg.value() is not None:
                doc = orjson.loads(msg.value() or b"")
                if msg.topic() == forecasts:
                    got.append((doc["sku"], datetime.fromisoformat(doc["as_of"]).timestamp(), arrival))
                else:
                    opened.append({**doc, "arrival": arrival})
            if (got or opened) and time.monotonic() - sent_at > 0.2:
                rows.put((got, opened))
                got, opened, sent_at = [], [], time.monotonic()
    finally:
        rows.put((got, opened))
        consumer.close()


def low_latency_producer() -> Producer:
    return Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 1, "enable.idempotence": True})


def preload_surge_history(producer: Producer, topic: str, now: float) -> None:
    """Two ordinary order lines a day for HISTORY_DAYS days, so the SKU is past every cold start."""
    for day in range(HISTORY_DAYS, 0, -1):
        for k in range(2):
            ts = round(now - day * 86_400 + k * 3_600, 6)
            producer.produce(topic, key=SURGE_SKU.encode(), value=order_json(f"H{day}-{k}", SURGE_SKU, 3, 2.5, ts))
    producer.flush(30)


def offer(producer: Producer, topic: str, skus: np.ndarray, rate: float, seconds: float, tag: str,
          surge_at: float | None, surge_lines: int) -> tuple[list[tuple[str, float]], float | None, float]:
    """Send ``rate`` events/s for ``seconds``; returns ((sku, event ts) per event, surge end, achieved rate)."""
    sent: list[tuple[str, float]] = []
    surge_end: float | None = None
    start = time.perf_counter()
    i = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        while i < due:
            sku = str(skus[i % len(skus)])
            ts = round(time.time(), 6)
            producer.produce(topic, key=sku.encode(), value=order_json(f"{tag}-{i}", sku, 1, 2.5, ts))
            sent.append((sku, ts))
            i += 1
        if surge_at is not None and surge_end is None and elapsed >= surge_at:
            for k in range(surge_lines):
                ts = round(time.time(), 6)
                producer.produce(topic, key=SURGE_SKU.encode(), value=order_json(f"S{tag}-{k}", SURGE_SKU, 3, 2.5, ts))
            surge_end = ts
        producer.poll(0)
        time.sleep(0.0005)
    producer.flush(30)
    return sent, surge_end, i / (time.perf_counter() - start)


def latencies(sent: list[tuple[str, float]],
              forecasts: dict[str, list[tuple[float, float]]]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per order: arrival of the first forecast of its SKU that has seen it, minus its send time
    (and the send times of the orders matched)."""
    index: dict[str, tuple[list[float], list[float]]] = {}
    for sku, rows in forecasts.items():
        rows = sorted(rows, key=lambda r: r[1])  # arrival order
        # The earliest arrival among forecasts with as_of >= t: suffix minimum over as_of order.
        by_as_of = sorted(rows)
        as_of = [r[0] for r in by_as_of]
        first_arrival = list(np.minimum.accumulate([r[1] for r in by_as_of][::-1])[::-1])
        index[sku] = (as_of, first_arrival)
    out, at, missed = [], [], 0
    for sku, ts in sent:
        entry = index.get(sku)
        pos = bisect.bisect_left(entry[0], ts - 1e-6) if entry else 0
        if entry is None or pos == len(entry[0]):
            missed += 1
            continue
        out.append(entry[1][pos] - ts)
        at.append(ts)
    return np.asarray(out), np.asarray(at), missed


def by_second(lat: np.ndarray, at: np.ndarray) -> list[dict[str, float]]:
    """p99 and max of each second of the load: a tail from a few stalls looks different from one of
    a worker that cannot keep up."""
    if len(lat) == 0:
        return []
    second = np.floor(at - at.min()).astype(int)
    return [{"second": int(k), "orders": int((second == k).sum()),
             "p99_ms": float(np.percentile(lat[second == k], 99) * 1e3), "max_ms": float(lat[second == k].max() * 1e3)}
            for k in np.unique(second)]


def worker_stats(worker: Any) -> dict[str, float]:
    """Histogram sums and counts of the worker's stages, its CPU seconds, and the time."""
    text = worker.metrics()
    out = {"t": time.perf_counter(), "cpu_s": cpu_seconds(worker_pid(worker)), "redis_cpu_s": redis_cpu()}
    for name in ("skucast_batch_events", "skucast_batch_seconds", "skucast_redis_seconds",
                 "skucast_inference_seconds", "skucast_delivery_seconds"):
        out[f"{name}_sum"] = metric_value(text, f"{name}_sum")
        out[f"{name}_count"] = metric_value(text, f"{name}_count")
    out["forecasts"] = metric_value(text, "skucast_forecasts_emitted_total")
    for name, key in (("skucast_batch_seconds", "batches_within_50ms"), ("skucast_delivery_seconds",
                                                                         "deliveries_within_50ms")):
        bucket = f'{name}_bucket{{le="0.05"}} '
        out[key] = next((float(line[len(bucket):]) for line in text.splitlines() if line.startswith(bucket)), 0.0)
    return out


def stage_means(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """What the worker did between two ``worker_stats``: batches, mean stage times, CPU share."""
    def mean(name: str) -> float:
        n = b[f"{name}_count"] - a[f"{name}_count"]
        return (b[f"{name}_sum"] - a[f"{name}_sum"]) / n if n else 0.0

    span = b["t"] - a["t"]
    return {"batches": b["skucast_batch_events_count"] - a["skucast_batch_events_count"],
            "mean_batch_events": mean("skucast_batch_events"), "mean_batch_ms": mean("skucast_batch_seconds") * 1e3,
            "batches_over_50ms": (b["skucast_batch_seconds_count"] - a["skucast_batch_seconds_count"])
            - (b["batches_within_50ms"] - a["batches_within_50ms"]),
            "mean_delivery_ms": mean("skucast_delivery_seconds") * 1e3,
            "deliveries_over_50ms": (b["skucast_delivery_seconds_count"] - a["skucast_delivery_seconds_count"])
            - (b["deliveries_within_50ms"] - a["deliveries_within_50ms"]),
            "mean_redis_op_ms": mean("skucast_redis_seconds") * 1e3,
            "mean_inference_ms": mean("skucast_inference_seconds") * 1e3,
            "forecasts_per_s": (b["forecasts"] - a["forecasts"]) / span,
            "worker_cpu_share": (b["cpu_s"] - a["cpu_s"]) / span,
            "redis_cpu_share": (b["redis_cpu_s"] - a["redis_cpu_s"]) / span}


def summary(values: np.ndarray) -> dict[str, float]:
    if len(values) == 0:
        return {"p50_ms": float("nan"), "p95_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    p50, p95, p99 = np.percentile(values, [50, 95, 99]) * 1e3
    return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": float(values.max() * 1e3)}


def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    rates = args.rates or ([500] if args.quick else [1_000, 5_000, 10_000])
    seconds = args.seconds or (3.0 if args.quick else 20.0)
    surge_rate = sorted(rates)[-2] if len(rates) > 1 else rates[0]
    name = unique("bench-lat")
    settings = create_topics(name, args.partitions)
    orders = settings.topic("orders")
    mix = load_mix()
    skus = np.random.default_rng(0).choice(mix.sku, size=50_000)  # the real SKU mix, by order lines
    # --history-days: every SKU starts with its real recent history, as in a shop that has been
    # selling (by default none: every SKU is new, a cold start with the same all-zero history).
    history_lines = (preload_history(settings, mix, np.unique(skus).tolist(), args.history_days, time.time())
                     if args.history_days else 0)
    producer = low_latency_producer()
    reader = OutputReader(settings.topic("forecasts"), settings.topic("alerts"))
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    phases, surge = [], {}
    worker = start_worker(name, model_dir(args.model_dir), log_dir, **extra_env)
    profiler = None
    try:
        profiler = start_profiler(worker_pid(worker), args.profile) if args.profile else None
        reader.start()
        if not reader.assigned.wait(60):
            raise RuntimeError("the output reader got no partitions")
        preload_surge_history(producer, orders, time.time())
        deadline = time.monotonic() + 120
        while scrape(worker)["events_applied"] < 2 * HISTORY_DAYS and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        for rate in rates:
            surge_at = seconds / 2 if rate == surge_rate else None
            before = worker_stats(worker)
            sent, surge_end, achieved = offer(producer, orders, skus, rate, seconds, f"r{rate}", surge_at,
                                              args.surge_lines)
            stats = stage_means(before, worker_stats(worker))
            time.sleep(args.drain)
            reader.collect()
            lat, at, missed = latencies(sent, reader.forecasts)
            if missed > len(sent) // 1000:
                print(f"warning: {missed} of {len(sent)} orders at {rate}/s got no forecast", file=sys.stderr)
            phases.append({"offered_per_s": rate, "achieved_per_s": achieved, "events": len(sent),
                           "matched": len(lat), "missed": missed, **summary(lat), "worker": stats,
                           "by_second": by_second(lat, at)})
            if surge_end is not None:
                opened = [a for a in reader.alerts if a["sku"] == SURGE_SKU and a["state"] == "opened"]
                surge = {"at_offered_per_s": rate, "lines": args.surge_lines,
                         "alert_ms": (opened[0]["arrival"] - surge_end) * 1e3 if opened else None,
                         "kind": opened[0]["kind"] if opened else None,
                         "severity": opened[0]["severity"] if opened else None}
        counters = scrape(worker)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            profiler.wait(60)
    finally:
        reader.stop()
        worker.stop()
        delete_topics(settings)
        drop_redis_prefix(name)
    return {
        "benchmark": "latency",
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "seconds_per_load": seconds,
        "partitions": args.partitions,
        "history_days": args.history_days,
        "history_lines": history_lines,
        "worker_env": extra_env,
        "phases": phases,
        "surge": surge,
        "worker_counters": counters,
    }


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"event → forecast latency ({report['mode']}; load {report['machine']['loadavg'][0]:.1f} "
                        f"on {report['machine']['cpus']} CPUs)")
    for col in ("offered/s", "achieved/s", "events", "missed", "p50 ms", "p95 ms", "p99 ms", "max ms",
                "batch", "forecasts/s", "worker CPU", "Redis CPU"):
        table.add_column(col, justify="right")
    for p in report["phases"]:
        w = p["worker"]
        table.add_row(f"{p['offered_per_s']:,}", f"{p['achieved_per_s']:,.0f}", f"{p['events']:,}", str(p["missed"]),
                      f"{p['p50_ms']:.1f}", f"{p['p95_ms']:.1f}", f"{p['p99_ms']:.1f}", f"{p['max_ms']:.1f}",
                      f"{w['mean_batch_events']:.0f}", f"{w['forecasts_per_s']:,.0f}", f"{w['worker_cpu_share']:.2f}",
                      f"{w['redis_cpu_share']:.2f}")
    console.print(table)
    s = report["surge"]
    if s:
        took = f"{s['alert_ms']:.0f} ms" if s["alert_ms"] is not None else "no alert"
        console.print(f"surge of {s['lines']} order lines at {s['at_offered_per_s']:,}/s offered: "
                      f"event → alert {took} ({s['kind']}, {s['severity']})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke version (seconds)")
    parser.add_argument("--rates", type=int, nargs="+", help="offered loads, events/s (default 1000 5000 10000)")
    parser.add_argument("--seconds", type=float, help="seconds per load (default 20)")
    parser.add_argument("--drain", type=float, default=3.0, help="seconds to wait for the last forecasts")
    parser.add_argument("--surge-lines", type=int, default=150, help="order lines of the injected surge")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--history-days", type=int, default=0,
                        help="days of each SKU's real order history to preload into Redis (default 0: every "
                             "SKU new, a cold start; with history every SKU's load is a surge that alerts)")
    parser.add_argument("--model-dir", type=Path, help="model registry (default: ./models or a cached bench model)")
    parser.add_argument("--env", action="append", default=[], help="extra worker setting, NAME=VALUE (repeatable)")
    parser.add_argument("--profile", type=Path, help="record the worker with py-spy into this file (collapsed)")
    parser.add_argument("--out", type=Path, help="JSON report (default: benchmarks/results/latency*.json)")
    args = parser.parse_args()
    run_and_report("latency", args, run, render)


if __name__ == "__main__":
    main()
