"""Session fixtures: the real services (through `skucast services up`) and a really trained model."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import NAMES_USED, ROOT, SKUCAST, remove_test_data


@pytest.fixture(scope="session")
def services() -> Iterator[None]:
    """Kafka (KRaft) and Redis on their default ports, started the way a user starts them."""
    status = subprocess.run([SKUCAST, "services", "status"], capture_output=True, text=True, cwd=ROOT)
    was_running = status.stdout.count("running") >= 2 and "stopped" not in status.stdout
    up = subprocess.run([SKUCAST, "services", "up"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert up.returncode == 0, f"skucast services up failed:\n{up.stdout}\n{up.stderr}"
    yield
    remove_test_data(NAMES_USED)
    if not was_running:
        subprocess.run([SKUCAST, "services", "down"], capture_output=True, cwd=ROOT, timeout=120)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model trained for real on the bundled Online Retail orders via `skucast train`."""
    out = tmp_path_factory.mktemp("models")
    run = subprocess.run(
        [SKUCAST, "train", "--top-n", "60", "--epochs", "3", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )
    assert run.returncode == 0, f"skucast train failed:\n{run.stdout}\n{run.stderr}"
    assert (out / "LATEST").exists()
    return out
