"""End-to-end throughput of one worker process against the raw Kafka consumer (the ceiling).

    python benchmarks/throughput.py                 # 500,000 events (a few minutes)
    python benchmarks/throughput.py --quick         # smoke test for CI (20,000 events)
    python benchmarks/throughput.py --events 200000 --model-dir models --env SKUCAST_BATCH_MAX_EVENTS=5000

Needs Kafka and Redis (``skucast services up``). Pre-loads N order events (the Online Retail
lines, copies shifted in time) into a fresh ``orders`` topic, reads them with a plain
confluent-kafka consumer (the ceiling for this machine), starts ``skucast worker`` and follows
its /metrics counters until every event is in Redis and forecast, then reads the topic raw once
more: the ceiling is the mean of the two raw reads around the worker's run. The sustained rate
is measured between 5 % and 95 % of the events (startup and the tail excluded). CPU seconds of
the worker, Redis and the broker are recorded, so a loaded machine still yields a comparable
"events per worker CPU-second". Writes benchmarks/results/throughput.json (_quick).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    BOOTSTRAP,
    cpu_seconds,
    create_topics,
    delete_topics,
    drop_redis_prefix,
    histogram_mean,
    load_mix,
    machine,
    model_dir,
    produce_all,
    redis_cpu,
    replicate,
    rss_bytes,
    run_and_report,
    scrape,
    start_profiler,
    start_worker,
    unique,
    worker_pid,
)


def raw_consume(topic: str, expected: int, timeout_s: float = 300) -> dict[str, float]:
    """Read ``expected`` messages with a plain consumer; rate from the first message to the last."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("bench-raw"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.max.bytes": 52_428_800, "max.partition.fetch.bytes": 10_485_760})
    consumer.subscribe([topic])
    seen, nbytes, first, first_cpu = 0, 0, 0.0, 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                if msg.error():
                    continue
                if seen == 0:
                    first, first_cpu = time.perf_counter(), time.process_time()
                seen += 1
                nbytes += len(msg.value() or b"")
        seconds = time.perf_counter() - first
        cpu = time.process_time() - first_cpu  # this process, librdkafka's threads included
    finally:
        consumer.close()
    if seen < expected:
        raise RuntimeError(f"raw consumer read only {seen} of {expected} messages")
    return {"events": seen, "seconds": seconds, "events_per_s": seen / seconds, "mb_per_s": nbytes / seconds / 1e6,
            "events_per_cpu_s": seen / cpu if cpu > 0 else 0.0}


def broker_pid() -> int | None:
    from worker import services
    from worker.settings import Settings

    for row in services.status(Settings()):
        if row.name == "kafka" and row.pid:
            return int(row.pid)
    return None


def follow_worker(worker: Any, expected: int, timeout_s: float) -> list[dict[str, float]]:
    """Sample the worker's counters (and CPU) until every event is through the pipeline."""
    samples: list[dict[str, float]] = []
    pid = worker_pid(worker)
    kafka = broker_pid()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = scrape(worker)
        m["done"] = m["events_applied"] + m["dead_letters"] + m["late_events"]
        m["t"] = time.perf_counter()
        m["worker_cpu_s"] = cpu_seconds(pid)
        m["redis_cpu_s"] = redis_cpu()
        m["broker_cpu_s"] = cpu_seconds(kafka) if kafka else 0.0
        m["worker_rss"] = rss_bytes(pid)
        samples.append(m)
        if m["done"] >= expected:
            return samples
        if not worker.alive():
            raise RuntimeError(f"worker died:\n{worker.log()}")
        time.sleep(0.25)
    raise RuntimeError(f"worker did not finish {expected} events in {timeout_s}s: {samples[-1]}")


def _at(samples: list[dict[str, float]], done: float) -> dict[str, float]:
    return next(s for s in samples if s["done"] >= done)


def summarise(samples: list[dict[str, float]], expected: int) -> dict[str, float]:
    lo, hi = _at(samples, 0.05 * expected), _at(samples, 0.95 * expected)
    start = next(s for s in samples if s["events_consumed"] > 0)
    end = samples[-1]
    span = hi["t"] - lo["t"]
    worker_cpu = hi["worker_cpu_s"] - lo["worker_cpu_s"]
    events = hi["done"] - lo["done"]
    return {
        "events": end["done"],
        "sustained_events_per_s": events / span,
        "overall_events_per_s": end["done"] / (end["t"] - start["t"]),
        "forecasts_per_s": (hi["forecasts_emitted"] - lo["forecasts_emitted"]) / span,
        "forecasts_total": end["forecasts_emitted"],
        "worker_cpu_share": worker_cpu / span,
        "events_per_worker_cpu_s": events / worker_cpu if worker_cpu else 0.0,
        "redis_cpu_share": (hi["redis_cpu_s"] - lo["redis_cpu_s"]) / span,
        "broker_cpu_share": (hi["broker_cpu_s"] - lo["broker_cpu_s"]) / span,
        "worker_rss_mb": end["worker_rss"] / 2**20,
        "dead": end["dead_letters"],
        "late": end["late_events"],
    }


