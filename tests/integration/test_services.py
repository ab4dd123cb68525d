"""`worker.services` against the real thing: a Kafka 4.1.1 broker and redis-server, started and
stopped by the project on NON-default ports (so the main stack on 9092/6379 is never touched)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker import services
from worker.services import kafka, redis
from worker.services.process import port_open
from worker.settings import Settings

pytestmark = [pytest.mark.integration]

KAFKA_PORT, CONTROLLER_PORT, REDIS_PORT, REDIS_AUTH_PORT = 19092, 19093, 16379, 16380
PASSWORD = 'right pass "quoted"'  # spaces and quotes: the generated redis.conf must quote it
NO_RETRY = Retry(NoBackoff(), 0)  # redis-py retries auth failures ~10 times by default


def _settings(**overrides: object) -> Settings:
    base: dict[str, object] = {
        "kafka_host": "127.0.0.1", "kafka_port": KAFKA_PORT, "kafka_controller_port": CONTROLLER_PORT,
        "redis_host": "127.0.0.1", "redis_port": REDIS_PORT, "redis_password": None,
    }  # fmt: skip
    return Settings(**{**base, **overrides})  # type: ignore[arg-type]


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    settings = _settings()
    services.up(settings)
    yield settings
    services.down(settings)


def test_up_reports_both_services_running(stack: Settings) -> None:
    rows = services.status(stack)
    assert [r.name for r in rows] == ["kafka", "redis"]
    assert [r.address for r in rows] == [f"127.0.0.1:{KAFKA_PORT}", f"127.0.0.1:{REDIS_PORT}"]
    assert all(r.running for r in rows), rows
    kafka_pid, redis_pid = (r.pid for r in rows)
    assert kafka_pid is not None and redis_pid is not None
    assert "kafka.Kafka" in _cmdline(kafka_pid)
    assert str(kafka.run_dir(stack) / "server.properties") in _cmdline(kafka_pid)
    assert "redis-server" in _cmdline(redis_pid)
    assert (kafka.run_dir(stack) / "kafka.pid").read_text().strip() == str(kafka_pid)


def test_up_again_reuses_the_running_services(stack: Settings) -> None:
    before = [r.pid for r in services.status(stack)]
    started = time.monotonic()
    rows = services.up(stack)
    assert [r.pid for r in rows] == before
    assert all("reused" in r.detail for r in rows), rows
    assert time.monotonic() - started < 10


def test_kafka_creates_topic_and_round_trips_messages(stack: Settings) -> None:
    bootstrap = f"127.0.0.1:{KAFKA_PORT}"
    topic = f"svc-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
    sent = [(f"sku-{i}".encode(), f"order-{i}".encode()) for i in range(5)]
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in sent:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    got: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 60
    try:
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append((msg.key(), msg.value()))  # type: ignore[arg-type]
    finally:
        consumer.close()
    assert sorted(got) == sorted(sent)
    admin.delete_topics([topic])[topic].result(30)


def test_kafka_broker_does_not_auto_create_topics(stack: Settings) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{KAFKA_PORT}"})
    resource = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["auto.create.topics.enable"].value == "false"
    assert configs["group.initial.rebalance.delay.ms"].value == "0"


def test_redis_answers_ping_with_aof_on(stack: Settings) -> None:
    client = redis_py.Redis(host="127.0.0.1", port=REDIS_PORT)
    try:
        assert client.ping() is True
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("save") == {"save": ""}  # AOF only: no snapshot forks besides
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
    finally:
        client.close()


def test_kafka_warm_restart_keeps_topics(stack: Settings) -> None:
    bootstrap = f"127.0.0.1:{KAFKA_PORT}"
    topic = f"svc-keep-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept: a collected client fails its futures
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    old_pid = kafka.status(stack).pid
    assert not kafka.down(stack).running
    restarted = kafka.up(stack)
    assert restarted.running and restarted.pid != old_pid
    assert "warm start" in restarted.detail
    assert topic in AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics


def test_down_stops_both_and_closes_ports(stack: Settings) -> None:
    pids = [r.pid for r in services.status(stack)]
    rows = services.down(stack)
    assert [r.name for r in rows] == ["kafka", "redis"]
    assert not any(r.running for r in rows), rows
    assert all(r.detail.startswith("stopped") for r in services.status(stack))
    assert all(r.pid is None for r in services.status(stack))
    for port in (KAFKA_PORT, CONTROLLER_PORT, REDIS_PORT):
        assert not port_open("127.0.0.1", port), port
    for pid in pids:
        assert pid is not None and not Path(f"/proc/{pid}").exists()
    assert not (kafka.run_dir(stack) / "kafka.pid").exists()
    assert not (redis.run_dir(stack) / "redis.pid").exists()
    # stopping what is stopped is not an error
    assert not any(r.running for r in services.down(stack))


def test_password_protected_redis_rejects_wrong_password_clearly() -> None:
    settings = _settings(redis_port=REDIS_AUTH_PORT, redis_password=SecretStr(PASSWORD))
    try:
        assert redis.up(settings).running
        assert (redis.run_dir(settings) / "redis.conf").stat().st_mode & 0o077 == 0

        wrong = redis_py.Redis(host="127.0.0.1", port=REDIS_AUTH_PORT, password="wrong", retry=NO_RETRY)
        with pytest.raises(redis_py.AuthenticationError) as rejected:
            wrong.ping()
        message = redis.redis_client_error_message(settings, rejected.value)
        assert message.startswith(f"Redis at 127.0.0.1:{REDIS_AUTH_PORT} rejected the password (WRONGPASS")
        assert message.endswith("Check SKUCAST_REDIS_PASSWORD.")

        anonymous = redis_py.Redis(host="127.0.0.1", port=REDIS_AUTH_PORT, retry=NO_RETRY)
        with pytest.raises(redis_py.AuthenticationError) as noauth:
            anonymous.ping()
        assert "requires a password (NOAUTH" in redis.redis_client_error_message(settings, noauth.value)

        # `up` with the wrong password finds our server running and says why it cannot use it
        with pytest.raises(services.ServiceError, match="rejected the password"):
            redis.up(_settings(redis_port=REDIS_AUTH_PORT, redis_password=SecretStr("wrong")))

        # ...and a password-less server is not silently taken for a protected one
        open_settings = _settings(redis_port=REDIS_AUTH_PORT)
        assert redis.down(settings).running is False
        assert redis.up(open_settings).running
        with pytest.raises(services.ServiceError, match="running without a password"):
            redis.up(settings)
        redis.down(open_settings)
        assert redis.up(settings).running

        right = redis_py.Redis(host="127.0.0.1", port=REDIS_AUTH_PORT, password=PASSWORD)
        assert right.ping() is True
        right.set("svc-test:survives", "yes")
        # AOF: the key survives a stop (SIGTERM) and a start
        assert not redis.down(settings).running
        assert redis.up(settings).running
        assert right.get("svc-test:survives") == b"yes"
        right.delete("svc-test:survives")
    finally:
        redis.down(settings)
    assert not port_open("127.0.0.1", REDIS_AUTH_PORT)
