"""Service faults mid-stream, on a private Kafka + Redis (own ports) so restarting them disturbs
no other test: Redis restart and Kafka broker restart — nothing lost, nothing counted twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    WorkerProcess,
    ground_truth,
    produce,
    real_order_lines,
    unique,
    wait_for_metric,
    wait_until_equal,
    worker_env,
)
from worker import services
from worker.replay import encode_lines
from worker.services import kafka, redis
from worker.settings import Settings

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PORTS = {"SKUCAST_KAFKA_PORT": "19292", "SKUCAST_KAFKA_CONTROLLER_PORT": "19293", "SKUCAST_REDIS_PORT": "16479"}
BOOTSTRAP = f"127.0.0.1:{PORTS['SKUCAST_KAFKA_PORT']}"


@pytest.fixture(scope="module")
def private_services() -> Iterator[Settings]:
    settings = Settings(kafka_port=19292, kafka_controller_port=19293, redis_port=16479)
    services.up(settings)
    yield settings
    services.down(settings)


def _start(name: str, model: Path, log: Path) -> WorkerProcess:
    return WorkerProcess(worker_env(name, model, SKUCAST_BATCH_MAX_EVENTS="300", **PORTS), log).start()


def test_redis_restart_mid_stream(private_services: Settings, trained_model: Path, tmp_path: Path) -> None:
    name = unique("redisfault")
    lines = real_order_lines("2011-10-01").head(12_000)
    messages = [(k, v) for k, v, _ in encode_lines(lines)]
    worker = _start(name, trained_model, tmp_path / "w.log")
    try:
        produce(f"{name}.orders", messages[:6000], bootstrap=BOOTSTRAP)
        wait_for_metric(worker, "skucast_events_applied_total", 2000, timeout_s=120)
        redis.down(private_services)
        produce(f"{name}.orders", messages[6000:], bootstrap=BOOTSTRAP)
        time.sleep(4)  # the worker retries its batch with backoff while Redis is gone
        redis.up(private_services)
        truth = ground_truth(lines)
        assert wait_until_equal(truth, name, redis_port=16479) == truth
        assert worker.alive(), worker.log()
        assert "Redis at 127.0.0.1:16479 unavailable" in worker.log()
    finally:
        worker.stop()


def test_kafka_broker_restart_mid_stream(private_services: Settings, trained_model: Path, tmp_path: Path) -> None:
    name = unique("kafkafault")
    lines = real_order_lines("2011-10-01").head(16_000)
    messages = [(k, v) for k, v, _ in encode_lines(lines)]
    worker = _start(name, trained_model, tmp_path / "w.log")
    try:
        produce(f"{name}.orders", messages[:8000], bootstrap=BOOTSTRAP)
        wait_for_metric(worker, "skucast_events_applied_total", 2000, timeout_s=120)
        kafka.down(private_services)
        time.sleep(3)
        kafka.up(private_services)
        produce(f"{name}.orders", messages[8000:], bootstrap=BOOTSTRAP)
        truth = ground_truth(lines)
        assert wait_until_equal(truth, name, redis_port=16479, timeout_s=240) == truth
        assert worker.alive(), worker.log()
    finally:
        worker.stop()
