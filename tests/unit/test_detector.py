"""Surge and drop scores, their gates and festival-awareness, thresholds and their calibration."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from model.detector import (
    DetectorInputs,
    active_festivals,
    anscombe_z,
    breaches,
    calm,
    orders_per_unit,
    quantile_mean,
    scan_hours,
    score,
    severity,
)
from model.features import day_index
from model.festivals import BUILTIN
from model.thresholds import Thresholds, load_thresholds, save_thresholds, search_threshold, thresholds_path

Q = (0.1, 0.5, 0.9)


def inputs(today: list[list[float]], units: list[list[float]], orders: list[list[float]], share: float = 1.0,
           opu: float = 0.1, **extra: object) -> DetectorInputs:
    t = np.asarray(today, dtype=np.float64)
    u = np.asarray(units, dtype=np.float64)
    w = u.shape[1]
    window = extra.pop("window", np.repeat(t[:, None, :], w, axis=1))
    ones = np.ones(u.shape, dtype=bool)
    return DetectorInputs(Q, t, np.asarray(window), u, np.asarray(orders, dtype=np.float64),
                          extra.pop("include_surge", ones), extra.pop("include_drop", ones),  # type: ignore[arg-type]
                          np.full(len(t), opu), np.full(len(t), share), **extra)  # type: ignore[arg-type]


def test_quantile_mean_adds_the_exponential_upper_tail() -> None:
    flat = np.array([2.0, 2.0, 2.0])
    assert quantile_mean(flat, Q) == pytest.approx(2.0)
    skewed = np.array([1.0, 2.0, 6.0])
    tail = 0.1 * (6.0 - 2.0) / np.log(5.0)
    assert quantile_mean(skewed, Q) == pytest.approx(0.3 * 1 + 0.4 * 2 + 0.3 * 6 + tail)
    assert quantile_mean(np.stack([flat, skewed]), Q).shape == (2,)


def test_anscombe_z_is_about_standard_normal_for_poisson_counts() -> None:
    rng = np.random.default_rng(0)
    for lam in (2.0, 8.0, 30.0):
        z = anscombe_z(rng.poisson(lam, 200_000).astype(float), np.full(200_000, lam))
        assert abs(z.mean()) < 0.05 and abs(z.std() - 1.0) < 0.05


def test_a_surge_scores_high_and_a_normal_day_does_not() -> None:
    # Forecast 100 units (p50) a day, 10 order lines; by noon (share 0.4) 4 lines are expected.
    fc = [[50.0, 100.0, 180.0]]
    normal = score(inputs(fc, [[45.0]], [[4.0]], share=0.4), Thresholds())
    surge = score(inputs(fc, [[400.0]], [[30.0]], share=0.4), Thresholds())
    assert normal.surge[0] < 1.0 < Thresholds().surge < surge.surge[0]
    assert surge.observed_units[0] == 400 and surge.expected_units[0] == pytest.approx(40.0)
    assert (surge.lower[0], surge.upper[0]) == pytest.approx((20.0, 72.0))
    assert surge.surge_ratio[0] == pytest.approx(30.0 / surge.expected_orders[0])
    assert breaches(surge, Thresholds())[0].tolist() == [True]


def test_the_festival_uplift_in_the_forecast_is_not_a_surge() -> None:
    # The same 30 order lines are a surge against a normal day, expected on a festival peak.
    observed = ([[400.0]], [[30.0]])
    normal_day = score(inputs([[50.0, 100.0, 180.0]], *observed), Thresholds())
    festival = score(inputs([[200.0, 300.0, 520.0]], *observed), Thresholds())
    assert normal_day.surge[0] > Thresholds().surge > festival.surge[0]


def test_a_sku_that_stops_selling_is_a_drop_once_enough_was_expected() -> None:
    fc = [[50.0, 100.0, 180.0]]
    early = score(inputs(fc, [[0.0]], [[0.0]], share=0.2), Thresholds())
    evening = score(inputs(fc, [[0.0]], [[0.0]], share=1.0, opu=0.3), Thresholds())
    assert early.drop[0] == -np.inf  # 2 lines expected by now: too few to miss
    assert evening.drop[0] > Thresholds().drop and evening.drop_ratio[0] > 10


def test_gates_min_units_and_young_skus() -> None:
    fc = [[0.1, 0.5, 1.0]]
    tiny = score(inputs(fc, [[12.0]], [[6.0]], opu=1.0), Thresholds())
    assert tiny.surge[0] == -np.inf  # 12 units < min_units
    young = score(inputs(fc, [[200.0]], [[30.0]], opu=1.0, history_days=np.array([10])), Thresholds())
    old = score(inputs(fc, [[200.0]], [[30.0]], opu=1.0, history_days=np.array([90])), Thresholds())
    assert young.surge[0] == -np.inf and old.surge[0] > 5


def test_a_busy_shop_lowers_every_skus_score() -> None:
    args = ([[50.0, 100.0, 180.0]], [[400.0]], [[30.0]])
    alone = score(inputs(*args), Thresholds()).surge[0]
    busy = score(inputs(*args, level=np.array([[3.0]])), Thresholds()).surge[0]
    assert busy < alone - 2


def test_window_days_already_reported_are_left_out() -> None:
    th = replace(Thresholds(), window_days=2)
    fc = [[50.0, 100.0, 180.0]]
    # Yesterday surged (already alerted); today is normal so far.
    units, orders = [[500.0, 40.0]], [[40.0, 4.0]]
    with_yesterday = score(inputs(fc, units, orders, share=0.4), th)
    without = score(inputs(fc, units, orders, share=0.4, include_surge=np.array([[False, True]])), th)
    assert with_yesterday.surge[0] > th.surge > without.surge[0]
    assert without.surge[0] == pytest.approx(without.z_today[0]) or without.surge[0] == -np.inf


def test_calm_needs_enough_of_a_later_day_and_for_drops_sales_again() -> None:
    th = Thresholds()
    fc = [[50.0, 100.0, 180.0]] * 3
    s = score(inputs(fc, [[40.0], [40.0], [0.0]], [[4.0], [4.0], [0.0]], share=0.4, opu=0.1), th)
    surge_calm, drop_calm = calm(s, th)
    assert surge_calm.tolist() == [False] * 3  # share 0.4 < resolve_share
    s = score(inputs(fc, [[100.0], [300.0], [0.0]], [[10.0], [30.0], [0.0]], share=1.0, opu=0.1), th)
    surge_calm, drop_calm = calm(s, th)
    assert surge_calm.tolist() == [True, False, True]
    assert drop_calm.tolist() == [True, True, False]


def test_a_day_the_shop_does_not_trade_does_not_calm_a_surge() -> None:
    th = Thresholds()
    closed = [[0.0, 0.01, 0.05]]  # the forecast knows the shop is shut: no order line expected
    s = score(inputs(closed, [[0.0]], [[0.0]], share=1.0, opu=0.1), th)
    assert calm(s, th)[0].tolist() == [False]  # no evidence either way: the open alert stays open
    slow = [[5.0, 10.0, 20.0]]  # about one order line expected: a quiet day is normal and calm
    s = score(inputs(slow, [[0.0]], [[0.0]], share=1.0, opu=0.1), th)
    assert calm(s, th)[0].tolist() == [True]
    s = score(inputs(closed, [[2.0]], [[1.0]], share=1.0, opu=0.5), th)  # one line sold: evidence
    assert calm(s, th)[0].tolist() == [True]


def test_severity_grows_with_the_ratio() -> None:
    th = Thresholds()
    assert [severity(r, th) for r in (1.5, 3.0, 10.0)] == ["info", "warning", "critical"]


def test_orders_per_unit_is_shrunk_for_empty_history() -> None:
    opu = orders_per_unit(np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([[0.0, 0.0], [50.0, 50.0]]))
    assert opu[0] == pytest.approx(0.1) and opu[1] == pytest.approx(10.1 / 101)


def test_thresholds_round_trip_beside_the_model(tmp_path: Path) -> None:
    th = replace(Thresholds(), surge=3.21, drop=4.5, calibration={"sku_days": 10})
    path = save_thresholds(tmp_path, "lstm-x", th)
    assert path == thresholds_path(tmp_path, "lstm-x") and path.name == "lstm-x.alerts.json"
    assert load_thresholds(tmp_path, "lstm-x") == th
    assert load_thresholds(tmp_path, "other") is None
    with pytest.raises(ValueError):
        Thresholds.from_dict({"surge": -1.0})


def test_search_threshold_finds_the_smallest_cut_within_budget() -> None:
    values = np.random.default_rng(1).normal(size=10_000) * 2
    t = search_threshold(lambda cut: int((values > cut).sum()), budget=10)
    assert (values > t).sum() <= 10 < (values > t - 0.05).sum()
    assert search_threshold(lambda cut: 0, budget=5) == 2.0


def test_active_festival_of_a_day() -> None:
    uk = BUILTIN["UK"]
    days = np.array([day_index(d) for d in (date(2011, 12, 25), date(2011, 12, 1), date(2011, 11, 25),
                                            date(2011, 7, 6))])
    names = active_festivals(days, uk)
    assert names[0] == "christmas" and names[1] == "christmas (lead-in)" and names[2] == "black_friday"
    assert names[3] is None
    assert active_festivals(days[:1], ()) == [None]


def test_a_slow_surge_is_caught_by_the_multi_day_window_against_the_forecast_made_before_it() -> None:
    # ~11.5 lines a day expected (0.1 lines/unit); three days at 2x each.
    th = replace(Thresholds(), window_days=3)
    fc = [[50.0, 100.0, 180.0]]
    units, orders = [[200.0, 200.0, 200.0]], [[23.0, 23.0, 23.0]]
    s = score(inputs(fc, units, orders, opu=0.1), th)
    assert s.z_today[0] < th.surge < s.surge[0]  # no single day breaches, the three days do
    # Judged against forecasts that already learned the 2x, there is no surge.
    learned = np.repeat(np.asarray(fc)[:, None, None, :] * 2.0, 3, axis=1)
    learned = np.repeat(learned, 3, axis=2)
    assert score(inputs(fc, units, orders, opu=0.1, windows=learned), th).surge[0] < th.surge


def test_a_silent_sku_is_a_drop_over_days_against_the_forecast_made_before_the_silence() -> None:
    th = replace(Thresholds(), window_days=3, min_expected_orders=6.0)
    fc = [[20.0, 40.0, 80.0]]  # ~4.6 lines a day at 0.1 lines/unit
    silent = score(inputs(fc, [[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], opu=0.1), th)
    one_day = score(inputs(fc, [[40.0, 40.0, 0.0]], [[4.0, 5.0, 0.0]], opu=0.1), th)
    assert one_day.drop[0] < th.drop < silent.drop[0]
    # Right after a surge alert the forecast is inflated: no drop is scored while it settles.
    settle = replace(th, settle_days=14)
    after = inputs(fc, [[0.0, 0.0, 0.0]], [[0.0, 0.0, 0.0]], opu=0.1, since_surge=np.array([3]))
    assert score(after, settle).drop[0] == -np.inf and score(after, th).drop[0] > th.drop


def test_trailing_hour_windows_are_scored_each_against_their_own_hours() -> None:
    th = replace(Thresholds(), recent_hours=6, min_units=20.0)
    fc = [[50.0, 100.0, 180.0]]
    # A burst in the last hour (12 lines where ~0.6 were expected); the 6 h window dilutes it.
    recent = {"recent_units": np.array([[120.0, 125.0, 130.0, 140.0]]),
              "recent_orders": np.array([[12.0, 12.5, 13.0, 14.0]]),
              "recent_share": np.array([[0.05, 0.1, 0.15, 0.6]])}
    s = score(inputs(fc, [[140.0]], [[14.0]], share=0.8, opu=0.1, **recent), th)  # type: ignore[arg-type]
    only_6h = {k: v[:, -1:] for k, v in recent.items()}
    s6 = score(inputs(fc, [[140.0]], [[14.0]], share=0.8, opu=0.1, **only_6h), th)  # type: ignore[arg-type]
    assert s.surge[0] > s6.surge[0] + 2 and s.surge[0] > th.surge
    assert scan_hours(th.recent_hours) == (1, 2, 3, 6)


def test_the_margin_forgives_forecast_error_but_not_silence() -> None:
    plain, margin = Thresholds(), replace(Thresholds(), margin=1.3)
    fc = [[50.0, 100.0, 180.0]] * 2  # ~11.5 lines a day at 0.1 lines/unit
    s_plain = score(inputs(fc, [[150.0], [0.0]], [[15.0], [0.0]], opu=0.1), plain)
    s_margin = score(inputs(fc, [[150.0], [0.0]], [[15.0], [0.0]], opu=0.1), margin)
    assert s_margin.surge[0] < s_plain.surge[0]  # 1.3x: within the margin
    assert s_plain.drop[1] > s_margin.drop[1] > plain.drop  # a silent day still counts
    with pytest.raises(ValueError):
        Thresholds.from_dict({"margin": 0.5})


def test_a_sku_silent_for_five_days_is_a_drop_over_the_drop_window_not_over_two_days() -> None:
    # ~3.6 order lines a day expected (0.1 lines/unit): two silent days are within the normal
    # spread at z > 5 with a 1.2x margin, five are not.
    th = replace(Thresholds(), window_days=2, drop=5.0, margin=1.2, min_expected_orders=6.0)
    fc = [[15.0, 30.0, 60.0]]
    silent = ([[0.0] * 5], [[0.0] * 5])
    two_day = score(inputs(fc, *silent, opu=0.1), th)
    five_day = score(inputs(fc, *silent, opu=0.1), replace(th, drop_window_days=5))
    assert two_day.drop[0] < th.drop < five_day.drop[0]
    assert th.drop_days == 2 and replace(th, drop_window_days=5).span_days == 5
    # The same five silent days scored against forecasts that already learned the silence: the
    # drop window's forecast is the one made before it, so this is what the detector must not do.
    learned = np.repeat(np.asarray(fc)[:, None, None, :] * 0.05, 5, axis=1)
    learned = np.repeat(learned, 5, axis=2)
    assert score(inputs(fc, *silent, opu=0.1, windows=learned), replace(th, drop_window_days=5)).drop[0] < th.drop


def test_surges_keep_their_window_when_the_drop_window_is_longer() -> None:
    th = replace(Thresholds(), window_days=2)
    fc = [[50.0, 100.0, 180.0]]
    # Three surging days, then two normal ones: the surge window (2 days) does not reach back.
    units, orders = [[400.0, 400.0, 400.0, 100.0, 40.0]], [[40.0, 40.0, 40.0, 10.0, 4.0]]
    long = score(inputs(fc, units, orders, share=0.4), replace(th, drop_window_days=5))
    short = score(inputs(fc, [u[-2:] for u in units], [o[-2:] for o in orders], share=0.4), th)
    assert long.surge[0] == pytest.approx(short.surge[0]) and long.surge_ratio[0] == pytest.approx(short.surge_ratio[0])
    assert score(inputs(fc, units, orders, share=0.4), replace(th, window_days=5)).surge[0] > th.surge > long.surge[0]


def test_a_drop_is_judged_against_what_the_sku_sold_before_its_window() -> None:
    th = replace(Thresholds(), window_days=2, drop_window_days=5, drop=5.0, margin=1.2)
    fc = [[15.0, 30.0, 60.0]] * 2
    silent = ([[0.0] * 5] * 2, [[0.0] * 5] * 2)
    # Row 0 sold ~4 lines a day before going silent; row 1 had sold 0.2 a day (a product at its
    # end the forecast still expects): the same silence is a drop only for row 0.
    s = score(inputs(fc, *silent, opu=0.1, past_orders=np.array([4.0, 0.2])), th)
    assert s.drop[0] > th.drop > s.drop[1]
    assert score(inputs(fc, *silent, opu=0.1), th).drop[1] > th.drop  # the forecast alone


def test_a_multi_day_surge_is_judged_against_what_the_sku_already_sold() -> None:
    th = replace(Thresholds(), window_days=3, recent_hours=0, surge=4.0, margin=1.2, min_units=0)
    fc = [[5.0, 10.0, 20.0]] * 2
    # Two days of 12 lines each, and one early this morning, against a forecast of ~1.3 lines a
    # day. Row 0 had sold ~1 line a day before (a surge); row 1 had been selling 12 a day for weeks
    # (its forecast lags: no new surge).
    busy = ([[120.0, 120.0, 10.0]] * 2, [[12.0, 12.0, 1.0]] * 2)
    s = score(inputs(fc, *busy, opu=0.1, share=0.1, past_orders=np.array([1.0, 12.0])), th)
    assert s.surge[0] > th.surge > s.surge[1]
    assert score(inputs(fc, *busy, opu=0.1, share=0.1), th).surge[1] > th.surge  # the forecast alone


def test_thresholds_without_the_drop_window_load_as_calibrated(tmp_path: Path) -> None:
    # A file written before the drop window existed: its drop cut was calibrated on window_days.
    old = json.loads(replace(Thresholds(), window_days=2, drop=5.047).to_json())
    del old["drop_window_days"], old["past_days"]
    (tmp_path / "v1.alerts.json").write_text(json.dumps(old))
    th = load_thresholds(tmp_path, "v1")
    assert th is not None and th.drop == 5.047
    assert (th.drop_window_days, th.drop_days, th.span_days, th.past_days) == (0, 2, 2, 0)
    with pytest.raises(ValueError):
        Thresholds.from_dict({**old, "drop_window_days": -1})
