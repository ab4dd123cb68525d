"""A local 3-node Redis Cluster (primaries only) for contract tests and benchmarks.

Each node runs ``redis-server --cluster-enabled yes`` on 127.0.0.1, detached, from its own
directory ``<run_dir>/redis-cluster-<port>`` (nodes.conf, log, PID file). No persistence: the
cluster holds test data only. ``cluster_up`` is idempotent: running nodes are reused, a formed
cluster is left alone, a fresh set of nodes is joined with ``redis-cli --cluster create``.

>>> nodes = cluster_up(Path("/tmp/skucast-run"))            # doctest: +SKIP
>>> nodes
['127.0.0.1:17001', '127.0.0.1:17002', '127.0.0.1:17003']
>>> cluster_down(Path("/tmp/skucast-run"), wipe=True)      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
DEFAULT_PORTS = (17001, 17002, 17003)
READY_BUDGET_S = 30.0


class ClusterError(Exception):
    """The local cluster could not be started, formed or stopped (message says why)."""


def node_dir(run_dir: Path, port: int) -> Path:
    return run_dir / f"redis-cluster-{port}"


def _pid_file(run_dir: Path, port: int) -> Path:
    return node_dir(run_dir, port) / "redis.pid"


def _our_pid(run_dir: Path, port: int) -> int | None:
    """PID of our node on ``port`` if alive (the command line must name that port: PIDs recycle)."""
    try:
        pid = int(_pid_file(run_dir, port).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return pid if "redis-server" in cmdline and f":{port}" in cmdline else None


def _client(port: int) -> redis_py.Redis:
    # No client-side retries: the callers poll, and a refused connection must answer at once.
    return redis_py.Redis(host=HOST, port=port, socket_timeout=2, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


def _ping(port: int) -> bool:
    client = _client(port)
    try:
        return bool(client.ping())
    except (redis_py.ConnectionError, redis_py.TimeoutError, redis_py.BusyLoadingError):
        return False
    finally:
        client.close()


def _cluster_info(port: int) -> dict[str, str]:
    client = _client(port)
    try:
        raw = client.execute_command("CLUSTER", "INFO")
    finally:
        client.close()
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {k.strip(): v.strip() for k, v in pairs}


def _cluster_ok(port: int) -> bool:
    return _cluster_info(port).get("cluster_state") == "ok"


def _start_node(run_dir: Path, port: int) -> None:
    server = shutil.which("redis-server")
    if server is None:
        raise ClusterError("redis-server is not on PATH; install it (apt-get install redis-server)")
    ndir = node_dir(run_dir, port)
    ndir.mkdir(parents=True, exist_ok=True)
    args = [
        server,
        "--port", str(port),
        "--bind", HOST,
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(ndir / "nodes.conf"),
        "--cluster-node-timeout", "5000",
        "--dir", str(ndir),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "yes",
        "--pidfile", str(_pid_file(run_dir, port)),
        "--logfile", str(ndir / "redis.log"),
    ]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise ClusterError(f"redis-server on {HOST}:{port} failed to start: {done.stderr.strip()}")


def _wait(what: str, check: Callable[[], bool], budget_s: float = READY_BUDGET_S) -> None:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise ClusterError(
        f"timed out after {budget_s:.0f} s waiting for {what}; if the nodes disagree, "
        "reset them with cluster_down(run_dir, ports, wipe=True)"
    )


def cluster_up(run_dir: Path, ports: Sequence[int] = DEFAULT_PORTS) -> list[str]:
    """Start (or reuse) the nodes, form the cluster if needed, wait for ``cluster_state:ok``."""
    run_dir = Path(run_dir)
    for port in ports:
        if _our_pid(run_dir, port) is None:
            if _ping(port):
                raise ClusterError(f"{HOST}:{port} is taken by a Redis not started from {run_dir}")
            _start_node(run_dir, port)
    for port in ports:
        _wait(f"{HOST}:{port} to answer PING", partial(_ping, port))
    nodes = [f"{HOST}:{port}" for port in ports]
    info = _cluster_info(ports[0])
    if info.get("cluster_state") != "ok" and info.get("cluster_slots_assigned") == "0":
        cli = shutil.which("redis-cli")
        if cli is None:
            raise ClusterError("redis-cli is not on PATH; install it (apt-get install redis-tools)")
        create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
        done = subprocess.run(create, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise ClusterError(f"redis-cli --cluster create failed:\n{done.stdout}\n{done.stderr}")
    # Every node must agree before a client can route to it.
    for port in ports:
        _wait(f"cluster_state:ok on {HOST}:{port}", partial(_cluster_ok, port))
    return nodes


def cluster_down(run_dir: Path, ports: Sequence[int] = DEFAULT_PORTS, *, wipe: bool = False) -> None:
    """Stop our nodes by PID (SIGTERM, then SIGKILL after 10 s); ``wipe`` removes their dirs."""
    run_dir = Path(run_dir)
    for port in ports:
        pid = _our_pid(run_dir, port)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while _our_pid(run_dir, port) is not None and time.monotonic() < deadline:
                time.sleep(0.05)
            if _our_pid(run_dir, port) is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if wipe:
            shutil.rmtree(node_dir(run_dir, port), ignore_errors=True)
