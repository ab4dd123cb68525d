"""The operator's HTTP side after a real replay: /metrics counts match what was sent, the query API
answers from Redis with the numbers the topics and the ground truth hold, /openapi.json lists
every route and every route it lists answers."""

from __future__ import annotations

import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.buckets import day_to_date
from tests.e2e.operator_scenario import (
    SURGE_COPIES,
    Scenario,
    build_scenario,
    get_json,
    local_days,
    start_worker,
    wait_until,
)
from tests.support import WorkerProcess, consume_all, produce
from worker.http_api import ROUTES

pytestmark = [pytest.mark.e2e]


def samples(metrics_text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of the counter ``name`` (``_total`` included), keyed by its sorted labels."""
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def total(metrics_text: str, name: str) -> float:
    return sum(samples(metrics_text, name).values())


class Replayed:
    def __init__(self, name: str, worker: WorkerProcess, scenario: Scenario) -> None:
        self.name, self.worker, self.scenario = name, worker, scenario
        self.forecasts: list[dict[str, Any]] = []
        self.alerts: list[dict[str, Any]] = []

    def get(self, path: str) -> tuple[int, Any]:
        return get_json(self.worker.port, path)


@pytest.fixture(scope="module")
def replayed(services: None, trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    scenario = build_scenario()
    name, worker = start_worker("opapi", trained_model, tmp_path_factory.mktemp("opapi"))
    try:
        produce(f"{name}.orders", scenario.messages)
        run = Replayed(name, worker, scenario)
        # Applied is counted after a batch's outputs are stored, so this means "all done".
        wait_until(lambda: total(worker.metrics(), "skucast_events_applied_total") >= len(scenario.lines),
                   "every line applied", timeout_s=240, log=worker.log)
        emitted = total(worker.metrics(), "skucast_forecasts_emitted_total")
        run.forecasts = consume_all(f"{name}.forecasts", until=lambda d: len(d) >= emitted, timeout_s=60)
        n_alerts = total(worker.metrics(), "skucast_alerts_total")
        run.alerts = consume_all(f"{name}.alerts", until=lambda d: len(d) >= n_alerts, timeout_s=60)
        yield run
    finally:
        worker.stop()


def test_metrics_counts_match_what_was_sent(replayed: Replayed) -> None:
    text = replayed.worker.metrics()
    sc = replayed.scenario
    assert total(text, "skucast_events_consumed_total") == len(sc.messages)
    assert total(text, "skucast_events_applied_total") == len(sc.lines)
    dead = {dict(k)["reason"]: v for k, v in samples(text, "skucast_dead_letters_total").items()}
    assert dead == {reason: float(n) for reason, n in sc.dead_reasons.items()}
    assert total(text, "skucast_late_events_total") == 0
    # Every forecast counted was published, and nothing else was.
    assert total(text, "skucast_forecasts_emitted_total") == len(replayed.forecasts) > 0
    by_state = Counter(a["state"] for a in replayed.alerts)
    counted: defaultdict[str, float] = defaultdict(float)
    for labels, v in samples(text, "skucast_alerts_total").items():
        counted[dict(labels)["state"]] += v
    assert {k: v for k, v in counted.items() if v} == {k: float(v) for k, v in by_state.items()}
    assert by_state["opened"] >= 1
    assert total(text, "skucast_latest_store_errors_total") == 0


def test_forecast_route_serves_the_latest_forecast_of_each_sku(replayed: Replayed) -> None:
    latest: dict[str, dict[str, Any]] = {}
    for f in replayed.forecasts:  # topic order per SKU = emission order
        latest[f["sku"]] = f
    assert set(latest) == set(replayed.scenario.lines["sku"])
    for sku, expected in latest.items():
        status, body = replayed.get(f"/skus/{sku}/forecast")
        assert status == 200 and body == expected


def test_unknown_sku_is_a_json_404(replayed: Replayed) -> None:
    for path in ("/skus/NO-SUCH-SKU/forecast", "/skus/NO-SUCH-SKU/history?grain=day"):
        status, body = replayed.get(path)
        assert status == 404 and body["sku"] == "NO-SUCH-SKU" and "NO-SUCH-SKU" in body["error"]
    status, body = replayed.get(f"/skus/{replayed.scenario.surge_sku}/history?grain=week")
    assert status == 400 and "grain" in body["error"]
    status, body = replayed.get(f"/skus/{replayed.scenario.surge_sku}/history?n=0")
    assert status == 400 and "n must be between" in body["error"]


def test_history_matches_the_ground_truth(replayed: Replayed) -> None:
    lines = replayed.scenario.lines
    lines = lines.assign(day=local_days(lines), revenue=lines["quantity"] * lines["unit_price"])
    sku = replayed.scenario.surge_sku
    mine = lines[lines["sku"] == sku]
    truth = mine.groupby("day").agg(units=("quantity", "sum"), orders=("quantity", "size"),
                                    revenue=("revenue", "sum"))
    status, body = replayed.get(f"/skus/{sku}/history?grain=day&n=30")
    assert status == 200 and body["grain"] == "day" and len(body["buckets"]) == 30
    last_day = int(truth.index.max())
    assert body["buckets"][-1]["start"] == day_to_date(last_day).isoformat()
    for i, bucket in enumerate(body["buckets"]):
        day = last_day - 29 + i
        row = truth.loc[day] if day in truth.index else None
        assert bucket["units"] == (int(row["units"]) if row is not None else 0), bucket
        assert bucket["orders"] == (int(row["orders"]) if row is not None else 0), bucket
        assert bucket["revenue"] == pytest.approx(float(row["revenue"]) if row is not None else 0.0, abs=0.01)
    # The surge is in it: the last day holds the original lines and their copies.
    originals = mine[(mine["day"] == last_day) & ~mine["order_id"].str.contains("-surge")]
    assert body["buckets"][-1]["units"] == (SURGE_COPIES + 1) * int(originals["quantity"].sum())

    status, hours = replayed.get(f"/skus/{sku}/history?grain=hour&n=48")
    assert status == 200 and len(hours["buckets"]) == 48
    today = [b for b in hours["buckets"] if b["start"].startswith(body["buckets"][-1]["start"])]
    assert sum(b["units"] for b in today) == body["buckets"][-1]["units"]


def test_alert_routes_show_the_injected_surge(replayed: Replayed) -> None:
    sku = replayed.scenario.surge_sku
    status, open_ = replayed.get("/alerts?state=open")
    assert status == 200 and open_["state"] == "open"
    mine = [a for a in open_["alerts"] if a["sku"] == sku]
    assert len(mine) == 1, open_
    last_event = [a for a in replayed.alerts if a["sku"] == sku][-1]
    assert mine[0] == last_event and last_event["state"] in ("opened", "updated")
    status, recent = replayed.get("/alerts?state=all&n=200")
    assert status == 200
    # The topic's partitions interleave SKUs arbitrarily; per SKU, the order is the emission order.
    assert len(replayed.alerts) <= 200
    assert len(recent["alerts"]) == len(replayed.alerts)
    for s in {a["sku"] for a in replayed.alerts}:
        newest_first = [a for a in reversed(replayed.alerts) if a["sku"] == s]
        assert [a for a in recent["alerts"] if a["sku"] == s] == newest_first
    status, body = replayed.get("/alerts?state=closed")
    assert status == 400 and "state" in body["error"]


def test_movers_rank_skus_by_expected_units(replayed: Replayed) -> None:
    status, body = replayed.get("/skus?top=5")
    assert status == 200 and len(body["skus"]) == 5
    scores = [m["expected_units"] for m in body["skus"]]
    assert scores == sorted(scores, reverse=True)
    for m in body["skus"]:
        mid = m["forecast"]["quantiles"].index(0.5)
        assert m["expected_units"] == pytest.approx(sum(v[mid] for v in m["forecast"]["values"][:7]), abs=0.01)


def test_health_reports_kafka_redis_and_model(replayed: Replayed, trained_model: Path) -> None:
    status, body = replayed.get("/health")
    assert status == 200
    assert body["status"] == "ok" and body["redis"] is True and body["kafka"] is True
    assert body["model"] == (trained_model / "LATEST").read_text().strip()
    assert body["kafka_detail"]["assigned_partitions"] == 4


def test_openapi_lists_every_route_and_every_listed_route_answers(replayed: Replayed) -> None:
    status, spec = replayed.get("/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    assert set(spec["paths"]) == {*ROUTES, "/metrics"}
    for schema in ("ForecastEvent", "AlertEvent", "History", "Health", "ApiError"):
        assert schema in spec["components"]["schemas"]
    sku = replayed.scenario.surge_sku
    for path in spec["paths"]:
        url = path.replace("{sku}", sku).replace("{asset}", "dashboard.js")
        with urllib.request.urlopen(f"http://127.0.0.1:{replayed.worker.port}{url}", timeout=10) as r:
            assert r.status == 200, url
            assert r.read(), url
