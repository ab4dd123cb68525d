"""Walking skeleton, end to end: real orders + malformed messages through a worker subprocess
on the real Kafka and Redis; Redis buckets equal the ground truth, forecasts and DLQ arrive."""

from __future__ import annotations

import base64
from pathlib import Path

import orjson
import pandas as pd
import pytest

from tests.support import (
    WorkerProcess,
    consume_all,
    ground_truth,
    produce,
    real_order_lines,
    redis_buckets,
    unique,
    wait_for_metric,
    worker_env,
)
from worker.replay import encode_lines

pytestmark = [pytest.mark.e2e]

MALFORMED: list[tuple[bytes | None, bytes, str]] = [
    (None, b"this is not json", "invalid_json"),
    (None, b"\xff\xfe\x00garbage", "invalid_utf8"),
    (b"X1", b'{"order_id":"m1","sku":"X1","quantity":2,"unit_price":1.0,"currency":"GBP"}', "missing_field"),
    (b"X1", b'{"order_id":"m2","sku":"X1","quantity":-3,"unit_price":1.0,"currency":"GBP",'
            b'"event_time":"2011-11-01T10:00:00Z","customer_id":"CUST-SECRET-42"}', "invalid_quantity"),
    (b"X1", b'{"order_id":"m3","sku":"X1","quantity":1,"unit_price":"NaN","currency":"GBP",'
            b'"event_time":"2011-11-01T10:00:00Z"}', "invalid_unit_price"),
    (b"X1", b'{"order_id":"m4","sku":"X1","quantity":1,"unit_price":1.0,"currency":"XYZ",'
            b'"event_time":"2011-11-01T10:00:00Z"}', "invalid_currency"),
    (b"X1", b'{"schema_version":99,"order_id":"m5","sku":"X1","quantity":1,"unit_price":1.0,'
            b'"currency":"GBP","event_time":"2011-11-01T10:00:00Z"}', "unknown_schema_version"),
    (b"X1", b'{"order_id":"m6","sku":"X1","quantity":1,"unit_price":1.0,"currency":"GBP",'
            b'"event_time":"2999-01-01T00:00:00Z"}', "event_time_in_future"),
    (None, b'{"pad":"' + b"x" * 20000 + b'"}', "oversized"),
    (b"X1", b'[1, 2, 3]', "not_an_object"),
]


def real_orders(n_skus: int = 20, n_lines: int = 1000) -> pd.DataFrame:
    lines = real_order_lines("2011-10-01")
    top = lines["sku"].value_counts().index[:n_skus]
    return lines[lines["sku"].isin(top)].head(n_lines)


def test_real_orders_to_buckets_forecasts_and_dead_letters(services: None, trained_model: Path,
                                                           tmp_path: Path) -> None:
    name = unique("skel")
    worker = WorkerProcess(worker_env(name, trained_model), tmp_path / "worker.log").start()
    try:
        lines = real_orders()
        skus = sorted(lines["sku"].unique())
        assert len(lines) == 1000 and len(skus) == 20
        good = [(k, v) for k, v, _ in encode_lines(lines)]
        bad = [(k, v) for k, v, _ in MALFORMED]
        # Malformed messages interleaved with real ones: the worker must keep going past each.
        mixed = good[:300] + bad[:5] + good[300:700] + bad[5:] + good[700:]
        produce(f"{name}.orders", mixed)

        dead = consume_all(f"{name}.orders.dlq", until=lambda d: len(d) >= 10, timeout_s=90)
        assert sorted(d["reason"] for d in dead) == sorted(r for _, _, r in MALFORMED)
        assert all(d["detail"] and d["source_topic"] == f"{name}.orders" and d["offset"] >= 0 for d in dead)

        def every_sku_forecast_with_final_totals(docs: list[dict]) -> bool:
            return {d["sku"] for d in docs} >= set(skus)

        forecasts = consume_all(f"{name}.forecasts", until=every_sku_forecast_with_final_totals, timeout_s=120)
        assert {f["sku"] for f in forecasts} == set(skus)
        for f in forecasts:
            assert f["horizon"] == 14 and len(f["values"]) == 14
            assert f["quantiles"] == [0.1, 0.5, 0.9]
            for day in f["values"]:
                assert day[0] >= 0 and day[0] <= day[1] <= day[2]
            assert f["model_version"] == (trained_model / "LATEST").read_text().strip()

        wait_for_metric(worker, "skucast_events_applied_total", 1000)
        assert redis_buckets(name, skus) == ground_truth(lines)
        assert worker.alive(), worker.log()
        assert_no_raw_customer_ids(name, [*map(str, lines["customer_id"].dropna().unique()), "CUST-SECRET-42"])
        assert wait_for_metric(worker, "skucast_events_applied_total", 1000) == 1000
        assert wait_for_metric(worker, "skucast_dead_letters_total", 10) == 10
    finally:
        worker.stop()
    assert orjson.loads(orjson.dumps(dead[0]))  # the DLQ payload is plain JSON


def assert_no_raw_customer_ids(name: str, raw_ids: list[str]) -> None:
    """No raw customer id in any Redis value of this run nor on any output topic."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379)
    values: set[bytes] = set()
    for key in client.scan_iter(match=f"{name}:*", count=1000):
        kind = client.type(key)
        if kind == b"hash":
            values.update(v for kv in client.hgetall(key).items() for v in kv)
        elif kind == b"zset":
            values.update(m for m, _ in client.zrange(key, 0, -1, withscores=True))
        elif kind == b"string":
            values.add(client.get(key) or b"")
        elif kind == b"list":
            values.update(client.lrange(key, 0, -1))
    docs = [d for t in ("forecasts", "alerts", "orders.dlq", "orders.late")
            for d in consume_all(f"{name}.{t}", timeout_s=5, idle_s=2)]
    # Dead letters carry the original bytes base64-encoded: look inside them too.
    originals = [base64.b64decode(d["original_b64"]) for d in docs if "original_b64" in d]
    published = b"\n".join([*map(orjson.dumps, docs), *originals])
    assert values and published, "nothing was read back: the check would be vacuous"
    text = b"\n".join(values) + published
    leaked = [c for c in raw_ids if c.encode() in values or f'"{c}"'.encode() in text]
    assert not leaked, f"raw customer ids found: {leaked[:5]}"
