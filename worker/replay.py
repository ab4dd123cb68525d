"""Replay real order lines to ``orders`` in event-time order, paced by shop time.

``speed`` is shop seconds per wall second (3600 = one hour of shop time per second; 0 = as fast
as the producer goes). Keys are SKUs, so each SKU lives on one partition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
import pandas as pd
from confluent_kafka import Producer

from model.data import ORDER_LINE_COLUMNS
from worker.connections import confluent_config
from worker.settings import Settings
from worker.topics_admin import unreachable

# The order-line columns the data loader produces, plus the optional channel of the wire contract.
WIRE_FIELDS = (*ORDER_LINE_COLUMNS, "channel")


@dataclass(frozen=True)
class ReplayWindow:
    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None


def select(lines: pd.DataFrame, window: ReplayWindow) -> pd.DataFrame:
    """Order lines inside [start, end), first ``limit`` of them, in event-time order."""
    out = lines.sort_values("event_time", kind="stable")
    if window.start is not None:
        out = out[out["event_time"] >= pd.Timestamp(window.start)]
    if window.end is not None:
        out = out[out["event_time"] < pd.Timestamp(window.end)]
    if window.limit is not None:
        out = out.head(window.limit)
    return out


def encode_lines(lines: pd.DataFrame) -> Iterator[tuple[bytes, bytes, float]]:
    """(key, JSON value, event epoch seconds) per line; absent optional fields are omitted."""
    cols = [c for c in WIRE_FIELDS if c in lines.columns]
    for rec in lines[cols].to_dict("records"):
        doc = {k: v for k, v in rec.items() if v is not None and not (isinstance(v, float) and v != v)}
        ts: pd.Timestamp = doc["event_time"]
        doc["event_time"] = ts.isoformat()
        if "line" in doc:
            doc["line"] = int(doc["line"])
        doc["quantity"] = int(doc["quantity"])
        yield str(doc["sku"]).encode(), orjson.dumps(doc), ts.timestamp()


def producer(settings: Settings) -> Producer:
    return Producer(
        confluent_config(
            settings,
            **{"linger.ms": 20, "enable.idempotence": True, "compression.type": "lz4", "message.timeout.ms": 30000},
        )
    )


def replay(
    settings: Settings,
    messages: Iterator[tuple[bytes, bytes, float]],
    speed: float,
    on_progress: Callable[[int], None] | None = None,
    topic: str | None = None,
) -> int:
    """Produce every message, pacing by event time; returns how many were delivered."""
    prod = producer(settings)
    target = topic or settings.topic("orders")
    errors: list[str] = []
    delivered = 0

    def on_delivery(err: object, _msg: object) -> None:
        nonlocal delivered
        if err is not None:
            errors.append(str(err))
        else:
            delivered += 1

    wall0 = time.monotonic()
    shop0: float | None = None
    sent = 0
    for key, value, ts in messages:
        if speed > 0:
            shop0 = ts if shop0 is None else shop0
            ahead = (ts - shop0) / speed - (time.monotonic() - wall0)
            if ahead > 0.005:
                prod.flush(ahead)
                remaining = (ts - shop0) / speed - (time.monotonic() - wall0)
                if remaining > 0:
                    time.sleep(remaining)
        while True:
            try:
                prod.produce(target, value=value, key=key, on_delivery=on_delivery)
                break
            except BufferError:
                prod.poll(0.05)
        sent += 1
        if sent % 1000 == 0:
            prod.poll(0)
            if on_progress:
                on_progress(sent)
    remaining = prod.flush(30)
    if remaining or errors:
        detail = errors[0] if errors else f"{remaining} messages undelivered"
        raise unreachable(settings, detail)
    if on_progress:
        on_progress(sent)
    return delivered
