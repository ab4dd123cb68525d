"""docker-compose.yml and the Dockerfile agree with Settings (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "SKUCAST_"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    svc = compose["services"][name]
    assert isinstance(svc, dict)
    return svc


def _env(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):  # the "KEY=value" list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _published_ports(svc: dict[str, Any]) -> dict[int, int]:
    """container port -> host port, for the "[ip:]host:container" short syntax."""
    out = {}
    for spec in svc.get("ports", []):
        parts = str(spec).split(":")
        assert len(parts) in (2, 3), f"unexpected port spec {spec!r}"
        out[int(parts[-1])] = int(parts[-2])
    return out


def test_services_are_the_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"kafka", "redis", "worker", "replay"}


def test_published_ports_are_the_settings_defaults(compose: dict[str, Any]) -> None:
    kafka_ports = _published_ports(_service(compose, "kafka"))
    redis_ports = _published_ports(_service(compose, "redis"))
    worker_ports = _published_ports(_service(compose, "worker"))
    assert Settings.model_fields["kafka_port"].default in kafka_ports.values()
    assert Settings.model_fields["redis_port"].default in redis_ports.values()
    web_port = Settings.model_fields["web_port"].default
    assert worker_ports == {web_port: web_port}
    # the host listener must be advertised at the address host clients are told to use
    advertised = _env(_service(compose, "kafka"))["KAFKA_ADVERTISED_LISTENERS"]
    host_port = Settings.model_fields["kafka_port"].default
    assert f"127.0.0.1:{host_port}" in advertised


@pytest.mark.parametrize("name", ["worker", "replay"])
def test_skucast_env_is_valid_settings(compose: dict[str, Any], name: str) -> None:
    env = _env(_service(compose, name))
    overrides: dict[str, Any] = {k[len(PREFIX) :].lower(): v for k, v in env.items() if k.startswith(PREFIX)}
    assert overrides, f"{name} sets no SKUCAST_* variable"
    unknown = set(overrides) - set(Settings.model_fields)
    assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"
    settings = Settings(**overrides)
    assert settings.kafka_host == "kafka"
    assert settings.redis_host == "redis"


def test_containers_reach_kafka_on_its_internal_listener(compose: dict[str, Any]) -> None:
    kafka_env = _env(_service(compose, "kafka"))
    overrides: dict[str, Any] = {k[len(PREFIX) :].lower(): v for k, v in _env(_service(compose, "worker")).items()}
    worker = Settings(**overrides)
    assert f"kafka:{worker.kafka_port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert f":{worker.kafka_port}" in kafka_env["KAFKA_LISTENERS"]


def test_kafka_is_single_node_kraft_without_auto_create(compose: dict[str, Any]) -> None:
    env = _env(_service(compose, "kafka"))
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1"


def test_redis_appends_only(compose: dict[str, Any]) -> None:
    command = _service(compose, "redis")["command"]
    words = command if isinstance(command, list) else str(command).split()
    assert "--appendonly" in words
    assert words[words.index("--appendonly") + 1] == "yes"
    assert words[words.index("--save") + 1] == ""  # AOF only, as `skucast services up` runs it
    assert words[words.index("--auto-aof-rewrite-min-size") + 1] == "1gb"  # the same rewrite threshold
    assert any(v.endswith(":/data") for v in _service(compose, "redis").get("volumes", []))


def test_worker_trains_if_missing_then_runs(compose: dict[str, Any]) -> None:
    worker, replay = _service(compose, "worker"), _service(compose, "replay")
    command = " ".join(worker["command"]) if isinstance(worker["command"], list) else worker["command"]
    assert "skucast train --if-missing" in command
    assert command.index("train") < command.index("skucast worker")
    assert worker["build"] in (".", {"context": "."})
    assert "worker" in replay["depends_on"]
    assert {"kafka", "redis"} <= set(worker["depends_on"])


def test_dockerfile_installs_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") or dockerfile.startswith("FROM")
    assert "FROM python:3.11-slim" in dockerfile
    install_lines = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert any(line.rstrip().rstrip("\\").split()[-1] == "." for line in install_lines), install_lines
