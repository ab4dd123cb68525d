"""Create skucast's topics explicitly (the broker's auto-create is off, and must stay off)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.topics import TopicSpec, topic_specs
from worker.connections import confluent_config
from worker.settings import Settings


class KafkaUnavailable(RuntimeError):
    """The broker did not answer; the message names the address and how to start it."""


def unreachable(settings: Settings, detail: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"Kafka at {settings.kafka_bootstrap} is not reachable ({detail}). "
        "Start it with: skucast services up"
    )


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(confluent_config(settings, **{"socket.timeout.ms": 5000}))


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Create any missing topic with its partitions and configs; returns the names created."""
    admin = admin_client(settings)
    try:
        existing = admin.list_topics(timeout=timeout_s).topics
    except KafkaException as exc:
        raise unreachable(settings, str(exc.args[0])) from None
    wanted: list[TopicSpec] = topic_specs(
        settings.topic_prefix, settings.orders_partitions, settings.output_partitions
    )
    missing = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=1, config=t.configs)
        for t in wanted
        if t.name not in existing
    ]
    if not missing:
        return []
    futures = admin.create_topics(missing, operation_timeout=timeout_s, request_timeout=timeout_s)
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
            created.append(name)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # a concurrent worker won the race
                raise
    return created
