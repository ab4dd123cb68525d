"""The CLI as a new user meets it: help everywhere, and common mistakes answered with one clear
line (what is wrong, the address, what to run) and exit code 1 — never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import ROOT, SKUCAST

COMMANDS = [[], ["services"], ["services", "up"], ["services", "down"], ["services", "status"], ["config", "show"],
            ["train"], ["worker"], ["replay"], ["tail"], ["evaluate"], ["train-file"], ["evaluate-alerts"], ["reset"]]


def run(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SKUCAST, *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, **env})


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    if command and command != ["services"]:
        assert "Example" in result.stdout


def assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_bad_config_value_names_the_setting_and_range() -> None:
    assert_clean_error(run("config", "show", SKUCAST_KAFKA_PORT="70000"), "SKUCAST_KAFKA_PORT", "65535")


def test_config_show_masks_secrets() -> None:
    result = run("config", "show", SKUCAST_CUSTOMER_HASH_KEY="hunter2-very-secret")
    assert result.returncode == 0 and "hunter2-very-secret" not in result.stdout
    assert "SKUCAST_CUSTOMER_HASH_KEY" in result.stdout


def test_worker_without_a_model_says_how_to_train_one(tmp_path: Path) -> None:
    assert_clean_error(run("worker", SKUCAST_MODEL_DIR=str(tmp_path)), "skucast train")


def test_worker_refuses_a_model_whose_checksum_does_not_match(trained_model: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "models"
    shutil.copytree(trained_model, tampered)
    version = (tampered / "LATEST").read_text().strip()
    with open(tampered / f"{version}.pt", "ab") as f:
        f.write(b"\0")
    assert_clean_error(run("worker", SKUCAST_MODEL_DIR=str(tampered)), "checksum", "skucast train")


def test_worker_with_redis_down_names_address_and_command(trained_model: Path) -> None:
    result = run("worker", SKUCAST_MODEL_DIR=str(trained_model), SKUCAST_REDIS_PORT="6")
    assert_clean_error(result, "127.0.0.1:6", "skucast services up")


def test_replay_with_kafka_down_names_address_and_command() -> None:
    result = run("replay", "--limit", "1", SKUCAST_KAFKA_PORT="7", timeout=180)
    assert_clean_error(result, "127.0.0.1:7", "skucast services up")


def test_tail_unknown_topic_lists_choices() -> None:
    assert_clean_error(run("tail", "nonsense"), "forecasts", "alerts")


def test_train_with_missing_data_file(tmp_path: Path) -> None:
    assert_clean_error(run("train", "--data", str(tmp_path / "nope.parquet")), "--data")


def test_config_file_is_read_and_env_wins(tmp_path: Path) -> None:
    cfg = tmp_path / "skucast.toml"
    cfg.write_text('kafka_port = 19999\nredis_port = 16999\n')
    result = run("--config", str(cfg), "config", "show", SKUCAST_REDIS_PORT="16000")
    assert result.returncode == 0, result.stderr
    lines = {ln.split()[1]: ln.split()[3] for ln in result.stdout.splitlines() if "SKUCAST_" in ln and "│" in ln}
    assert lines["SKUCAST_KAFKA_PORT"] == "19999" and lines["SKUCAST_REDIS_PORT"] == "16000"


def test_missing_config_file_is_a_clear_error(tmp_path: Path) -> None:
    assert_clean_error(run("--config", str(tmp_path / "nope.toml"), "config", "show"), "does not exist")


def test_reset_deletes_its_namespace_and_nothing_else() -> None:
    import redis
    from confluent_kafka import Consumer, TopicPartition

    from tests.support import BOOTSTRAP, unique
    from worker.settings import Settings
    from worker.topics_admin import ensure_topics, namespace_topics

    name, other = unique("reset"), unique("keep")
    mine = Settings(app_id=name, topic_prefix=f"{name}.", redis_prefix=name)
    theirs = Settings(app_id=other, topic_prefix=f"{other}.", redis_prefix=other)
    ensure_topics(mine)
    ensure_topics(theirs)
    # the namespace's consumer group exists (committed offsets), with no member left
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": name, "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(mine.topic("orders"), 0, 0)], asynchronous=False)
    consumer.close()
    client = redis.Redis(port=6379)
    client.set(f"{name}:{{A}}:m", 1)
    client.set(f"{name}:movers", 1)
    client.set(f"{name}x:{{A}}:m", 1)  # a longer prefix is another namespace
    client.set(f"{other}:{{A}}:m", 1)
    env = {"SKUCAST_APP_ID": name, "SKUCAST_TOPIC_PREFIX": f"{name}.", "SKUCAST_REDIS_PREFIX": name}

    refused = run("reset", **env)  # asks first; no answer is no
    assert refused.returncode == 1 and len(namespace_topics(mine)) == len(namespace_topics(theirs)) > 0

    done = run("reset", "--yes", **env)
    assert done.returncode == 0, done.stderr
    assert "2 Redis keys" in done.stdout and "the consumer group" in done.stdout, done.stdout
    assert namespace_topics(mine) == [] and namespace_topics(theirs) != []
    assert client.exists(f"{name}:{{A}}:m", f"{name}:movers") == 0
    assert client.exists(f"{name}x:{{A}}:m", f"{other}:{{A}}:m") == 2
    again = run("reset", "--yes", **env)  # nothing left: still fine
    assert again.returncode == 0 and "deleted 0 topics, no consumer group and 0 Redis keys" in again.stdout
    client.delete(f"{name}x:{{A}}:m")


def test_reset_refuses_while_a_worker_of_the_group_runs() -> None:
    import time

    from confluent_kafka import Consumer

    from tests.support import BOOTSTRAP, unique
    from worker.settings import Settings
    from worker.topics_admin import ensure_topics, namespace_topics

    name = unique("busy")
    mine = Settings(app_id=name, topic_prefix=f"{name}.", redis_prefix=name)
    ensure_topics(mine)
    assigned: list[object] = []
    member = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": name})
    member.subscribe([mine.topic("orders")], on_assign=lambda c, parts: assigned.append(parts))
    deadline = time.monotonic() + 30
    while not assigned and time.monotonic() < deadline:
        member.poll(0.2)
    try:
        env = {"SKUCAST_APP_ID": name, "SKUCAST_TOPIC_PREFIX": f"{name}.", "SKUCAST_REDIS_PREFIX": name}
        assert_clean_error(run("reset", "--yes", **env), "still has members", "stop its workers")
        assert namespace_topics(mine) != []  # nothing was deleted
    finally:
        member.close()


def test_reset_with_kafka_down_names_address_and_command() -> None:
    assert_clean_error(run("reset", "--yes", SKUCAST_KAFKA_PORT="7", timeout=180), "127.0.0.1:7", "skucast services up")
