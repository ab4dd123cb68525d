"""Forecast coalescing: under heavy load a SKU is forecast at most once per ``min_interval_s``.

Each batch already forecasts a SKU once, however many of its orders the batch holds. When the
worker is behind (a batch of at least ``heavy_batch_events`` events), hot SKUs turn up in every
batch; forecasting them each time costs model time and output bandwidth for forecasts that are
superseded a moment later. :class:`ForecastCoalescer` then *defers* a SKU forecast less than
``min_interval_s`` ago: it is forecast by the first later batch once its interval has passed, or
by :meth:`ForecastCoalescer.due` from an idle tick. Under light load nothing is deferred (and
whatever was deferred is released), so latency is untouched when the worker keeps up.

A deferred forecast must survive a crash: :meth:`ForecastCoalescer.hold` gives, per partition,
the lowest offset of an order whose SKU's forecast is still deferred; the consumer commits no
further than that, so after a crash those orders are redelivered (fenced in Redis, and their
SKUs forecast again). Time is an argument (monotonic seconds), as everywhere.

Example::

    >>> c = ForecastCoalescer(min_interval_s=1.0, heavy_batch_events=100)
    >>> c.select({"A": (0, 10), "B": (1, 5)}, batch_events=500, now=0.0)
    ['A', 'B']
    >>> c.select({"A": (0, 11)}, batch_events=500, now=0.5)   # heavy, A forecast 0.5 s ago
    []
    >>> c.hold(), c.due(now=1.0)
    ({0: 11}, ['A'])
    >>> c.forecasted(['A'], now=1.0); c.hold()
    {}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Position = tuple[int, int]
"""(partition, offset) of a SKU's first order in a batch."""


class ForecastCoalescer:
    def __init__(self, min_interval_s: float, heavy_batch_events: int) -> None:
        if min_interval_s < 0 or heavy_batch_events < 1:
            raise ValueError("min_interval_s must be >= 0 and heavy_batch_events >= 1")
        self.min_interval_s = min_interval_s
        self.heavy_batch_events = heavy_batch_events
        self._last: dict[str, float] = {}  # SKU -> when its last forecast was selected
        self._deferred: dict[str, Position] = {}  # SKU -> its first deferred order

    def select(self, first_positions: Mapping[str, Position], batch_events: int, now: float) -> list[str]:
        """The SKUs to forecast now (sorted), from a batch's SKUs and their first order positions."""
        interval = self.min_interval_s
        if interval <= 0 or batch_events < self.heavy_batch_events:
            chosen = set(first_positions) | set(self._deferred)
            self._deferred.clear()
        else:
            chosen = {s for s in self._deferred if now - self._last.get(s, -interval) >= interval}
            for sku, pos in first_positions.items():
                if now - self._last.get(sku, -interval) >= interval:
                    chosen.add(sku)
                else:
                    self._deferred.setdefault(sku, pos)
            for sku in chosen:
                self._deferred.pop(sku, None)
        self._mark(chosen, now)
        return sorted(chosen)

    def due(self, now: float) -> list[str]:
        """Deferred SKUs whose interval has passed (for an idle tick: the stream may have stopped).

        They stay deferred, and their offsets held, until :meth:`forecasted` says they went out."""
        return sorted(s for s in self._deferred if now - self._last.get(s, -self.min_interval_s) >= self.min_interval_s)

    def forecasted(self, skus: Iterable[str], now: float) -> None:
        """``skus`` (from :meth:`due`) were forecast and delivered: release them."""
        skus = list(skus)
        for sku in skus:
            self._deferred.pop(sku, None)
        self._mark(skus, now)

    def hold(self) -> dict[int, int]:
        """Per partition, the lowest offset whose SKU's forecast is deferred: commit below it only."""
        out: dict[int, int] = {}
        for partition, offset in self._deferred.values():
            if offset < out.get(partition, offset + 1):
                out[partition] = offset
        return out

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Drop deferred SKUs of partitions given away: their new owner re-reads from our hold."""
        gone = set(partitions)
        self._deferred = {s: p for s, p in self._deferred.items() if p[0] not in gone}

    def _mark(self, skus: Iterable[str], now: float) -> None:
        last = self._last
        for sku in skus:
            last[sku] = now
        if len(last) > 4 * max(len(self._deferred), 1) + 100_000:
            # Entries older than the interval behave like absent ones: drop them.
            self._last = {s: t for s, t in last.items() if now - t < self.min_interval_s or s in self._deferred}


def first_positions(skus: Iterable[str], partitions: Iterable[int], offsets: Iterable[int]) -> dict[str, Position]:
    """Each SKU's first (lowest-offset) order position in a batch."""
    out: dict[str, Position] = {}
    for sku, partition, offset in zip(skus, partitions, offsets, strict=True):
        seen = out.get(sku)
        if seen is None or offset < seen[1]:
            out[sku] = (partition, offset)
    return out
