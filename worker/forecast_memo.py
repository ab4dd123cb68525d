"""Model outputs reused while a row's inputs are unchanged: most of a day's batches need no model.

A published forecast reads history up to *yesterday* (see :mod:`worker.pipeline`), so every batch
of a day that touches a SKU would otherwise recompute the very same numbers. The memo keeps, per
row key (SKU and row kind), the last output with everything the model saw: the model version and
the exact bytes of the row's end day, its history-days clip and its history row. Any change — a
new day, a late event that rewrites a past bucket, a hot-reloaded model — misses and is
recomputed; the output is bit-identical to a fresh call either way. (The inputs are compared
whole rather than by a digest: a batch's rows are cut from one buffer in C, where hashing each row
cost a Python call per row, for ~0.2 KB more a row.)

Rows with the same inputs are computed once: within a batch, and across SKUs through a small
table keyed by the inputs themselves (a new SKU, or one that sold nothing in the window, has the
all-zero history of every other such SKU on that day). The output is a function of the inputs
and the model alone, so it is the same numbers either way.

Bounded (least recently used first out), so memory stays flat however many SKUs the worker sees.

>>> import numpy as np
>>> memo = ForecastMemo(max_rows=2)
>>> rows, ends, days = np.array([[1, 2, 3], [0, 0, 0]], np.float32), np.array([10, 10]), np.array([3, 0])
>>> hits = memo.lookup("v1", [("A", 0), ("B", 0)], rows, ends, days)
>>> hits.missing.tolist()
[0, 1]
>>> memo.store(hits, np.zeros((2, 1, 1), np.float32), [None, "cold_start"])
>>> memo.lookup("v1", [("A", 0), ("B", 0)], rows, ends, days).missing.tolist()
[]
>>> memo.lookup("v2", [("A", 0)], rows[:1], ends[:1], days[:1]).missing.tolist()  # new model
[0]
>>> memo.lookup("v1", [("C", 0)], rows[1:], ends[1:], days[1:]).missing.tolist()  # B's inputs
[]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Lookup:
    """One batch's rows: outputs of the rows found, and what the model still has to compute."""

    version: str
    """The model version the rows are for."""
    keys: list[Hashable]
    inputs: list[bytes]
    """Per row, everything the model sees for it (end day, history clip, history row)."""
    found: list[int]
    """Row indices whose inputs are unchanged, ascending ..."""
    found_outputs: list[bytes]
    """... their outputs (float32 (H, Q) as bytes) ..."""
    found_notes: list[str | None]
    """... and fallback notes."""
    missing: np.ndarray
    """Row indices the model must compute, ascending (one per distinct input) ..."""
    copies: list[tuple[int, int]]
    """... and (row, row of ``missing`` with the same inputs) for the rows that take its output."""


SHARED_ROWS = 4096
"""Distinct inputs remembered across SKUs (~0.4 KB each)."""


class ForecastMemo:
    def __init__(self, max_rows: int) -> None:
        if max_rows < 0:
            raise ValueError("max_rows must be >= 0 (0 turns the memo off)")
        self._max = max_rows
        # key -> (model version, inputs, output as float32 bytes, fallback note): ~0.6 KB a row
        self._rows: OrderedDict[Hashable, tuple[str, bytes, bytes, str | None]] = OrderedDict()
        # inputs -> (model version, output, fallback note), whichever SKU they came from
        self._shared: OrderedDict[bytes, tuple[str, bytes, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, version: str, keys: Sequence[Hashable], history: np.ndarray, end_day: np.ndarray,
               history_days: np.ndarray) -> Lookup:
        """Split a batch's rows into those already computed with the same inputs and the rest."""
        rows = np.ascontiguousarray(history, dtype=np.float32)
        n = rows.shape[0]
        head = np.empty((n, 2), dtype=np.int64)
        head[:, 0], head[:, 1] = end_day, history_days
        table = np.concatenate([head.view(np.uint8), rows.view(np.uint8).reshape(n, -1)], axis=1)
        width, data = table.shape[1], table.tobytes()
        inputs = [data[i : i + width] for i in range(0, n * width, width)]
        found: list[int] = []
        outputs: list[bytes] = []
        notes: list[str | None] = []
        missing: list[int] = []
        copies: list[tuple[int, int]] = []
        first_of: dict[bytes, int] = {}
        rows_get, to_end = self._rows.get, self._rows.move_to_end
        shared_get, shared_to_end = self._shared.get, self._shared.move_to_end
        for i, key in enumerate(keys):
            given = inputs[i]
            if self._max:
                hit = rows_get(key)
                if hit is not None and hit[1] == given and hit[0] == version:
                    found.append(i)
                    outputs.append(hit[2])
                    notes.append(hit[3])
                    to_end(key)
                    continue
                same = shared_get(given)
                if same is not None and same[0] == version:
                    found.append(i)
                    outputs.append(same[1])
                    notes.append(same[2])
                    shared_to_end(given)  # the all-zero rows stay while other inputs come and go
                    continue
            twin = first_of.get(given)
            if twin is None:
                first_of[given] = i
                missing.append(i)
            else:
                copies.append((i, twin))
        return Lookup(version, list(keys), inputs, found, outputs, notes, np.asarray(missing, dtype=np.int64), copies)

    def store(self, lookup: Lookup, values: np.ndarray, fallbacks: Sequence[str | None]) -> None:
        """Remember the model's outputs for ``lookup.missing`` (in that order)."""
        if not self._max:
            return
        values = np.ascontiguousarray(values, dtype=np.float32)
        position = {i: j for j, i in enumerate(lookup.missing.tolist())}
        outputs = [row.tobytes() for row in values]
        for i, j in position.items():  # a copy has its twin's inputs: one shared entry for both
            self._shared[lookup.inputs[i]] = (lookup.version, outputs[j], fallbacks[j])
        for i, j in [*position.items(), *((row, position[twin]) for row, twin in lookup.copies)]:
            key = lookup.keys[i]
            self._rows[key] = (lookup.version, lookup.inputs[i], outputs[j], fallbacks[j])
            self._rows.move_to_end(key)
        while len(self._rows) > self._max:
            self._rows.popitem(last=False)
        while len(self._shared) > SHARED_ROWS:
            self._shared.popitem(last=False)

    def assemble(self, lookup: Lookup, values: np.ndarray, fallbacks: Sequence[str | None],
                 shape: tuple[int, int]) -> tuple[np.ndarray, list[str | None]]:
        """Every row's output in batch order: memo hits plus the model's ``values`` for the rest."""
        n = len(lookup.keys)
        out = np.empty((n, *shape), dtype=np.float32)
        notes: list[str | None] = [None] * n
        if lookup.found:
            out[lookup.found] = np.frombuffer(b"".join(lookup.found_outputs), dtype=np.float32).reshape(-1, *shape)
            for i, note in zip(lookup.found, lookup.found_notes, strict=True):
                notes[i] = note
        if lookup.missing.size:
            out[lookup.missing] = values
            for j, i in enumerate(lookup.missing.tolist()):
                notes[i] = fallbacks[j]
        for row, twin in lookup.copies:
            out[row] = out[twin]
            notes[row] = notes[twin]
        return out, notes
