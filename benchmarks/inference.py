"""Batched forecasts/s of the model on CPU (and CUDA when present): batch size, chunk size,
TorchScript vs eager, 1 vs 2 threads; and how long a 10,000-SKU refresh takes.

    python benchmarks/inference.py                      # full grid (a few minutes)
    python benchmarks/inference.py --quick              # smoke test for CI (seconds)
    python benchmarks/inference.py --model-dir models

A "forecast" is one SKU's full output (H days x Q quantiles) through
``model.predictor.Forecaster.predict``: input features (pure numpy) + the network, in chunks of
``CHUNK_ROWS`` rows. Histories are Poisson draws around gamma-distributed SKU means (a retail-like
mix of slow and fast sellers) ending on one day. Each cell is the best of a few timed repeats,
after a warm-up of the same shape (TorchScript specialises on its first calls). Eager runs the
same weights in the Python ``DemandLSTM``. Writes benchmarks/results/inference.json (_quick).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import model.predictor as predictor
from benchmarks.harness import RESULTS, machine, model_dir, write_report
from model.features import FeatureSpec
from model.lstm import DemandLSTM
from model.predictor import Forecaster

REFRESH_SKUS = 10_000
REFRESH_TARGET_S = 0.5


def histories(n: int, lookback: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    means = rng.gamma(0.6, 8.0, size=(n, 1))
    history = rng.poisson(means, size=(n, lookback)).astype(np.float32)
    end_day = np.full(n, 15_300, dtype=np.int64)  # 2011-11-22, a day in the Christmas ramp
    return history, end_day


def eager_forecaster(fc: Forecaster) -> Forecaster:
    """The same weights in the Python module (no TorchScript)."""
    meta = fc._loaded.metadata
    n_calendar = len(FeatureSpec.from_metadata(meta.get("feature_spec")).names())
    state = fc._loaded.module.state_dict()
    hidden = int(state["encoder.weight_hh_l0"].shape[1])
    net = DemandLSTM(n_calendar, hidden=hidden, horizon=fc.horizon, quantiles=fc.quantiles)
    net.load_state_dict(state)
    net.eval().to(fc.device)
    loaded = dataclasses.replace(fc._loaded, module=net)  # type: ignore[arg-type]  # same call signature
    return Forecaster(loaded)


def time_predict(fc: Forecaster, history: np.ndarray, end_day: np.ndarray, chunk: int, repeats: int) -> float:
    """Best wall seconds of ``repeats`` calls (after one warm-up call)."""
    predictor.CHUNK_ROWS = chunk
    fc.predict(history, end_day)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fc.predict(history, end_day)
        best = min(best, time.perf_counter() - started)
    return best


def grid(fc: Forecaster, eager: Forecaster, args: argparse.Namespace) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    batches = [1, 64, 1_024] if args.quick else [1, 64, 1_024, 10_000]
    chunks = [64, 256] if args.quick else [32, 64, 128, 256, 512, 1_024, 10_000]
    threads = [1, 2]
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and not args.quick else [])
    for device in devices:
        for n_threads in threads if device == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(n_threads)
            for kind, model in (("torchscript", fc), ("eager", eager)):
                model = _on(model, device)
                for batch in batches:
                    history, end_day = histories(batch, fc.lookback, rng)
                    repeats = 2 if batch >= 10_000 else (3 if args.quick else 5)
                    for chunk in [c for c in chunks if c <= batch] or [batch]:
                        seconds = time_predict(model, history, end_day, chunk, repeats)
                        rows.append({"device": device, "threads": n_threads, "kind": kind, "batch": batch,
                                     "chunk": chunk, "seconds": seconds, "forecasts_per_s": batch / seconds})
    return rows


def _on(fc: Forecaster, device: str) -> Forecaster:
    if str(fc.device) == device:
        return fc
    loaded = dataclasses.replace(fc._loaded, module=fc._loaded.module.to(device), device=torch.device(device))
    return Forecaster(loaded)


def best_chunk(rows: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    """The chunk size with the highest forecasts/s summed over the large batches (TorchScript, CPU)."""
    score: dict[int, float] = {}
    big = [r for r in rows if r["device"] == "cpu" and r["kind"] == "torchscript" and r["threads"] == threads
           and r["batch"] >= 1_024]
    for r in big:
        score[r["chunk"]] = score.get(r["chunk"], 0.0) + r["forecasts_per_s"] / r["batch"] * 1_024
    chunk = max(score, key=lambda c: score[c]) if score else predictor.CHUNK_ROWS
    return {"threads": threads, "chunk": chunk}


def refresh(fc: Forecaster, chunk: int, threads: int, skus: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    history, end_day = histories(skus, fc.lookback, np.random.default_rng(1))
    seconds = time_predict(fc, history, end_day, chunk, 3)
    return {"skus": skus, "chunk": chunk, "threads": threads, "seconds": seconds,
            "target_s": REFRESH_TARGET_S, "meets_target": seconds <= REFRESH_TARGET_S}


def run(args: argparse.Namespace) -> dict[str, Any]:
    default_chunk = predictor.CHUNK_ROWS
    fc = Forecaster.from_dir(model_dir(args.model_dir), device="cpu")
    eager = eager_forecaster(fc)
    rows = grid(fc, eager, args)
    # The worker runs one intra-op thread (worker/app.py): its chunk is chosen at 1 thread.
    choice = best_chunk(rows, 1)
    skus = 1_024 if args.quick else REFRESH_SKUS
    refreshes = [refresh(fc, choice["chunk"], t, skus) for t in (1, 2)]
    if choice["chunk"] != default_chunk:
        refreshes.append(refresh(fc, default_chunk, 1, skus) | {"note": "current CHUNK_ROWS"})
    predictor.CHUNK_ROWS = default_chunk
    return {
        "benchmark": "inference",
        "mode": "quick" if args.quick else "full",
        "machine": machine() | {"torch": torch.__version__, "cuda": torch.cuda.is_available()},
        "model_version": fc.version,
        "lookback": fc.lookback,
        "horizon": fc.horizon,
        "chunk_rows_in_code": default_chunk,
        "best_chunk": choice,
        "best_chunk_2_threads": best_chunk(rows, 2),
        "refresh": refreshes,
        "rows": rows,
    }


def render(report: dict[str, Any], console: Console) -> None:
    table = Table(title=f"inference, forecasts/s ({report['mode']}; load {report['machine']['loadavg'][0]:.1f})")
    for col in ("device", "threads", "kind", "batch", "chunk", "ms / call", "forecasts/s"):
        table.add_column(col, justify="right")
    for r in report["rows"]:
        table.add_row(r["device"], str(r["threads"]), r["kind"], f"{r['batch']:,}", f"{r['chunk']:,}",
                      f"{r['seconds'] * 1e3:,.1f}", f"{r['forecasts_per_s']:,.0f}")
    console.print(table)
    for r in report["refresh"]:
        console.print(f"refresh of {r['skus']:,} SKUs, chunk {r['chunk']}, {r['threads']} thread(s): "
                      f"{r['seconds']:.3f} s (target {r['target_s']} s) {r.get('note', '')}")
    console.print(f"best chunk: {report['best_chunk']['chunk']} rows at 1 thread (the worker's), "
                  f"{report['best_chunk_2_threads']['chunk']} rows at 2 threads; "
                  f"CHUNK_ROWS in code: {report['chunk_rows_in_code']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny smoke version (seconds)")
    parser.add_argument("--model-dir", type=Path, help="model registry (default: ./models or a cached bench model)")
    parser.add_argument("--out", type=Path, help="JSON report (default: benchmarks/results/inference*.json)")
    args = parser.parse_args()
    args.out = args.out or RESULTS / f"inference{'_quick' if args.quick else ''}.json"
    report = run(args)
    render(report, Console())
    write_report(report, args.out)


if __name__ == "__main__":
    main()
