"""The forecast memo reuses an output only for identical inputs, and stays within its bound."""

from __future__ import annotations

import numpy as np

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
    for sku in ("A", "B", "C"):
        found = memo.lookup("v", [(sku, 0)], rows(1), np.array([1]), np.array([1]))
        memo.store(found, np.zeros((1, 1, 1), np.float32), [None])
    assert len(memo) == 2
    assert memo.lookup("v", [("A", 0)], rows(1), np.array([1]), np.array([1])).missing.tolist() == [0]
    off = ForecastMemo(max_rows=0)
    found = off.lookup("v", [("A", 0)], rows(1), np.array([1]), np.array([1]))
    off.store(found, np.zeros((1, 1, 1), np.float32), [None])
    assert len(off) == 0 and off.lookup("v", [("A", 0)], rows(1), np.array([1]), np.array([1])).missing.size == 1
