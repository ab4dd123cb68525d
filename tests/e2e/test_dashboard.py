"""The live dashboard in a real browser during a real replay: Debian's headless Chromium, driven by
Playwright, must render the movers' charts and the open-alerts feed with the very numbers the API
serves, pick up data that arrives while it is open, and leave a screenshot in artifacts/."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.operator_scenario import MALFORMED, Scenario, build_scenario, get_json, js_fmt, start_worker, wait_until
from tests.support import ROOT, WorkerProcess, metric_value, produce

pytestmark = [pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT = ROOT / "artifacts" / "dashboard.png"
REFRESH_S = 1


@dataclass
class Browser:
    page: Any
    errors: list[str] = field(default_factory=list)
    """JavaScript exceptions and console errors seen so far."""


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A fresh headless Chromium (own user-data-dir) and one page in it."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium chromium-driver")
    try:  # a failure, not a skip: the browser test must run wherever the suite runs
        from playwright import sync_api
    except ImportError:
        pytest.fail("the browser test needs Playwright's Python package: pip install playwright")
    with sync_api.sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="skucast-chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1440, "height": 1000},
        )
        try:
            out = Browser(context.new_page())
            out.page.on("pageerror", lambda exc: out.errors.append(str(exc)))
            out.page.on("console", lambda msg: out.errors.append(msg.text) if msg.type == "error" else None)
            yield out
        finally:
            context.close()


def _split(scenario: Scenario) -> tuple[list[tuple[bytes | None, bytes]], list[tuple[bytes | None, bytes]], int]:
    """Everything before the surge copies, the rest, and how many valid lines the first part holds."""
    cut = next(i for i, (k, v) in enumerate(scenario.messages)
               if k == scenario.surge_sku.encode() and b"-surge0" in v)
    malformed = {v for _, v, _ in MALFORMED}
    before = scenario.messages[:cut]
    return before, scenario.messages[cut:], sum(1 for _, v in before if v not in malformed)


def _wait_applied(worker: WorkerProcess, n: float) -> None:
    wait_until(lambda: metric_value(worker.metrics(), "skucast_events_applied_total") >= n,
               f"{n} lines applied", timeout_s=240, log=worker.log)


def test_dashboard_renders_charts_and_alerts_with_real_values(
    services: None, trained_model: Path, tmp_path: Path, browser: Browser
) -> None:
    page = browser.page
    scenario = build_scenario()
    before, after, valid_before = _split(scenario)
    name, worker = start_worker("dash", trained_model, tmp_path)
    try:
        # First part of the replay: the page opens on live data with no surge yet.
        produce(f"{name}.orders", before)
        _wait_applied(worker, valid_before)
        page.goto(f"http://127.0.0.1:{worker.port}/dashboard?refresh={REFRESH_S}")
        page.wait_for_selector("svg[data-testid=mover-chart]", timeout=30_000)
        assert page.locator(f"tr.alert-row[data-sku='{scenario.surge_sku}']").count() == 0

        # The rest, surge included, while the page is open: it must show up without a reload.
        produce(f"{name}.orders", after)
        _wait_applied(worker, len(scenario.lines))
        status, open_alerts = get_json(worker.port, "/alerts?state=open")
        assert status == 200
        surge = next(a for a in open_alerts["alerts"] if a["sku"] == scenario.surge_sku)
        row = page.locator(f"tr.alert-row[data-alert-id='{surge['alert_id']}']")
        row.wait_for(timeout=30_000)

        # Let one more refresh land after the last write, then compare page and API.
        seen = int(page.get_attribute("body", "data-refreshes") or 0)
        page.wait_for_function(f"Number(document.body.dataset.refreshes) > {seen + 1}", timeout=30_000)
        _assert_alerts_match(page, open_alerts["alerts"])
        _assert_movers_match(page, worker.port)
        _assert_drill_down(page, worker.port, scenario.surge_sku, surge)
        assert browser.errors == []

        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
        assert SCREENSHOT.stat().st_size > 20_000
        shutil.copy(SCREENSHOT, tmp_path / "dashboard.png")
        assert worker.alive(), worker.log()
    finally:
        worker.stop()


def _assert_alerts_match(page: Any, alerts: list[dict[str, Any]]) -> None:
    rows = page.locator("tr.alert-row")
    assert rows.count() == len(alerts) >= 1
    for i, alert in enumerate(alerts):  # same order as the API: most severe first
        row = rows.nth(i)
        assert row.get_attribute("data-sku") == alert["sku"]
        assert row.locator(".observed").inner_text() == js_fmt(alert["observed"])
        assert row.locator(".expected").inner_text() == js_fmt(alert["expected"])
        assert row.locator(".upper").inner_text() == js_fmt(alert["upper"])
        assert row.locator(".badge").first.inner_text().lower() == alert["severity"]
        festival = row.locator(".badge.festival")
        assert festival.count() == (1 if alert["festival"] else 0)
        if alert["festival"]:
            assert festival.inner_text() == alert["festival"]
    assert page.inner_text("#alert-count") == str(len(alerts))


def _assert_movers_match(page: Any, port: int) -> None:
    status, movers = get_json(port, "/skus?top=6")
    assert status == 200 and movers["skus"]
    charts = page.locator("svg[data-testid=mover-chart]")
    assert charts.count() == len(movers["skus"])
    for i, mover in enumerate(movers["skus"]):
        chart = charts.nth(i)
        sku = mover["sku"]
        assert chart.get_attribute("data-sku") == sku
        status, history = get_json(port, f"/skus/{sku}/history?grain=day&n=28")
        assert status == 200
        last_units = history["buckets"][-1]["units"]
        fc = mover["forecast"]
        p50_today = fc["values"][0][fc["quantiles"].index(0.5)]
        assert float(chart.get_attribute("data-last-actual")) == last_units
        assert float(chart.get_attribute("data-p50-today")) == pytest.approx(p50_today)
        card = page.locator(f"article.card[data-sku='{sku}']")
        assert card.locator(".today-actual").inner_text() == js_fmt(last_units)
        assert card.locator(".today-p50").inner_text() == js_fmt(p50_today)
        # The drawn series: one point per history day, one band vertex pair per horizon day.
        points = chart.locator("polyline.actual").get_attribute("points").split()
        assert len(points) == len(history["buckets"])
        assert len(chart.locator("polygon.band").get_attribute("points").split()) == 2 * fc["horizon"]
        assert all(p.replace(",", "").replace(".", "").isdigit() for p in points)


def _assert_drill_down(page: Any, port: int, sku: str, alert: dict[str, Any]) -> None:
    page.locator(f"tr.alert-row[data-sku='{sku}']").click()
    page.wait_for_selector(f"svg[data-testid=drill-chart][data-sku='{sku}']", timeout=15_000)
    assert page.inner_text("#drill-sku") == sku
    status, fc = get_json(port, f"/skus/{sku}/forecast")
    assert status == 200
    table = page.locator("#drill-forecast tbody tr")
    assert table.count() == fc["horizon"]
    mid = fc["quantiles"].index(0.5)
    assert table.nth(0).locator("td").nth(2).inner_text() == js_fmt(fc["values"][0][mid])
    assert page.locator("svg[data-testid=drill-chart] circle.surge-dot").count() == 1
    assert f"score {js_fmt(alert['score'])}" in page.inner_text("#drill-facts")
