"""Process plumbing shared by the Kafka and Redis services: PID files, ports, detached starts.

A service is "ours" when its PID file names a live process whose command line mentions the
service's own config file: PIDs are reused by the OS, so a bare ``kill(pid, 0)`` is not enough.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_UNREADABLE = "\0unreadable"  # the process exists but its command line cannot be read


class ServiceError(Exception):
    """A service could not be started, stopped or reached.

    The message is meant for a human: what failed, at which address, and what to do next.
    """


@dataclass
class ServiceStatus:
    """What ``skucast services up|down|status`` reports for one service."""

    name: str
    address: str
    running: bool
    pid: int | None
    detail: str


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _reap_if_child(pid: int, wait_s: float = 0.0) -> None:
    # A service started by this very process becomes a zombie when it exits; reap it so it
    # does not look alive. Not our child (the usual case, started by an earlier CLI run): no-op.
    deadline = time.monotonic() + wait_s
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.02)


def _state(stat_file: Path) -> str:
    stat = stat_file.read_text()
    return stat[stat.rindex(")") + 2]  # the first field after the parenthesised command name


def _threads_alive(proc: Path) -> bool:
    # A JVM's main thread (the PID) can exit and show "Z" while its other threads still run the
    # shutdown hooks: the process is dead only when every task is.
    for task in proc.glob("task/*/stat"):
        with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
            if _state(task) not in "ZX":
                return True
    return False


def _cmdline(pid: int) -> str | None:
    """The process's command line, or None when it does not exist (or is a zombie)."""
    proc = Path(f"/proc/{pid}")
    try:
        if _state(proc / "stat") in "ZX":
            # its cmdline is gone with the leader; the remaining threads are still exiting
            return _UNREADABLE if _threads_alive(proc) else None
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None
    except PermissionError:
        return _UNREADABLE


def pid_running(pid: int, markers: Sequence[str]) -> bool:
    """True when ``pid`` is alive and its command line contains one of ``markers``."""
    _reap_if_child(pid)
    cmd = _cmdline(pid)
    if cmd is None:
        if Path("/proc/self").exists():
            return False
        try:  # no /proc (macOS): fall back to a signal-0 probe, without the marker check
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return cmd == _UNREADABLE or any(m in cmd for m in markers)


def live_pid(pid_file: Path, markers: Sequence[str]) -> int | None:
    """The PID recorded in ``pid_file`` when that process is still ours; removes a stale file."""
    try:
        pid = int(pid_file.read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        pid_file.unlink(missing_ok=True)
        return None
    if pid_running(pid, markers):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def spawn_detached(
    argv: Sequence[str], cwd: Path, log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (it outlives the CLI), stdout+stderr appended to a log."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )


def stop_pid(pid: int, markers: Sequence[str], grace_s: float = 30.0) -> str:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. Returns how it ended, for the status line."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "already gone"
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not pid_running(pid, markers):
            _reap_if_child(pid, wait_s=2.0)  # its last threads may still be exiting
            return "stopped (SIGTERM)"
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "stopped (SIGTERM)"
    for _ in range(50):
        if not pid_running(pid, markers):
            break
        time.sleep(0.1)
    _reap_if_child(pid, wait_s=2.0)
    return f"killed (SIGKILL after {grace_s:.0f} s)"


def tail(path: Path, lines: int = 25, start: int = 0) -> str:
    """The last ``lines`` lines of a log file from byte ``start`` on, indented, for errors."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return "    (no log written)"
    last = text.splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in last) if last else "    (log is empty)"


def require_local(service: str, host: str, env_name: str) -> None:
    """``services up`` manages processes on this machine only; refuse a remote host clearly."""
    if host not in LOCAL_HOSTS:
        raise ServiceError(
            f"{service} is configured at host {host!r} ({env_name}), which is not this machine; "
            "`skucast services` only manages a local "
            f"{service} on 127.0.0.1. Unset {env_name} or start {service} there yourself."
        )


def write_private(path: Path, text: str) -> None:
    """Write a file readable by the owner only (configs may hold a password)."""
    path.write_text(text)
    path.chmod(0o600)
