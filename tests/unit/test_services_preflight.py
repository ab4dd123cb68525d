"""The services' refusals and messages, without starting a broker: every error says what failed,
where, and what to do. Uses real sockets and a real (unreachable) Redis client, no mocks."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_py
from pydantic import SecretStr
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.services import ServiceError, kafka, kafka_unreachable_message, redis, redis_client_error_message
from worker.services.__main__ import format_table
from worker.services.process import ServiceStatus, live_pid
from worker.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something other than skucast listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def test_kafka_refuses_a_port_taken_by_someone_else(listener: int, tmp_path: Path) -> None:
    settings = Settings(kafka_port=listener, kafka_controller_port=_free_port(), state_dir=tmp_path)
    with pytest.raises(ServiceError) as err:
        kafka.up(settings)
    assert f"127.0.0.1:{listener}" in str(err.value)
    assert "already listens" in str(err.value) and "SKUCAST_KAFKA_PORT" in str(err.value)


def test_kafka_refuses_a_taken_controller_port(listener: int, tmp_path: Path) -> None:
    settings = Settings(kafka_port=_free_port(), kafka_controller_port=listener, state_dir=tmp_path)
    with pytest.raises(ServiceError, match="SKUCAST_KAFKA_CONTROLLER_PORT"):
        kafka.up(settings)


def test_redis_refuses_a_port_taken_by_someone_else(listener: int, tmp_path: Path) -> None:
    settings = Settings(redis_port=listener, state_dir=tmp_path, redis_host="127.0.0.1")
    with pytest.raises(ServiceError) as err:
        redis.up(settings)
    assert f"127.0.0.1:{listener}" in str(err.value) and "SKUCAST_REDIS_PORT" in str(err.value)


def test_remote_hosts_are_not_managed(tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="SKUCAST_KAFKA_HOST"):
        kafka.up(Settings(kafka_host="kafka", state_dir=tmp_path))
    with pytest.raises(ServiceError, match="SKUCAST_REDIS_HOST"):
        redis.up(Settings(redis_host="redis", state_dir=tmp_path))


def test_missing_java_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    settings = Settings(kafka_port=_free_port(), kafka_controller_port=_free_port(), state_dir=tmp_path)
    with pytest.raises(ServiceError, match=r"`java` is not on PATH.*openjdk-17"):
        kafka.up(settings)


def test_missing_mvn_is_named_when_the_jars_are_not_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    java = Path(os.path.realpath("/usr/bin/java")) if Path("/usr/bin/java").exists() else None
    if java is None:
        pytest.skip("no java to put on the reduced PATH")
    (bin_dir / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(bin_dir))
    settings = Settings(kafka_port=_free_port(), kafka_controller_port=_free_port(), state_dir=tmp_path / "state")
    with pytest.raises(ServiceError, match=r"`mvn` is not on PATH.*apt-get install -y maven"):
        kafka.up(settings)


def test_stale_pid_file_is_removed(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a kafka broker: PID reuse
    assert live_pid(pid_file, ("kafka.Kafka /nowhere/server.properties",)) is None
    assert not pid_file.exists()
    pid_file.write_text("not a pid")
    assert live_pid(pid_file, ("x",)) is None and not pid_file.exists()


def test_unreachable_redis_message_names_address_and_fix() -> None:
    port = _free_port()  # nothing listens here
    settings = Settings(redis_host="127.0.0.1", redis_port=port)
    client = redis_py.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis_py.ConnectionError) as err:
        client.ping()
    assert redis_client_error_message(settings, err.value) == (
        f"Redis at 127.0.0.1:{port} is not reachable (Connection refused). Start it with: skucast services up"
    )


def test_kafka_unreachable_message() -> None:
    settings = Settings(kafka_host="127.0.0.1", kafka_port=9092)
    assert kafka_unreachable_message(settings, "Connection refused") == (
        "Kafka at 127.0.0.1:9092 is not reachable (Connection refused). Start it with: skucast services up"
    )


def test_generated_configs_hold_the_settings(tmp_path: Path) -> None:
    settings = Settings(kafka_port=29092, kafka_controller_port=29093, redis_port=26379,
                        redis_password=SecretStr('p"w'), state_dir=tmp_path)  # fmt: skip
    props = kafka.server_properties(settings, tmp_path / "data")
    assert "listeners=PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093" in props
    assert "controller.quorum.bootstrap.servers=127.0.0.1:29093" in props
    assert "auto.create.topics.enable=false" in props
    conf = redis.redis_conf(settings, tmp_path)
    assert "port 26379" in conf and "appendonly yes" in conf and "bind 127.0.0.1" in conf
    assert "auto-aof-rewrite-min-size 1gb" in conf
    assert 'requirepass "p\\"w"' in conf


def test_status_table_has_one_row_per_service() -> None:
    table = format_table([ServiceStatus("kafka", "127.0.0.1:9092", True, 42, "listening"),
                          ServiceStatus("redis", "127.0.0.1:6379", False, None, "stopped")])  # fmt: skip
    lines = table.splitlines()
    assert len(lines) == 3
    assert lines[1].split()[:4] == ["kafka", "127.0.0.1:9092", "running", "42"]
    assert lines[2].split()[:4] == ["redis", "127.0.0.1:6379", "stopped", "-"]
