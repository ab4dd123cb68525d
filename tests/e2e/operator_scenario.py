"""A replay for the operator-facing tests: ~3 months of real Online Retail orders for 20 SKUs,
one SKU's last day replicated ×20 (new order ids, same times) so that it surges, plus a few
malformed messages. Shared by the dashboard (browser) test and the API/metrics test."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from model.data import clean, load_raw, to_order_lines
from streams.buckets import local_day_hour
from tests.support import ROOT, WorkerProcess, free_port, unique
from worker.replay import encode_lines

TZ = "Europe/London"
SURGE_COPIES = 20

MALFORMED: list[tuple[bytes | None, bytes, str]] = [
    (None, b"this is not json", "invalid_json"),
    (None, b"{not json either", "invalid_json"),
    (b"X1", b'{"order_id":"m1","sku":"X1","quantity":2,"unit_price":1.0,"currency":"GBP"}', "missing_field"),
    (b"X1", b'{"order_id":"m2","sku":"X1","quantity":-3,"unit_price":1.0,"currency":"GBP",'
            b'"event_time":"2011-11-01T10:00:00Z"}', "invalid_quantity"),
    (b"X1", b'{"order_id":"m4","sku":"X1","quantity":1,"unit_price":1.0,"currency":"XYZ",'
            b'"event_time":"2011-11-01T10:00:00Z"}', "invalid_currency"),
]


@dataclass
class Scenario:
    lines: pd.DataFrame
    """Every valid order line sent, surge copies included, in event-time order."""
    surge_sku: str
    messages: list[tuple[bytes | None, bytes]]
    """Everything produced to ``orders``: the lines with the malformed messages interleaved."""
    dead_reasons: Counter[str]


def local_days(lines: pd.DataFrame) -> pd.Series:
    days, _ = local_day_hour(lines["event_time"].map(lambda t: t.timestamp()).to_numpy(), TZ)
    return pd.Series(days, index=lines.index)


def build_scenario(n_skus: int = 20, since: str = "2011-09-01") -> Scenario:
    lines = to_order_lines(clean(load_raw(ROOT / "data" / "online_retail.parquet")))
    lines = lines[lines["event_time"] >= pd.Timestamp(since, tz="UTC")]
    top = lines["sku"].value_counts().index[:n_skus]
    lines = lines[lines["sku"].isin(top)].sort_values("event_time", kind="stable").reset_index(drop=True)
    day = local_days(lines)
    last_day = int(day.max())
    # The SKU whose final day is largest against its own daily mean surges most believably.
    daily = lines.assign(day=day).groupby(["sku", "day"])["quantity"].sum()
    ratios = {s: daily[s].get(last_day, 0) / daily[s].mean() for s in top}
    surge_sku = max(ratios, key=lambda s: ratios[s])
    originals = lines[(lines["sku"] == surge_sku) & (day == last_day)]
    copies = [originals.assign(order_id=originals["order_id"] + f"-surge{k}") for k in range(SURGE_COPIES)]
    lines = pd.concat([lines, *copies]).sort_values("event_time", kind="stable").reset_index(drop=True)

    good: list[tuple[bytes | None, bytes]] = [(k, v) for k, v, _ in encode_lines(lines)]
    step = len(good) // (len(MALFORMED) + 1)
    messages: list[tuple[bytes | None, bytes]] = []
    for i, (key, value, _) in enumerate(MALFORMED):
        messages += [*good[i * step : (i + 1) * step], (key, value)]
    messages += good[len(MALFORMED) * step :]
    return Scenario(lines, str(surge_sku), messages, Counter(r for _, _, r in MALFORMED))


def worker_env(name: str, model_dir: Path) -> dict[str, str]:
    return {
        "SKUCAST_APP_ID": name, "SKUCAST_TOPIC_PREFIX": f"{name}.", "SKUCAST_REDIS_PREFIX": name,
        "SKUCAST_MODEL_DIR": str(model_dir), "SKUCAST_WEB_PORT": str(free_port()),
        "SKUCAST_STATE_DIR": str(Path.home() / ".cache" / "skucast"),
    }


def start_worker(prefix: str, model_dir: Path, log_dir: Path) -> tuple[str, WorkerProcess]:
    name = unique(prefix)
    return name, WorkerProcess(worker_env(name, model_dir), log_dir / "worker.log").start()


def get_json(port: int, path: str) -> tuple[int, Any]:
    """(status, parsed body) of a GET on the worker; error statuses are returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_until(check: Any, what: str, timeout_s: float = 120, log: Any = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}\n{log() if log else ''}")


def js_fmt(x: float) -> str:
    """The dashboard's number format: integers as is, else one decimal, rounding like toFixed."""
    if float(x).is_integer():
        return str(int(x))
    return str(Decimal(x).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))
