"""Throughput and memory of the Redis window store: updates/s, reads/s, bytes per SKU.

    python benchmarks/window_store.py            # full: 1k / 10k / 100k SKUs (a few minutes)
    python benchmarks/window_store.py --quick    # smoke test for CI (seconds)
    python benchmarks/window_store.py --redis-url redis://127.0.0.1:6379/0
    python benchmarks/window_store.py --cluster  # a local 3-node Redis Cluster (17011-17013)

Without --redis-url it starts its own redis-server on 127.0.0.1:16391 (no persistence) and
stops it at the end. Each SKU first gets a history spread over the whole day retention, so its
rings are at full size (the memory figure is the steady state of a SKU that sells all year);
then single events at "now" go in batches of 1 / 64 / 512 SKU-uniform random events, and
batches of SKUs are read back (last 64 days, and last 366 days). Writes JSON to
benchmarks/results/window_store.json (window_store_quick.json, window_store_cluster.json).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.redis_scripts import pack_with_hiredis  # noqa: E402
from streams.redis_window_store import RedisWindowStore  # noqa: E402
from streams.window_store import OrderUpdate  # noqa: E402
from worker.services.cluster import cluster_down, cluster_up  # noqa: E402

OWN_PORT = 16391
CLUSTER_PORTS = (17011, 17012, 17013)
DAY_RETENTION, HOUR_RETENTION_DAYS = 420, 14  # the worker's defaults
NOW_TS = 1_733_000_000.0  # a fixed "now" (2024-11-30): time is an argument, even here
HISTORY_POINTS = 12  # events per SKU, spread over the day retention, before measuring


@dataclass
class Row:
    skus: int
    batch: int
    updates_per_s: float
    reads_per_s_64d: float
    reads_per_s_366d: float


@dataclass
class SizeResult:
    skus: int
    warmup_events: int
    warmup_updates_per_s: float
    memory_bytes_per_sku: float
    rows: list[Row]


def _update(sku: str, offset: int, ts: float, rng: random.Random) -> OrderUpdate:
    day, hour = int(ts // 86_400), int(ts // 3_600)  # UTC buckets: the tz is not what we measure
    units = rng.randint(1, 12)
    price = rng.choice((0.85, 1.25, 2.95, 4.95))
    return OrderUpdate(
        sku=sku,
        partition=0,
        offset=offset,
        dedup_key=f"o{offset}",
        event_ts=ts,
        day=day,
        hour=hour,
        units=units,
        revenue_milli=round(units * price * 1000),
        price=price,
        category="bench",
    )


async def _used_memory(client: Any, cluster: bool) -> int:
    if cluster:
        info = await client.info("memory", target_nodes=aioredis.RedisCluster.PRIMARIES)
        return sum(int(v["used_memory"]) for v in info.values())
    return int((await client.info("memory"))["used_memory"])


async def _timed_updates(store: RedisWindowStore, updates: list[OrderUpdate], batch: int, budget_s: float) -> float:
    done, started = 0, time.perf_counter()
    for i in range(0, len(updates), batch):
        chunk = updates[i : i + batch]
        result = await store.apply(chunk)
        if result.applied != len(chunk):
            raise RuntimeError(f"expected every event applied, got {result}")
        done += len(chunk)
        if time.perf_counter() - started > budget_s:
            break
    return done / (time.perf_counter() - started)


async def _timed_reads(
    store: RedisWindowStore, names: list[str], batch: int, length: int, budget_s: float, rng: random.Random
) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < budget_s:
        skus = rng.sample(names, batch)
        windows = await store.read_days(skus, length)
        if windows.meta[0] is None or windows.units.shape != (batch, length):
            raise RuntimeError("read returned an unknown SKU or a wrong shape")
        done += batch
    return done / (time.perf_counter() - started)


async def bench_size(client: Any, cluster: bool, n_skus: int, batches: list[int], budget_s: float) -> SizeResult:
    prefix = f"bench{n_skus}x{os.getpid()}"
    store = RedisWindowStore(
        client,
        prefix,
        grace_s=48 * 3600,
        dedup_horizon_s=7 * 86400,
        day_retention=DAY_RETENTION,
        hour_retention=HOUR_RETENTION_DAYS,
        idle_ttl_s=430 * 86_400,  # the production default: TTL refreshes are rare
    )
    rng = random.Random(n_skus)
    names = [f"SKU{i:07d}" for i in range(n_skus)]
    offset = 0
    history: list[OrderUpdate] = []
    span_s = DAY_RETENTION * 86_400
    for point in range(HISTORY_POINTS):  # time order across SKUs, like a replayed stream
        ts = NOW_TS - span_s + span_s * point / (HISTORY_POINTS - 1) - 3600
        order = list(range(n_skus))
        rng.shuffle(order)
        for k in order:
            history.append(_update(names[k], offset, ts + rng.random(), rng))
            offset += 1
    before = await _used_memory(client, cluster)
    warm_rate = await _timed_updates(store, history, 512, budget_s=1e9)
    per_sku = (await _used_memory(client, cluster) - before) / n_skus

    rows = []
    for batch in batches:
        count = min(max(batch * 400, 2_000), 300_000)
        fresh = []
        for _ in range(count):
            fresh.append(_update(names[rng.randrange(n_skus)], offset, NOW_TS + offset * 1e-3, rng))
            offset += 1
        updates_per_s = await _timed_updates(store, fresh, batch, budget_s)
        reads_64 = await _timed_reads(store, names, batch, 64, budget_s, rng)
        reads_366 = await _timed_reads(store, names, batch, 366, budget_s, rng)
        rows.append(Row(n_skus, batch, updates_per_s, reads_64, reads_366))
    await _drop_prefix(client, prefix)
    return SizeResult(n_skus, len(history), warm_rate, per_sku, rows)


async def _drop_prefix(client: Any, prefix: str) -> None:
    """Remove the benchmark's keys (a cluster client scans every primary)."""
    batch: list[bytes] = []
    async for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 2000:
            await _unlink(client, batch)
            batch = []
    if batch:
        await _unlink(client, batch)


