"""Forecast coalescing: nothing deferred under light load, at most one forecast per interval under
heavy load, nothing lost (deferred SKUs come back), and commits held below deferred orders."""

from __future__ import annotations

import itertools

import pytest

from worker.coalesce import ForecastCoalescer, first_positions


def test_light_load_forecasts_everything_and_releases_what_was_deferred() -> None:
    c = ForecastCoalescer(min_interval_s=5.0, heavy_batch_events=100)
    assert c.select({"A": (0, 1)}, batch_events=100, now=0.0) == ["A"]
    assert c.select({"A": (0, 2), "B": (1, 7)}, batch_events=100, now=1.0) == ["B"]  # heavy: A deferred
    assert c.hold() == {0: 2}
    assert c.select({"C": (2, 3)}, batch_events=5, now=1.5) == ["A", "C"]  # light: all released, at once
    assert c.hold() == {}


def test_heavy_load_forecasts_a_sku_at_most_once_per_interval() -> None:
    c = ForecastCoalescer(min_interval_s=1.0, heavy_batch_events=10)
    times = []
    for step in range(40):  # A is in every batch, a batch every 0.1 s
        now = step * 0.1
        if "A" in c.select({"A": (0, step)}, batch_events=50, now=now):
            times.append(now)
    assert len(times) == 4
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times))


def test_deferred_skus_are_forecast_by_a_later_batch_or_by_due() -> None:
    c = ForecastCoalescer(min_interval_s=1.0, heavy_batch_events=10)
    c.select({"A": (0, 0), "B": (0, 1)}, batch_events=50, now=0.0)
    assert c.select({"A": (0, 5), "B": (0, 6)}, batch_events=50, now=0.2) == []
    assert c.hold() == {0: 5}
    assert c.due(now=0.5) == []
    assert c.select({"C": (1, 9)}, batch_events=50, now=1.1) == ["A", "B", "C"]  # due, though absent
    c.select({"A": (0, 20)}, batch_events=50, now=1.2)
    assert c.hold() == {0: 20}
    assert c.due(now=2.2) == ["A"] and c.hold() == {0: 20}  # held until it went out
    c.forecasted(["A"], now=2.2)
    assert c.hold() == {} and c.due(now=2.3) == []


def test_hold_is_the_lowest_deferred_offset_per_partition_and_follows_rebalances() -> None:
    c = ForecastCoalescer(min_interval_s=10.0, heavy_batch_events=1)
    c.select({"A": (0, 4), "B": (0, 9), "C": (3, 2)}, batch_events=1, now=0.0)
    c.select({"B": (0, 12), "A": (0, 15), "C": (3, 30)}, batch_events=1, now=1.0)
    c.select({"A": (0, 40)}, batch_events=1, now=2.0)  # still deferred: keeps its first position
    assert c.hold() == {0: 12, 3: 30}
    c.forget_partitions([3])
    assert c.hold() == {0: 12}


def test_zero_interval_turns_coalescing_off() -> None:
    c = ForecastCoalescer(min_interval_s=0.0, heavy_batch_events=1)
    for now in (0.0, 0.001, 0.002):
        assert c.select({"A": (0, 1)}, batch_events=10_000, now=now) == ["A"]


def test_first_positions_takes_each_skus_lowest_offset() -> None:
    assert first_positions(["A", "B", "A"], [0, 1, 0], [7, 3, 5]) == {"A": (0, 5), "B": (1, 3)}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        ForecastCoalescer(min_interval_s=-1, heavy_batch_events=1)
