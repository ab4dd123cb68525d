"""Memory per SKU: the worker's RSS and Redis ``used_memory`` at 1k, 10k and 100k SKUs.

    python benchmarks/memory.py              # 1k / 10k / 100k SKUs (a few minutes)
    python benchmarks/memory.py --quick      # smoke test for CI (200 SKUs)

Needs Kafka (``skucast services up``); starts its own redis-server on 127.0.0.1:16393 (no
persistence) so ``used_memory`` is the worker's alone. One worker runs throughout; after a
100-SKU warm-up (imports, model, first batches done) the baseline is taken, then SKUs are added
until 1k, 10k and 100k exist, and after each step (every event applied, forecasts settled) the
worker's RSS (and its private, anonymous part: torch's shared libraries are file-backed pages)
and Redis ``used_memory`` are read. Each SKU sells all year (order lines 419, 300, 180, 60, 20
and 1 days ago), so its day and hour rings are at their full, steady-state size: the worst
case per SKU. Writes benchmarks/results/memory.json (_quick).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import (
    create_topics,
    delete_topics,
    machine,
    model_dir,
    order_json,
    produce_all,
    run_and_report,
    scrape,
    start_worker,
    unique,
    worker_pid,
)

REDIS_PORT = 16393
DAYS_AGO = (419, 300, 180, 60, 20, 1)
TARGET_BYTES_100K = 2 * 1024**3


def start_redis(run_dir: Path) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server)")
    proc = subprocess.Popen([server, "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(run_dir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=REDIS_PORT, socket_connect_timeout=0.2).ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit(f"redis-server on port {REDIS_PORT} did not start")


def orders(prefix: str, first: int, last: int, now: float) -> Iterator[tuple[bytes, bytes]]:
    """Order lines of SKUs [first, last): in time order, each SKU once per history point."""
    for p, days in enumerate(DAYS_AGO):
        base = now - days * 86_400
        for k in range(first, last):
            sku = f"{prefix}{k:07d}"
            yield sku.encode(), order_json(f"{sku}-{p}", sku, 2, 1.5, base + (k % 3_000))


def memory_of(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            fields[key] = int(value.split()[0]) * 1024
    return {"rss": fields["VmRSS"], "anon": fields.get("RssAnon", 0), "file": fields.get("RssFile", 0)}


def settle(worker: Any, applied: int, timeout_s: float) -> None:
    """Wait until ``applied`` events are in and the forecast counter stopped moving."""
    deadline = time.monotonic() + timeout_s
    last, stable_since = -1.0, time.monotonic()
    while time.monotonic() < deadline:
        m = scrape(worker)
        if m["forecasts_emitted"] != last:
            last, stable_since = m["forecasts_emitted"], time.monotonic()
        if m["events_applied"] >= applied and time.monotonic() - stable_since > 1.5:
            return
        if not worker.alive():
            raise RuntimeError(f"worker died:\n{worker.log()}")
        time.sleep(0.3)
    raise RuntimeError(f"worker did not apply {applied} events in {timeout_s}s: {scrape(worker)}")


def snapshot(worker: Any, client: redis.Redis) -> dict[str, int]:
    info = client.info("memory")
    return {**memory_of(worker_pid(worker)), "redis_used_memory": int(info["used_memory"]),
            "redis_keys": int(client.dbsize())}


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    sizes = [200] if args.quick else [1_000, 10_000, 100_000]
    name = unique("bench-mem")
    settings = create_topics(name, args.partitions)
    topic = settings.topic("orders")
    server = start_redis(tmp)
    client = redis.Redis(port=REDIS_PORT)
    extra_env = {"SKUCAST_REDIS_PORT": str(REDIS_PORT), **dict(kv.split("=", 1) for kv in args.env)}
    rows = []
    try:
        worker = start_worker(name, model_dir(args.model_dir), tmp, **extra_env)
        try:
            now = time.time()
            produce_all(topic, orders("W", 0, 100, now))
            applied = 100 * len(DAYS_AGO)
            settle(worker, applied, 300)
            base = snapshot(worker, client)
            have = 0
            for size in sizes:
                produce_all(topic, orders("M", have, size, now))
                applied += (size - have) * len(DAYS_AGO)
                have = size
                settle(worker, applied, args.timeout)
                snap = snapshot(worker, client)
                rows.append({
                    "skus": size,
                    **snap,
                    "worker_rss_bytes_per_sku": (snap["rss"] - base["rss"]) / size,
                    "worker_anon_bytes_per_sku": (snap["anon"] - base["anon"]) / size,
                    "redis_bytes_per_sku": (snap["redis_used_memory"] - base["redis_used_memory"]) / size,
                    "total_bytes": snap["rss"] + snap["redis_used_memory"],
                })
        finally:
            worker.stop()
    finally:
        client.close()
        server.terminate()
        server.wait(10)
        delete_topics(settings)
    largest = rows[-1]
    per_sku = largest["worker_rss_bytes_per_sku"] + largest["redis_bytes_per_sku"]
    return {
        "benchmark": "memory",
        "mode": "quick" if args.quick else "full",
        "machine": machine(),
        "history_days_ago": list(DAYS_AGO),
        "worker_env": extra_env,
        "baseline": base,
        "rows": rows,
        "projected_100k_total_bytes": base["rss"] + base["redis_used_memory"] + 100_000 * per_sku,
        "target_100k_total_bytes": TARGET_BYTES_100K,
    }


def render(report: dict[str, Any], console: Console) -> None:
    mb = 1024**2
    base = report["baseline"]
    table = Table(title=f"memory per SKU ({report['mode']}; worker baseline RSS {base['rss'] / mb:,.0f} MB, "
                        f"of it private {base['anon'] / mb:,.0f} MB)")
    for col in ("SKUs", "worker RSS MB", "worker B/SKU", "worker private B/SKU", "Redis MB", "Redis B/SKU",
                "RSS + Redis MB"):
        table.add_column(col, justify="right")
    for r in report["rows"]:
        table.add_row(f"{r['skus']:,}", f"{r['rss'] / mb:,.0f}", f"{r['worker_rss_bytes_per_sku']:,.0f}",
                      f"{r['worker_anon_bytes_per_sku']:,.0f}", f"{r['redis_used_memory'] / mb:,.0f}",
                      f"{r['redis_bytes_per_sku']:,.0f}", f"{r['total_bytes'] / mb:,.0f}")
    console.print(table)
    console.print(f"100k SKUs (measured or projected): {report['projected_100k_total_bytes'] / mb:,.0f} MB "
                  f"(target {report['target_100k_total_bytes'] / mb:,.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke version (200 SKUs)")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--model-dir", type=Path, help="model registry (default: ./models or a cached bench model)")
    parser.add_argument("--env", action="append", default=[], help="extra worker setting, NAME=VALUE (repeatable)")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds a step may take")
    parser.add_argument("--out", type=Path, help="JSON report (default: benchmarks/results/memory*.json)")
    args = parser.parse_args()
    run_and_report("memory", args, run, render)


if __name__ == "__main__":
    main()
