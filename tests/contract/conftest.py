"""Real Redis backends for the window-store contract suite: a standalone server on 16390 and a
3-node Redis Cluster on 17001-17003, both started (and stopped) by this test session."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio as aioredis

from streams.redis_scripts import pack_with_hiredis
from streams.redis_window_store import RedisWindowStore
from worker.services.cluster import cluster_down, cluster_up

STANDALONE_PORT = 16390
CLUSTER_PORTS = (17001, 17002, 17003)
BACKENDS = ("standalone", "cluster")
T = TypeVar("T")

# Defaults of the store under test: one hour of grace, a day of dedup, short retention so
# trimming is reachable in a test.
STORE_DEFAULTS: dict[str, Any] = {
    "grace_s": 3600.0,
    "dedup_horizon_s": 86_400.0,
    "day_retention": 10,
    "hour_retention": 2,
    "idle_ttl_s": 3600.0,
}


@pytest.fixture(scope="session")
def standalone_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    data_dir = tmp_path_factory.mktemp("redis-standalone")
    probe = redis.Redis(port=STANDALONE_PORT, socket_connect_timeout=0.2)
    try:
        probe.ping()
        pytest.fail(f"port {STANDALONE_PORT} is already taken; the contract suite needs it free")
    except redis.ConnectionError:
        pass
    proc = subprocess.Popen(
        [server, "--port", str(STANDALONE_PORT), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            if probe.ping():
                break
        except redis.ConnectionError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"redis-server on {STANDALONE_PORT} did not start")
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{STANDALONE_PORT}/0"
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    run_dir = tmp_path_factory.mktemp("redis-cluster")
    nodes = cluster_up(run_dir, CLUSTER_PORTS)
    yield nodes
    cluster_down(run_dir, CLUSTER_PORTS, wipe=True)


@dataclass
class Backend:
    """How to reach one backend from inside a test's own event loop."""

    name: str
    address: str

    def client(self) -> aioredis.Redis | aioredis.RedisCluster:
        """A client that packs commands the way the worker's does (hiredis)."""
        host, port = self.address.split(":")
        if self.name == "cluster":
            return pack_with_hiredis(aioredis.RedisCluster(host=host, port=int(port)))
        return pack_with_hiredis(aioredis.Redis(host=host, port=int(port)))

    def run(self, body: Callable[[RedisWindowStore, Any], Awaitable[T]], **store_kwargs: Any) -> T:
        """Run ``body(store, client)`` in a fresh event loop against a store with a unique prefix."""

        async def main() -> T:
            client = self.client()
            prefix = f"ct{uuid.uuid4().hex[:12]}"
            store = RedisWindowStore(client, prefix, **{**STORE_DEFAULTS, **store_kwargs})
            try:
                return await body(store, client)
            finally:
                await client.aclose()

        return asyncio.run(main())


def _backend(name: str, request: pytest.FixtureRequest) -> Backend:
    if name == "cluster":
        nodes: list[str] = request.getfixturevalue("redis_cluster")
        return Backend("cluster", nodes[0])
    url: str = request.getfixturevalue("standalone_redis")
    return Backend("standalone", url.split("//")[1].split("/")[0])


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return _backend(request.param, request)


@pytest.fixture
def both_backends(request: pytest.FixtureRequest) -> list[Backend]:
    return [_backend(name, request) for name in BACKENDS]
