"""Every topic skucast reads or writes: names, partition counts and configs, in one place.

Topics are created explicitly by the app (never by broker auto-create); ``forecasts`` is
compacted and keyed by SKU so a new subscriber sees the latest forecast of every SKU.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


ORDERS = "orders"
ORDERS_DLQ = "orders.dlq"
ORDERS_LATE = "orders.late"
FORECASTS = "forecasts"
ALERTS = "alerts"

WEEK_MS = str(7 * 24 * 3600 * 1000)


def topic_specs(prefix: str, orders_partitions: int, output_partitions: int) -> list[TopicSpec]:
    """The topics of one skucast deployment, names prefixed by ``prefix``."""
    return [
        TopicSpec(prefix + ORDERS, orders_partitions, {"retention.ms": WEEK_MS}),
        TopicSpec(prefix + ORDERS_DLQ, 1, {"retention.ms": WEEK_MS}),
        TopicSpec(prefix + ORDERS_LATE, 1, {"retention.ms": WEEK_MS}),
        TopicSpec(
            prefix + FORECASTS,
            output_partitions,
            {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1", "segment.ms": "3600000"},
        ),
        TopicSpec(prefix + ALERTS, output_partitions, {"retention.ms": WEEK_MS}),
    ]
