"""The alert evaluation's ceiling: the Neyman-Pearson power that bounds any detector."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.alert_inject import Event
from model.alert_oracle import ceiling, days_spanned, most_powerful_power, poisson_pmf


def upper_tail(c: int, lam: float) -> float:
    """P(X >= c) for X ~ Poisson(lam), summed by hand."""
    return 1.0 - sum(math.exp(-lam) * lam**i / math.factorial(i) for i in range(c))


def test_pmf_sums_to_one_and_matches_the_formula() -> None:
    p = poisson_pmf(4.0, 80)
    assert p.sum() == pytest.approx(1.0)
    assert p[3] == pytest.approx(math.exp(-4) * 4**3 / 6)
    assert poisson_pmf(0.0, 5).tolist() == [1.0, 0, 0, 0, 0, 0]


def test_a_surge_is_found_as_often_as_its_count_test_rejects() -> None:
    # At size exactly P0(X >= 6) the test rejects counts of 6 and more: power P1(X >= 6).
    alpha = upper_tail(6, 2.0)
    assert most_powerful_power(2.0, 5.0, alpha) == pytest.approx(upper_tail(6, 10.0), rel=1e-9)


def test_a_drop_to_silence_is_found_when_silence_is_rare_enough() -> None:
    # A SKU expected to sell 3 lines goes silent; silence has probability e^-3 under normal demand.
    assert most_powerful_power(3.0, 1e-9, math.exp(-3.0)) == pytest.approx(1.0, abs=1e-6)
    # Half the budget: the boundary outcome (0) is rejected half the time.
    assert most_powerful_power(3.0, 1e-9, math.exp(-3.0) / 2) == pytest.approx(0.5, abs=1e-6)


def test_power_is_the_size_without_a_change_and_grows_with_the_change_and_the_budget() -> None:
    assert most_powerful_power(5.0, 1.0, 0.003) == pytest.approx(0.003)
    by_size = [most_powerful_power(5.0, k, 0.003) for k in (1.5, 2, 3, 5, 10)]
    assert by_size == sorted(by_size) and by_size[-1] > 0.99
    drops = [most_powerful_power(20.0, 1 / k, 0.003) for k in (1.5, 2, 3, 5, 10)]
    assert drops == sorted(drops)
    assert most_powerful_power(5.0, 2.0, 0.01) > most_powerful_power(5.0, 2.0, 0.001)


def test_the_ceiling_of_a_drop_from_midnight_is_slow_and_of_a_burst_quick() -> None:
    night, shop = np.full(8, 0.01), np.full(10, 0.5)
    drop_hours = np.concatenate([night, shop, np.full(6, 0.01)] * 3)  # three days, 15 lines expected
    burst = np.full(3, 2.0)  # 6 lines expected in three hours
    events = [Event(0, "drop", 100 * 24, 72, 10.0), Event(1, "surge", 100 * 24 + 10, 3, 8.0)]
    best = ceiling(events, [drop_hours, burst], 0.001, 24)
    drop, surge = 0, 1
    assert best.found[drop] > 0.9 and best.quick[drop] < 0.01  # nothing to see in two closed hours
    assert best.found[surge] > 0.99 and best.quick[surge] > 0.9
    assert days_spanned(100 * 24 + 10, 100 * 24 + 13 + 24) == 2


def test_the_ceiling_is_low_for_a_mild_short_surge_of_a_slow_seller() -> None:
    # 3 lines a day, doubled for 4 shop hours: ~1 extra line; no detector can tell at this budget.
    best = ceiling([Event(0, "surge", 24 * 50 + 10, 4, 2.0)], [np.full(4, 0.3)], 0.001, 24)
    assert best.found[0] < 0.05


def test_the_report_and_its_docs_section_carry_the_ceiling() -> None:
    from dataclasses import asdict
    from pathlib import Path

    from model.alert_eval import EvalConfig, ReplayResult
    from model.alert_report import Draw, summarise
    from model.thresholds import Thresholds
    from worker.cli_alerts import render_markdown

    day = 100
    events = [Event(0, "surge", day * 24 + 10, 3, 8.0), Event(1, "drop", day * 24, 72, 10.0),
              Event(2, "surge", day * 24 + 12, 4, 2.0)]
    hourly = [np.full(3, 2.0), np.full(72, 0.2), np.full(4, 0.3)]
    best = ceiling(events, hourly, 0.001, 24)
    found_burst = {"sku": 0, "kind": "surge", "state": "opened", "hour": day * 24 + 11, "severity": "critical"}
    result = ReplayResult(np.zeros((3, 10)), np.zeros((3, 10)), [found_burst])
    th = Thresholds(surge=3.6, drop=3.9, calibration={"from": "a", "to": "b", "sku_days": 1})
    draw = Draw(0, events, [True, True, False], best, result)
    other = Draw(1, [Event(0, "surge", day * 24 + 12, 3, 8.0)], [True], ceiling(events[:1], hourly[:1], 0.001, 24),
                 ReplayResult(np.zeros((3, 10)), np.zeros((3, 10)), []))
    cfg = EvalConfig(Path("orders"), Path("models"))
    report = summarise([draw], th, range(day - 2, day + 8), cfg, 3)
    assert report["found_quick"] == pytest.approx(1 / 3, abs=1e-3)  # the burst, 2 h after its start
    assert report["ceiling_recall"] == pytest.approx(best.found.mean(), abs=1e-3)
    assert report["ceiling_recall"] < 0.9
    assert report["by_kind"]["drop"]["ceiling"] > 0.9 > report["by_kind"]["drop"]["ceiling_quick"]
    md = render_markdown({**report, "thresholds": asdict(th), "model_version": "v1"}, "skucast evaluate-alerts")
    assert "**ceiling**: recall any detector could reach" in md
    assert "recall >= 0.9 is out of reach of any detector" in md
    assert "| events | n | recall | ceiling |" in md
    pooled = summarise([draw, other], th, range(day - 2, day + 8), cfg, 3)  # the second draw's burst is missed
    assert pooled["events"] == 4 and pooled["recall"] == pytest.approx(0.25)
    assert [d["recall"] for d in pooled["by_draw"]] == [pytest.approx(1 / 3, abs=1e-3), 0.0]
    assert pooled["by_kind"]["surge"]["events"] == 3


def test_the_ablations_forecast_is_the_same_weekday_mean_of_the_last_weeks() -> None:
    from model.alert_eval import SeasonalMean

    week = np.array([5.0, 6.0, 7.0, 8.0, 9.0, 0.0, 2.0])  # a shop shut on the sixth day
    history = np.tile(week, 4)[None, :] * np.array([[1.0], [2.0]])  # two SKUs, 28 days
    history[0, -7] += 4.0  # one busier day, a week before the first day forecast
    out = SeasonalMean((0.1, 0.5, 0.9), weeks=4, horizon=7).predict(history, np.array([100, 100]))
    assert out.shape == (2, 7, 3)
    assert out[1, :, 1].tolist() == (2 * week).tolist()  # day h is the weekday 28 - 7 + h of the history
    assert out[0, 0, :].tolist() == [week[0] + 1.0] * 3  # (4 extra) / 4 weeks; every quantile alike
