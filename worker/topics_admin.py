"""Create skucast's topics explicitly (the broker's auto-create is off, and must stay off)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.topics import TopicSpec, topic_specs
from worker.connections import confluent_config
from worker.settings import Settings


class KafkaUnavailable(RuntimeError):
    """The broker did not answer; the message names the address and how to start it."""


class GroupInUse(RuntimeError):
    """The consumer group still has members (workers running); nothing was deleted."""


def unreachable(settings: Settings, detail: str) -> KafkaUnavailable:
    return KafkaUnavailable(
        f"Kafka at {settings.kafka_bootstrap} is not reachable ({detail}). "
        "Start it with: skucast services up"
    )


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(confluent_config(settings, **{"socket.timeout.ms": 5000}))


def _existing_and_wanted(admin: AdminClient, settings: Settings, timeout_s: float) -> tuple[set[str], list[TopicSpec]]:
    """The broker's topic names, and this deployment's topic specs (its prefix)."""
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except KafkaException as exc:
        raise unreachable(settings, str(exc.args[0])) from None
    return existing, topic_specs(settings.topic_prefix, settings.orders_partitions, settings.output_partitions)


def ensure_topics(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """Create any missing topic with its partitions and configs; returns the names created."""
    admin = admin_client(settings)
    existing, wanted = _existing_and_wanted(admin, settings, timeout_s)
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


def namespace_topics(settings: Settings, timeout_s: float = 15.0) -> list[str]:
    """This deployment's topics (its topic prefix) that exist on the broker."""
    existing, wanted = _existing_and_wanted(admin_client(settings), settings, timeout_s)
    return sorted(t.name for t in wanted if t.name in existing)


def delete_namespace(settings: Settings, timeout_s: float = 30.0) -> tuple[list[str], bool]:
    """Delete this deployment's topics and its consumer group (``app_id``); returns the topics
    deleted and whether the group existed. A group with live members is refused: stop the workers."""
    admin = admin_client(settings)
    try:
        groups = admin.delete_consumer_groups([settings.app_id], request_timeout=timeout_s)
        group_existed = True
        try:
            groups[settings.app_id].result()
        except KafkaException as exc:
            code = exc.args[0].name() if exc.args and hasattr(exc.args[0], "name") else str(exc)
            if code == "GROUP_ID_NOT_FOUND":
                group_existed = False
            elif code == "NON_EMPTY_GROUP":
                raise GroupInUse(
                    f"consumer group {settings.app_id!r} still has members: stop its workers first"
                ) from None
            else:
                raise
        topics = namespace_topics(settings, timeout_s)
        if topics:
            for fut in admin.delete_topics(topics, operation_timeout=timeout_s, request_timeout=timeout_s).values():
                fut.result()
    except KafkaException as exc:
        raise unreachable(settings, str(exc.args[0])) from None
    return topics, group_existed
