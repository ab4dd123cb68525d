"""How fast can Python even receive the orders? A Faust agent that does nothing vs aiokafka ``getmany``.

    python benchmarks/consumer_paths.py              # 200,000 events
    python benchmarks/consumer_paths.py --quick      # smoke test for CI (20,000 events)

Why the worker reads ``orders`` with aiokafka's ``getmany`` (worker/orders_consumer.py) and not
through a Faust agent: this measures, on one pre-loaded topic, (1) a Faust app whose agent takes
batches with ``stream.take_events(batch, within=0.02)`` and does nothing else, (2) an aiokafka
consumer calling ``getmany`` and building the worker's ``RawRecord`` batches, (3) the plain
confluent-kafka consumer. Each runs in its own process. Writes
benchmarks/results/consumer_paths.json (_quick).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    BOOTSTRAP,
    create_topics,
    delete_topics,
    load_mix,
    machine,
    produce_all,
    replicate,
    run_and_report,
    unique,
)

BATCH = 10_000


def faust_child(topic: str, n: int, datadir: str) -> None:
    import faust
    import uvloop
    from faust.worker import Worker

    app = faust.App(f"bench-faust-{uuid.uuid4().hex[:6]}", broker=f"kafka://{BOOTSTRAP}", value_serializer="raw",
                    key_serializer="raw", topic_allow_declare=False, topic_disable_leader=True,
                    consumer_auto_offset_reset="earliest", web_enabled=False, datadir=datadir)
    orders = app.topic(topic, key_type=bytes, value_type=bytes)
    state: dict[str, Any] = {"n": 0, "t0": 0.0, "cpu0": 0.0}

    @app.agent(orders)
    async def count(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=0.02):
            if state["n"] == 0:
                state["t0"], state["cpu0"] = time.perf_counter(), time.process_time()
            state["n"] += len(events)
            if state["n"] >= n:
                report(state["n"], time.perf_counter() - state["t0"], time.process_time() - state["cpu0"])
                os._exit(0)  # the measurement is done; skip Faust's shutdown

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def aiokafka_child(topic: str, n: int) -> None:
    import uvloop
    from aiokafka import AIOKafkaConsumer

    from worker.orders_consumer import to_records

    async def run() -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, group_id=unique("bench-aio"),
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    max_partition_fetch_bytes=4 << 20, fetch_max_bytes=32 << 20)
        await consumer.start()
        seen, t0, cpu0 = 0, 0.0, 0.0
        try:
            while seen < n:
                fetched = await consumer.getmany(timeout_ms=100, max_records=BATCH)
                if fetched and seen == 0:
                    t0, cpu0 = time.perf_counter(), time.process_time()
                seen += len(to_records(fetched))
        finally:
            await consumer.stop()
        report(seen, time.perf_counter() - t0, time.process_time() - cpu0)

    uvloop.run(run())


def confluent_child(topic: str, n: int) -> None:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": unique("bench-ck"),
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, t0, cpu0 = 0, 0.0, 0.0
    while seen < n:
        msgs = consumer.consume(num_messages=BATCH, timeout=0.5)
        if msgs and seen == 0:
            t0, cpu0 = time.perf_counter(), time.process_time()
        seen += sum(1 for m in msgs if not m.error())
    report(seen, time.perf_counter() - t0, time.process_time() - cpu0)
    consumer.close()


def report(events: int, seconds: float, cpu: float) -> None:
    print("RESULT " + orjson.dumps({"events": events, "seconds": seconds, "cpu_s": cpu}).decode(), flush=True)


def measure(kind: str, topic: str, n: int, tmp: Path, timeout_s: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", kind, "--topic", topic, "--events", str(n), "--datadir", str(tmp)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=Path(__file__).parents[1])
    # Faust redirects stdout into its log (stderr, prefixed): look for the line anywhere.
    found = [s.split("RESULT ", 1)[1] for s in (out.stdout + out.stderr).splitlines() if "RESULT {" in s]
    if not found:
        raise RuntimeError(f"{kind} reader failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    r: dict[str, Any] = orjson.loads(found[0].strip())
    return {"reader": kind, **r, "events_per_s": r["events"] / r["seconds"],
            "events_per_cpu_s": r["events"] / r["cpu_s"] if r["cpu_s"] > 0 else 0.0}


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    n = args.events or (20_000 if args.quick else 200_000)
    name = unique("bench-paths")
    settings = create_topics(name)
    topic = settings.topic("orders")
    try:
        produce_all(topic, replicate(load_mix(), n, time.time() - 3600))
        rows = [measure(kind, topic, n, tmp, args.timeout) for kind in ("faust", "aiokafka", "confluent")]
    finally:
        delete_topics(settings)
    return {"benchmark": "consumer_paths", "mode": "quick" if args.quick else "full", "machine": machine(),
            "events": n, "batch": BATCH, "rows": rows}


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"receiving {report['events']:,} orders, no processing ({report['mode']}; "
                        f"load {report['machine']['loadavg'][0]:.1f})")
    for col in ("reader", "events/s", "events / CPU-s"):
        table.add_column(col, justify="right")
    labels = {"faust": "Faust agent, take_events", "aiokafka": "aiokafka getmany → RawRecord",
              "confluent": "confluent-kafka consume"}
    for r in report["rows"]:
        table.add_row(labels[r["reader"]], f"{r['events_per_s']:,.0f}", f"{r['events_per_cpu_s']:,.0f}")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke version (20,000 events)")
    parser.add_argument("--events", type=int)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--out", type=Path, help="JSON report (default: benchmarks/results/consumer_paths*.json)")
    parser.add_argument("--child", choices=("faust", "aiokafka", "confluent"), help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--datadir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "faust":
        faust_child(args.topic, args.events, str(Path(args.datadir) / uuid.uuid4().hex[:6]))
    elif args.child == "aiokafka":
        aiokafka_child(args.topic, args.events)
    elif args.child == "confluent":
        confluent_child(args.topic, args.events)
    else:
        run_and_report("consumer_paths", args, run, render)


if __name__ == "__main__":
    main()
