"""A live, readable view of an output topic (forecasts, alerts, dlq, late)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError

from streams.topics import ALERTS, FORECASTS, ORDERS_DLQ, ORDERS_LATE
from worker.connections import confluent_config
from worker.settings import Settings

TOPICS = {"forecasts": FORECASTS, "alerts": ALERTS, "dlq": ORDERS_DLQ, "late": ORDERS_LATE}


def format_forecast(doc: dict[str, Any]) -> str:
    qs = doc["quantiles"]
    lo, hi = 0, len(qs) - 1
    mid = min(range(len(qs)), key=lambda i: abs(qs[i] - 0.5))
    days = doc["values"][:7]
    p50 = " ".join(f"{d[mid]:.0f}" for d in days)
    band = f"day1 p{qs[lo] * 100:.0f}–p{qs[hi] * 100:.0f} {days[0][lo]:.0f}–{days[0][hi]:.0f}"
    tag = f"  [{doc['fallback']}]" if doc.get("fallback") else ""
    return f"{doc['sku']:<10} from {doc['start_date']}  p50 next 7d: {p50}  ({band})  {doc['model_version']}{tag}"


def format_alert(doc: dict[str, Any]) -> str:
    fest = f" during {doc['festival']}" if doc.get("festival") else ""
    return (
        f"{doc['state'].upper():<8} {doc['severity']:<8} {doc['kind']} {doc['sku']} on {doc['day']}{fest}: "
        f"observed {doc['observed']:.0f} vs expected {doc['expected']:.0f} "
        f"[{doc['lower']:.0f}–{doc['upper']:.0f}], score {doc['score']:.1f}  id={doc['alert_id']}"
    )


def format_dead(doc: dict[str, Any]) -> str:
    return f"{doc['reason']:<22} {doc['source_topic']}[{doc['partition']}]@{doc['offset']}: {doc['detail']}"


def format_late(doc: dict[str, Any]) -> str:
    o = doc["order"]
    return f"LATE {o['sku']} {o['event_time']} ({doc['reason']}), watermark {doc['watermark']}"


FORMATTERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "forecasts": format_forecast,
    "alerts": format_alert,
    "dlq": format_dead,
    "late": format_late,
}


def tail(
    settings: Settings,
    which: str,
    emit: Callable[[str], None],
    *,
    from_beginning: bool = False,
    max_messages: int | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Print messages of one output topic until interrupted, ``max_messages`` or idle timeout."""
    consumer = Consumer(
        confluent_config(
            settings,
            **{
                "group.id": f"skucast-tail-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest" if from_beginning else "latest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([settings.topic(TOPICS[which])])
    fmt = FORMATTERS[which]
    seen = 0
    last = time.monotonic()
    try:
        while max_messages is None or seen < max_messages:
            msg = consumer.poll(0.5)
            if msg is None:
                if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                    break
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"Kafka at {settings.kafka_bootstrap}: {err.str()}")
            last = time.monotonic()
            seen += 1
            emit(fmt(orjson.loads(msg.value() or b"{}")))
    finally:
        consumer.close()
    return seen
