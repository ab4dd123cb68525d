"""Run every benchmark, one after another, and print the headline numbers against the targets.

    python benchmarks/run_all.py                  # full runs (15-30 minutes on 2 cores)
    python benchmarks/run_all.py --quick          # every smoke version (a few minutes)
    python benchmarks/run_all.py --only inference latency --model-dir models

Same as ``make benchmarks``. Needs Kafka and Redis (``skucast services up``). Each benchmark
writes its own JSON under benchmarks/results/ (``*_quick.json`` for --quick); the summary is
read back from those files.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENCHMARKS = ("inference", "consumer_paths", "throughput", "latency", "memory", "window_store")


def headline(name: str, r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(measure, value, target) rows of one report."""
    if name == "throughput":
        w = r["worker"]
        return [("sustained events/s, one worker", f"{w['sustained_events_per_s']:,.0f}", ">= 20,000"),
                ("worker / raw consumer", f"{r['ratio_worker_to_raw']:.1%}", ">= 10%"),
                ("events per worker CPU-second", f"{w['events_per_worker_cpu_s']:,.0f}", "")]
    if name == "latency":
        rows = [(f"event → forecast p99 at {p['offered_per_s']:,}/s", f"{p['p99_ms']:.0f} ms",
                 "<= 50 ms" if p["offered_per_s"] == 5_000 else "") for p in r["phases"]]
        alert = r["surge"].get("alert_ms") if r["surge"] else None
        return [*rows, ("event → alert (surge)", f"{alert:.0f} ms" if alert is not None else "none", "")]
    if name == "inference":
        return [(f"refresh of {x['skus']:,} SKUs, chunk {x['chunk']}, {x['threads']} thread(s)",
                 f"{x['seconds']:.3f} s", f"<= {x['target_s']} s") for x in r["refresh"]]
    if name == "memory":
        last = r["rows"][-1]
        return [(f"Redis bytes per SKU ({last['skus']:,} SKUs)", f"{last['redis_bytes_per_sku']:,.0f}", ""),
                (f"worker bytes per SKU ({last['skus']:,} SKUs)", f"{last['worker_rss_bytes_per_sku']:,.0f}", ""),
                ("100k SKUs, worker RSS + Redis", f"{r['projected_100k_total_bytes'] / 2**20:,.0f} MB", "<= 2,048 MB")]
    if name == "consumer_paths":
        return [(f"receive only: {row['reader']}", f"{row['events_per_s']:,.0f} events/s", "") for row in r["rows"]]
    if name == "window_store":
        return [(f"window store updates/s, {s['skus']:,} SKUs",
                 f"{max(x['updates_per_s'] for x in s['rows']):,.0f}", "") for s in r["results"]]
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the smoke versions")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    parser.add_argument("--model-dir", type=Path, help="model registry for the worker benchmarks")
    args = parser.parse_args()
    failed = []
    chosen = args.only or list(BENCHMARKS)
    for name in chosen:
        cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py")] + (["--quick"] if args.quick else [])
        if args.model_dir is not None and name not in ("window_store", "consumer_paths"):
            cmd += ["--model-dir", str(args.model_dir)]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            failed.append(name)
    table = Table(title="headline numbers" + (" (quick: not the real runs)" if args.quick else ""))
    for col in ("benchmark", "measure", "value", "target"):
        table.add_column(col)
    for name in chosen:
        path = RESULTS / f"{name}{'_quick' if args.quick else ''}.json"
        if name in failed or not path.exists():
            table.add_row(name, "FAILED" if name in failed else "no report", "", "")
            continue
        for measure, value, target in headline(name, orjson.loads(path.read_bytes())):
            table.add_row(name, measure, value, target)
    Console().print(table)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