def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    n = args.events or (20_000 if args.quick else 500_000)
    name = unique("bench-tp")
    settings = create_topics(name, args.partitions)
    topic = settings.topic("orders")
    models = model_dir(args.model_dir)
    extra_env = dict(kv.split("=", 1) for kv in args.env)
    try:
        mix = load_mix()
        produced, produce_s = produce_all(topic, replicate(mix, n, end_ts=time.time() - 3600))
        before = raw_consume(topic, produced)
        worker = start_worker(name, models, log_dir, **extra_env)
        try:
            profiler = start_profiler(worker_pid(worker), args.profile) if args.profile else None
            samples = follow_worker(worker, produced, timeout_s=args.timeout)
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                profiler.wait(60)
            batch_mean = histogram_mean(worker, "skucast_batch_events")
            stages = {op: histogram_mean(worker, f"skucast_{op}") for op in ("redis_seconds", "inference_seconds")}
        finally:
            worker.stop()
        after = raw_consume(topic, produced)
    finally:
        delete_topics(settings)
        drop_redis_prefix(name)
    result = summarise(samples, produced)
    ceiling = (before["events_per_s"] + after["events_per_s"]) / 2
    raw_cpu = (before["events_per_cpu_s"] + after["events_per_cpu_s"]) / 2
    return {
        "benchmark": "throughput",
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "events": produced,
        "skus": len(set(mix.sku[: min(n, len(mix))])),
        "partitions": args.partitions,
        "worker_env": extra_env,
        "produce_events_per_s": produced / produce_s,
        "raw_consumer": {"before": before, "after": after, "events_per_s": ceiling, "events_per_cpu_s": raw_cpu},
        "worker": {**result, "mean_batch_events": batch_mean, "mean_stage_s": stages},
        "ratio_worker_to_raw": result["sustained_events_per_s"] / ceiling,
        "ratio_worker_to_raw_per_cpu_s": result["events_per_worker_cpu_s"] / raw_cpu if raw_cpu else 0.0,
        "samples": [{k: round(v, 4) for k, v in s.items()} for s in samples],
    }


def render(report: dict[str, Any], console: Console) -> None:
    w, raw = report["worker"], report["raw_consumer"]
    table = Table(title=f"throughput, {report['events']:,} events, {report['skus']:,} SKUs ({report['mode']}; "
                        f"load {report['machine']['loadavg'][0]:.1f} on {report['machine']['cpus']} CPUs)")
    for col in ("reader", "events/s", "forecasts/s", "events / CPU-s", "ratio to raw"):
        table.add_column(col, justify="right")
    table.add_row("raw confluent-kafka consumer", f"{raw['events_per_s']:,.0f}", "", f"{raw['events_per_cpu_s']:,.0f}",
                  "1")
    table.add_row("skucast worker (sustained)", f"{w['sustained_events_per_s']:,.0f}", f"{w['forecasts_per_s']:,.0f}",
                  f"{w['events_per_worker_cpu_s']:,.0f}",
                  f"{report['ratio_worker_to_raw']:.1%} ({report['ratio_worker_to_raw_per_cpu_s']:.1%} per CPU-s)")
    table.add_row("skucast worker (incl. startup)", f"{w['overall_events_per_s']:,.0f}", "", "", "")
    console.print(table)
    console.print(f"CPU share during the sustained window: worker {w['worker_cpu_share']:.2f}, "
                  f"redis {w['redis_cpu_share']:.2f}, broker {w['broker_cpu_share']:.2f}; mean batch "
                  f"{w['mean_batch_events']:.0f} events; worker RSS {w['worker_rss_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke version (20,000 events)")
    parser.add_argument("--events", type=int, help="events to pre-load (default 500,000)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--model-dir", type=Path, help="model registry (default: ./models or a cached bench model)")
    parser.add_argument("--env", action="append", default=[], help="extra worker setting, NAME=VALUE (repeatable)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds the worker may take")
    parser.add_argument("--profile", type=Path, help="record the worker with py-spy into this file (collapsed)")
    parser.add_argument("--out", type=Path, help="JSON report (default: benchmarks/results/throughput*.json)")
    args = parser.parse_args()
    run_and_report("throughput", args, run, render)


if __name__ == "__main__":
    main()
