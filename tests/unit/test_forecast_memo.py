"""The forecast memo reuses an output only for identical inputs, and stays within its bound."""

from __future__ import annotations

from typing import Any

import numpy as np

from worker import forecast_memo
from worker.forecast_memo import ForecastMemo


def rows(*values: float) -> np.ndarray:
    return np.array([[v, v, v] for v in values], dtype=np.float32)


def test_any_change_of_input_misses_and_outputs_come_back_in_batch_order() -> None:
    memo = ForecastMemo(max_rows=10)
    keys = [("A", 0), ("B", 0)]
    first = memo.lookup("v1", keys, rows(1, 2), np.array([10, 10]), np.array([5, 5]))
    out = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    memo.store(first, out, [None, "cold_start: 5 days of history"])
    same = memo.lookup("v1", keys, rows(1, 2), np.array([10, 10]), np.array([5, 5]))
    values, notes = memo.assemble(same, np.empty((0, 2, 3)), [], (2, 3))
    assert same.missing.size == 0 and np.array_equal(values, out) and notes[1].startswith("cold_start")
    for changed in (
        memo.lookup("v1", keys, rows(1, 2.5), np.array([10, 10]), np.array([5, 5])),  # a late event
        memo.lookup("v1", keys, rows(1, 2), np.array([10, 11]), np.array([5, 5])),  # a new day
        memo.lookup("v1", keys, rows(1, 2), np.array([10, 10]), np.array([5, 6])),  # more history
        memo.lookup("v2", keys, rows(1, 2), np.array([10, 10]), np.array([5, 5])),  # another model
    ):
        assert changed.missing.tolist() in ([1], [0, 1])
    mixed = memo.lookup("v1", [("B", 0), ("C", 0)], rows(2, 3), np.array([10, 10]), np.array([5, 5]))
    assert mixed.missing.tolist() == [1]
    fresh = np.full((1, 2, 3), 7.0, dtype=np.float32)
    values, notes = memo.assemble(mixed, fresh, [None], (2, 3))
    assert np.array_equal(values[0], out[1]) and np.array_equal(values[1], fresh[0])


def test_bounded_least_recently_used_first_out_and_zero_is_off() -> None:
    memo = ForecastMemo(max_rows=2)
    for k, sku in enumerate(("A", "B", "C")):
        found = memo.lookup("v", [(sku, 0)], rows(k), np.array([1]), np.array([1]))
        memo.store(found, np.zeros((1, 1, 1), np.float32), [None])
    assert len(memo) == 2
    assert memo.lookup("v", [("A", 0)], rows(9), np.array([1]), np.array([1])).missing.tolist() == [0]
    off = ForecastMemo(max_rows=0)
    found = off.lookup("v", [("A", 0)], rows(1), np.array([1]), np.array([1]))
    off.store(found, np.zeros((1, 1, 1), np.float32), [None])
    assert len(off) == 0 and off.lookup("v", [("A", 0)], rows(1), np.array([1]), np.array([1])).missing.size == 1


def test_identical_inputs_are_computed_once_within_a_batch_and_across_skus() -> None:
    memo = ForecastMemo(max_rows=10)
    keys = [("A", 0), ("B", 0), ("C", 0), ("D", 0)]
    # B and D have A's inputs (say three SKUs that sold nothing in the window): one row to compute.
    first = memo.lookup("v1", keys, rows(0, 0, 1, 0), np.array([10, 10, 10, 10]), np.array([0, 0, 4, 0]))
    assert first.missing.tolist() == [0, 2] and first.copies == [(1, 0), (3, 0)]
    computed = np.stack([np.full((2, 3), 1.0), np.full((2, 3), 2.0)]).astype(np.float32)
    values, notes = memo.assemble(first, computed, ["cold_start: 0 days of history", None], (2, 3))
    assert [v[0, 0] for v in values] == [1.0, 1.0, 2.0, 1.0] and notes[3] == notes[0] == "cold_start: 0 days of history"
    memo.store(first, computed, ["cold_start: 0 days of history", None])
    # A SKU never seen before with the same inputs needs no model; another model version does.
    later = memo.lookup("v1", [("E", 0)], rows(0), np.array([10]), np.array([0]))
    assert later.missing.size == 0 and memo.assemble(later, np.empty((0, 2, 3)), [], (2, 3))[0][0, 0, 0] == 1.0
    assert memo.lookup("v2", [("E", 0)], rows(0), np.array([10]), np.array([0])).missing.tolist() == [0]
    # Any difference in the inputs (the day, the history clip) is a different row.
    assert memo.lookup("v1", [("E", 0)], rows(0), np.array([11]), np.array([0])).missing.tolist() == [0]
    assert memo.lookup("v1", [("E", 0)], rows(0), np.array([10]), np.array([1])).missing.tolist() == [0]


def test_shared_inputs_in_use_outlive_others(monkeypatch: Any) -> None:
    monkeypatch.setattr(forecast_memo, "SHARED_ROWS", 2)
    memo = ForecastMemo(max_rows=100)

    def compute(sku: str, value: float) -> bool:
        """Look up (and store if missing) one row; True when the model had to compute it."""
        found = memo.lookup("v", [(sku, 0)], rows(value), np.array([1]), np.array([0]))
        memo.store(found, np.zeros((found.missing.size, 1, 1), np.float32), [None] * found.missing.size)
        return bool(found.missing.size)

    assert compute("A", 0) and compute("B", 1)
    assert not compute("C", 0)  # A's inputs, in use again: the most recent
    assert compute("D", 2)  # the table is full: B's inputs, the least recent, leave
    assert not compute("E", 0) and compute("F", 1)
