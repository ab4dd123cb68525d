"""The offline alert evaluation's parts: injection, matching, untouched SKU-days, the docs section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model.alert_inject import Event, InjectionPlan, Lines, inject, orders_per_trading_day, plan_events
from model.alert_oracle import poisson_tail
from model.alert_report import match, untouched_mask
from worker.cli_alerts import SECTION, write_section

FIRST = 15000


def synthetic_lines(n_skus: int = 3, days: int = 60, per_day: int = 6, seed: int = 0) -> Lines:
    rng = np.random.default_rng(seed)
    sku, day, hour = [], [], []
    for s in range(n_skus):
        for d in range(days):
            k = rng.poisson(per_day * (s + 1))
            sku += [s] * k
            day += [FIRST + d] * k
            hour += rng.integers(9, 17, k).tolist()
    n = len(sku)
    return Lines(np.array(sku), np.array(day), np.array(hour), np.full(n, 3))


def test_poisson_tail_both_ways() -> None:
    assert poisson_tail(0, 3.0, upper=False) == pytest.approx(np.exp(-3))
    assert poisson_tail(0, 3.0, upper=True) == pytest.approx(1.0)
    assert poisson_tail(10, 2.0, upper=True) < 1e-4 < poisson_tail(5, 2.0, upper=True)


def test_events_are_planned_apart_in_eligible_skus_and_injected_as_promised() -> None:
    lines = synthetic_lines()
    trading = np.ones(60, dtype=bool)
    rate = orders_per_trading_day(lines, 3, FIRST, 60, trading)
    assert rate[0, 30] == pytest.approx(6, rel=0.3) and rate[2, 30] == pytest.approx(18, rel=0.3)
    plan = InjectionPlan(n_events=12, min_orders_per_day=10.0, gap_days=5)
    events = plan_events(plan, rate, FIRST, (FIRST + 20, FIRST + 55), trading, np.random.default_rng(1))
    assert events and {e.sku for e in events} <= {1, 2}  # SKU 0 sells ~6 lines a day: not eligible
    for a in events:
        for b in events:
            if a is not b and a.sku == b.sku and a.start_hour < b.start_hour:
                assert b.start_hour >= a.end_hour + 5 * 24
    injected = inject(lines, events, rate, FIRST, trading, np.random.default_rng(2))
    hour_index = injected.lines.day * 24 + injected.lines.hour
    for j, e in enumerate(events):
        inside = ((injected.lines.sku == e.sku) & (hour_index >= e.start_hour) & (hour_index < e.end_hour)).sum()
        assert inside == injected.event_orders[j]
        if e.kind == "surge":
            assert inside > injected.normal_orders[j]
        else:
            assert inside < injected.normal_orders[j]


def test_matching_delays_and_false_alarms() -> None:
    events = [Event(0, "surge", 100 * 24 + 10, 5, 4.0), Event(1, "drop", 102 * 24, 48, 9.0)]
    alerts = [
        {"sku": 0, "kind": "surge", "state": "opened", "hour": 100 * 24 + 11},  # 2 h after the start
        {"sku": 0, "kind": "surge", "state": "resolved", "hour": 101 * 24 + 15},
        {"sku": 1, "kind": "surge", "state": "opened", "hour": 102 * 24 + 5},  # wrong kind: false
        {"sku": 2, "kind": "surge", "state": "opened", "hour": 105 * 24},  # untouched SKU: false
    ]
    delays, true_alerts, false_alerts = match(events, alerts, grace_hours=24)
    assert delays == [2.0, None] and (true_alerts, false_alerts) == (1, 2)
    mask = untouched_mask(events, 3, range(98, 110), window_days=1)
    assert not mask[0, 2] and not mask[0, 4] and mask[0, 5]  # day 100 + 1 day after + window
    assert mask[2].all() and not mask[1, 4:8].any()


def test_the_alerts_section_is_replaced_or_appended(tmp_path: Path) -> None:
    doc = tmp_path / "accuracy.md"
    doc.write_text("# Accuracy\n\n## Forecasts\nkeep me\n\n## Alerts\nold numbers\n\n## Other\nkeep too\n")
    write_section(doc, f"{SECTION}\n\nnew numbers\n")
    text = doc.read_text()
    assert "old numbers" not in text and "new numbers" in text
    assert text.index("## Forecasts") < text.index("new numbers") < text.index("## Other")
    assert "keep me" in text and "keep too" in text and text.count(SECTION) == 1
    fresh = tmp_path / "new.md"
    fresh.write_text("# Accuracy\n\n## Forecasts\nx\n")
    write_section(fresh, f"{SECTION}\n\nnumbers\n")
    assert fresh.read_text().endswith(f"x\n\n{SECTION}\n\nnumbers\n")
    doc.write_text(f"{SECTION}\nold numbers\n\n### Ablation\nwritten up\n\n## Other\nkeep too\n")
    write_section(doc, f"{SECTION}\n\nnewer numbers\n")
    text = doc.read_text()
    assert "old numbers" not in text and text.index("newer numbers") < text.index("### Ablation\nwritten up")
