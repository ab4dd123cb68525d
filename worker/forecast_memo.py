"""Model outputs reused while a row's inputs are unchanged: most of a day's batches need no model.

A published forecast reads history up to *yesterday* (see :mod:`worker.pipeline`), so every batch
of a day that touches a SKU would otherwise recompute the very same numbers. The memo keeps, per
row key (SKU and row kind), the last output with a fingerprint of everything the model saw: the
model version, the row's end day, its history-days clip and the history row, as one blake2b digest.
Any change — a new day, a late event that rewrites a past bucket, a hot-reloaded model — misses
and is recomputed; the output is bit-identical to a fresh call either way.

Bounded (least recently used first out), so memory stays flat however many SKUs the worker sees.

>>> import numpy as np
>>> memo = ForecastMemo(max_rows=2)
>>> rows, ends, days = np.ones((2, 3), np.float32), np.array([10, 10]), np.array([3, 3])
>>> hits = memo.lookup("v1", [("A", 0), ("B", 0)], rows, ends, days)
>>> hits.missing.tolist()
[0, 1]
>>> memo.store(hits, np.zeros((2, 1, 1), np.float32), [None, "cold_start"])
>>> memo.lookup("v1", [("A", 0), ("B", 0)], rows, ends, days).missing.tolist()
[]
>>> memo.lookup("v2", [("A", 0)], rows[:1], ends[:1], days[:1]).missing.tolist()  # new model
[0]
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Lookup:
    """One batch's rows: outputs of the rows found, and what the model still has to compute."""

    keys: list[Hashable]
    fingerprints: list[bytes]
    found: dict[int, tuple[np.ndarray, str | None]]
    """Row index -> (output (H, Q), fallback note) for the rows whose inputs are unchanged."""
    missing: np.ndarray
    """Row indices the model must compute, ascending."""


class ForecastMemo:
    def __init__(self, max_rows: int) -> None:
        if max_rows < 0:
            raise ValueError("max_rows must be >= 0 (0 turns the memo off)")
        self._max = max_rows
        # key -> (fingerprint, output as float32 bytes, fallback note): ~0.4 KB a row
        self._rows: OrderedDict[Hashable, tuple[bytes, bytes, str | None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(self, version: str, keys: Sequence[Hashable], history: np.ndarray, end_day: np.ndarray,
               history_days: np.ndarray) -> Lookup:
        """Split a batch's rows into those already computed with the same inputs and the rest."""
        rows = np.ascontiguousarray(history, dtype=np.float32)
        # One digest of everything the model sees for the row (int64 end day and clip first).
        head = np.stack([np.asarray(end_day, dtype=np.int64), np.asarray(history_days, dtype=np.int64)], axis=1)
        salt = version.encode()
        prints = [hashlib.blake2b(salt + h.tobytes() + r.tobytes(), digest_size=16).digest()
                  for h, r in zip(head, rows, strict=True)]
        found: dict[int, tuple[np.ndarray, str | None]] = {}
        if self._max:
            for i, (key, fp) in enumerate(zip(keys, prints, strict=True)):
                hit = self._rows.get(key)
                if hit is not None and hit[0] == fp:
                    found[i] = (np.frombuffer(hit[1], dtype=np.float32), hit[2])
                    self._rows.move_to_end(key)
        missing = np.array([i for i in range(len(prints)) if i not in found], dtype=np.int64)
        return Lookup(list(keys), prints, found, missing)

    def store(self, lookup: Lookup, values: np.ndarray, fallbacks: Sequence[str | None]) -> None:
        """Remember the model's outputs for ``lookup.missing`` (in that order)."""
        if not self._max:
            return
        for j, i in enumerate(lookup.missing.tolist()):
            key = lookup.keys[i]
            self._rows[key] = (lookup.fingerprints[i], np.asarray(values[j], dtype=np.float32).tobytes(), fallbacks[j])
            self._rows.move_to_end(key)
        while len(self._rows) > self._max:
            self._rows.popitem(last=False)

    def assemble(self, lookup: Lookup, values: np.ndarray, fallbacks: Sequence[str | None],
                 shape: tuple[int, int]) -> tuple[np.ndarray, list[str | None]]:
        """Every row's output in batch order: memo hits plus the model's ``values`` for the rest."""
        n = len(lookup.keys)
        out = np.empty((n, *shape), dtype=np.float32)
        notes: list[str | None] = [None] * n
        for i, (v, note) in lookup.found.items():
            out[i], notes[i] = v.reshape(shape), note
        if lookup.missing.size:
            out[lookup.missing] = values
            for j, i in enumerate(lookup.missing.tolist()):
                notes[i] = fallbacks[j]
        return out, notes