async def _unlink(client: Any, keys: list[bytes]) -> None:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("UNLINK", key)  # (ClusterPipeline.unlink is a coroutine)
    await pipe.execute()


def _start_own_redis(run_dir: Path) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not on PATH (apt-get install redis-server), or pass --redis-url")
    proc = subprocess.Popen(
        [server, "--port", str(OWN_PORT), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(run_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis(port=OWN_PORT, socket_connect_timeout=0.2).ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.terminate()
    raise SystemExit(f"redis-server on port {OWN_PORT} did not start")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = args.skus or ([200] if args.quick else [1_000, 10_000, 100_000])
    batches = [1, 64] if args.quick else [1, 64, 512]
    budget_s = 0.3 if args.quick else 3.0
    client: Any
    if args.cluster:
        client = aioredis.RedisCluster(host="127.0.0.1", port=CLUSTER_PORTS[0])
    elif args.redis_url:
        client = aioredis.Redis.from_url(args.redis_url)
    else:
        client = aioredis.Redis(port=OWN_PORT)
    pack_with_hiredis(client)  # as the worker's client does
    load_before = os.getloadavg()[0]  # the numbers mean little on a busy machine: say how busy
    try:
        info = await client.info("server") if not args.cluster else {}
        results = [await bench_size(client, args.cluster, n, batches, budget_s) for n in sizes]
    finally:
        await client.aclose()
    return {
        "benchmark": "window_store",
        "mode": "quick" if args.quick else "full",
        "backend": "cluster-3" if args.cluster else ("url" if args.redis_url else "standalone"),
        "redis_version": info.get("redis_version", "cluster"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m": {"before": load_before, "after": os.getloadavg()[0]},
        "day_retention": DAY_RETENTION,
        "hour_retention_days": HOUR_RETENTION_DAYS,
        "results": [asdict(r) for r in results],
    }


def render(report: dict[str, Any], console: Console) -> None:
    load = report["load_average_1m"]
    title = f"window store ({report['backend']}, {report['mode']}; load {load['before']:.1f} → {load['after']:.1f})"
    table = Table(title=title)
    for col in ("SKUs", "batch", "updates/s", "SKU reads/s (64 d)", "SKU reads/s (366 d)", "bytes/SKU"):
        table.add_column(col, justify="right")
    for size in report["results"]:
        table.add_row(
            f"{size['skus']:,}", "history, 512", f"{size['warmup_updates_per_s']:,.0f}", "", "",
            f"{size['memory_bytes_per_sku']:,.0f}",
        )  # fmt: skip
        for row in size["rows"]:
            table.add_row(
                "", str(row["batch"]), f"{row['updates_per_s']:,.0f}",
                f"{row['reads_per_s_64d']:,.0f}", f"{row['reads_per_s_366d']:,.0f}", "",
            )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke version (seconds)")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one (its keys are removed after)")
    parser.add_argument("--cluster", action="store_true", help="start and use a local 3-node Redis Cluster")
    parser.add_argument("--skus", type=lambda v: [int(x) for x in v.split(",")], help="SKU counts, e.g. 1000,10000")
    parser.add_argument("--out", type=Path, help="JSON report (default: benchmarks/results/window_store*.json)")
    args = parser.parse_args()
    if args.out is None:  # a quick or cluster run never overwrites the full standalone report
        suffix = ("_cluster" if args.cluster else "") + ("_quick" if args.quick else "")
        args.out = ROOT / "benchmarks" / "results" / f"window_store{suffix}.json"
    with tempfile.TemporaryDirectory(prefix="skucast-bench-") as tmp:
        proc = None
        if args.cluster:
            cluster_up(Path(tmp), CLUSTER_PORTS)
        elif not args.redis_url:
            proc = _start_own_redis(Path(tmp))
        try:
            report = asyncio.run(run(args))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)
            if args.cluster:
                cluster_down(Path(tmp), CLUSTER_PORTS, wipe=True)
    render(report, Console())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
