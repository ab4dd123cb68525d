"""A single-node Apache Kafka 4.1.1 broker (KRaft, combined broker+controller) on 127.0.0.1.

No Docker and no tarball: the broker's jars are resolved by Maven from ``services/kafka/pom.xml``
into a cache outside the checkout (``<state_dir>/kafka-4.1.1/libs``), and ``java`` runs
``kafka.Kafka`` directly. The run directory ``<state_dir>/run/kafka-<port>`` holds the configs,
the data, ``kafka.out`` and ``kafka.pid``, so brokers on different ports never share state.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from worker.services.process import (
    ServiceError,
    ServiceStatus,
    live_pid,
    port_open,
    require_local,
    spawn_detached,
    stop_pid,
    tail,
)
from worker.settings import Settings

KAFKA_VERSION = "4.1.1"
POM_PATH = Path(__file__).resolve().parents[2] / "services" / "kafka" / "pom.xml"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
READY_BUDGET_S = 90.0
LOOPBACK = "127.0.0.1"
MIN_JAVA = 17
_LOG_ROTATE_BYTES = 20 * 1024 * 1024
_LOG = logging.getLogger(__name__)

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.target = {target}
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.out.ref = STDOUT
"""


def kafka_unreachable_message(settings: Settings, detail: str) -> str:
    """The one sentence every component prints when the broker does not answer."""
    return (
        f"Kafka at {settings.kafka_bootstrap} is not reachable ({detail}). "
        "Start it with: skucast services up"
    )


def address(settings: Settings) -> str:
    return f"{LOOPBACK}:{settings.kafka_port}"


def run_dir(settings: Settings) -> Path:
    return settings.run_dir / f"kafka-{settings.kafka_port}"


def jar_dir(settings: Settings) -> Path:
    return settings.state_dir / f"kafka-{KAFKA_VERSION}" / "libs"


def _pid_marker(rdir: Path) -> tuple[str]:
    # Our broker's command line names its own server.properties: that identifies it.
    return (str(rdir / "server.properties"),)


# --- preflight: java and the jars -------------------------------------------------------------


def _check_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise ServiceError(
            f"Cannot start Kafka at {LOOPBACK}: `java` is not on PATH. Kafka {KAFKA_VERSION} needs "
            f"Java {MIN_JAVA}+; install it with: apt-get install -y openjdk-17-jre-headless"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if found:
        major = int(found.group(2)) if found.group(1) == "1" else int(found.group(1))
        if major < MIN_JAVA:
            raise ServiceError(
                f"Cannot start Kafka: {java} is Java {major}, Kafka {KAFKA_VERSION} brokers need "
                f"Java {MIN_JAVA}+ (apt-get install -y openjdk-17-jre-headless)."
            )
    return java


def ensure_jars(settings: Settings) -> Path:
    """Resolve the broker's runtime closure with Maven once; later calls only check a marker."""
    libs = jar_dir(settings)
    marker = libs.parent / ".complete"
    pom_hash = hashlib.sha256(POM_PATH.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text().strip() == pom_hash and any(libs.glob("*.jar")):
        return libs
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Two `services up` at once (parallel test sessions) must not resolve into one dir together.
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.read_text().strip() == pom_hash and any(libs.glob("*.jar")):
            return libs
        _resolve_with_maven(libs)
        marker.write_text(pom_hash + "\n")
    return libs


def _resolve_with_maven(libs: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(
            f"Cannot fetch the Kafka {KAFKA_VERSION} jars into {libs}: `mvn` is not on PATH. "
            "Install Maven (apt-get install -y maven); it resolves them once, from Maven Central."
        )
    if libs.exists():
        shutil.rmtree(libs)  # a different pom: do not mix two closures on one classpath
    libs.mkdir(parents=True)
    cmd = [mvn, "-B", "-q", "-f", str(POM_PATH), DEPENDENCY_PLUGIN,
           "-DincludeScope=runtime", f"-DoutputDirectory={libs}"]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"Maven did not finish in 900 s: {' '.join(cmd)}") from exc
    if done.returncode != 0 or not any(libs.glob("*.jar")):
        out = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise ServiceError(
            f"Maven could not resolve Kafka {KAFKA_VERSION} (exit {done.returncode}); is Maven "
            f"Central reachable?\n  command: {' '.join(cmd)}\n{out}"
        )


# --- configuration ----------------------------------------------------------------------------


def server_properties(settings: Settings, data_dir: Path) -> str:
    port, ctl = settings.kafka_port, settings.kafka_controller_port
    return f"""\
# Generated by skucast (worker/services/kafka.py); rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers={LOOPBACK}:{ctl}
listeners=PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{ctl}
advertised.listeners=PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{ctl}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# skucast creates its topics explicitly, with their partitions and configs.
auto.create.topics.enable=false
"""


def _write_configs(settings: Settings, rdir: Path) -> None:
    rdir.mkdir(parents=True, exist_ok=True)
    (rdir / "server.properties").write_text(server_properties(settings, rdir / "data"))
    (rdir / "log4j2.properties").write_text(_LOG4J2.format(target="SYSTEM_OUT", level="info"))
    # Tools log WARN to stderr so their stdout stays clean.
    (rdir / "tools-log4j2.properties").write_text(_LOG4J2.format(target="SYSTEM_ERR", level="warn"))


def _cluster_id() -> str:
    # Kafka's Uuid.randomUuid(): 22 chars of URL-safe base64; never starting with "-", which
    # the StorageTool's argument parser would take for an option.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _format_storage(java: str, libs: Path, rdir: Path) -> None:
    """Format the KRaft log dir on first start (idempotent thanks to --ignore-formatted)."""
    cmd = [java, "-Xmx256m", f"-Dlog4j2.configurationFile={rdir / 'tools-log4j2.properties'}",
           "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format", "--standalone",
           "-t", _cluster_id(), "-c", str(rdir / "server.properties"), "--ignore-formatted"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=rdir)
    if done.returncode != 0:
        out = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise ServiceError(
            f"Formatting Kafka's storage in {rdir / 'data'} failed (exit {done.returncode}):\n{out}"
        )


def _broker_argv(java: str, libs: Path, rdir: Path, heap_mb: int) -> list[str]:
    return [java, f"-Xms{heap_mb}m", f"-Xmx{heap_mb}m",
            # GC flags from kafka-run-class.sh: short pauses matter more than throughput here.
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
            "-XX:+ExplicitGCInvokesConcurrent", "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={rdir / 'logs'}",
            f"-Dlog4j2.configurationFile={rdir / 'log4j2.properties'}",
            "-cp", f"{libs}/*", "kafka.Kafka", str(rdir / "server.properties")]  # fmt: skip


# --- readiness --------------------------------------------------------------------------------


def broker_answers(host: str, port: int, timeout_s: float = 2.0) -> str | None:
    """None when the broker serves a Metadata request, else why not."""
    if not port_open(host, port):
        return "connection refused"
    admin = AdminClient({
        "bootstrap.servers": f"{host}:{port}",
        "log_level": 0,  # probes fail on purpose while the broker starts; do not spam stderr
        "reconnect.backoff.max.ms": 500,
        "socket.connection.setup.timeout.ms": int(timeout_s * 1000),
    })  # fmt: skip
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        return str(exc.args[0])
    return None if meta.brokers else "no broker in metadata yet"


def _wait_ready(
    settings: Settings, proc: subprocess.Popen[bytes] | None, log: Path, log_offset: int
) -> None:
    deadline = time.monotonic() + READY_BUDGET_S
    why: str | None = "not probed"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"Kafka at {address(settings)} exited during startup (exit {proc.returncode}). "
                f"Last lines of {log}:\n{tail(log, start=log_offset)}"
            )
        why = broker_answers(LOOPBACK, settings.kafka_port)
        if why is None:
            return
        time.sleep(0.5)
    what_next = "it was stopped" if proc is not None else "stop it with `skucast services down`"
    raise ServiceError(
        f"Kafka at {address(settings)} did not answer within {READY_BUDGET_S:.0f} s ({why}); "
        f"{what_next}. Last lines of {log}:\n{tail(log, start=log_offset)}"
    )


# --- public API -------------------------------------------------------------------------------


def _foreign_listener(settings: Settings) -> None:
    for port, env in ((settings.kafka_port, "SKUCAST_KAFKA_PORT"),
                      (settings.kafka_controller_port, "SKUCAST_KAFKA_CONTROLLER_PORT")):  # fmt: skip
        if port_open(LOOPBACK, port):
            raise ServiceError(
                f"Cannot start Kafka: something not started by skucast already listens on "
                f"{LOOPBACK}:{port}. Stop that process (see `ss -ltnp 'sport = :{port}'`), or "
                f"choose another port with {env}."
            )


def up(settings: Settings) -> ServiceStatus:
    """Start the broker (or reuse the running one) and wait until it serves metadata."""
    require_local("Kafka", settings.kafka_host, "SKUCAST_KAFKA_HOST")
    rdir = run_dir(settings)
    pid_file, log = rdir / "kafka.pid", rdir / "kafka.out"
    started = time.monotonic()
    pid = live_pid(pid_file, _pid_marker(rdir))
    if pid is not None:  # ours, maybe still starting: wait for it rather than start a second one
        _wait_ready(settings, None, log, 0)
        return ServiceStatus("kafka", address(settings), True, pid, "already running, reused")
    _foreign_listener(settings)
    java = _check_java()
    libs = ensure_jars(settings)
    _write_configs(settings, rdir)
    formatted = not (rdir / "data" / "meta.properties").exists()
    if formatted:
        _format_storage(java, libs, rdir)
    if log.exists() and log.stat().st_size > _LOG_ROTATE_BYTES:
        log.replace(log.with_suffix(".out.1"))
    log_offset = log.stat().st_size if log.exists() else 0
    proc = spawn_detached(_broker_argv(java, libs, rdir, settings.kafka_heap_mb), rdir, log)
    pid_file.write_text(f"{proc.pid}\n")
    try:
        _wait_ready(settings, proc, log, log_offset)
    except ServiceError:
        stop_pid(proc.pid, _pid_marker(rdir), grace_s=10)
        pid_file.unlink(missing_ok=True)
        raise
    took = time.monotonic() - started
    how = "cold start, storage formatted" if formatted else "warm start"
    return ServiceStatus("kafka", address(settings), True, proc.pid, f"started in {took:.1f} s ({how})")


def down(settings: Settings) -> ServiceStatus:
    """Stop our broker by PID (SIGTERM, then SIGKILL after 30 s)."""
    rdir = run_dir(settings)
    pid = live_pid(rdir / "kafka.pid", _pid_marker(rdir))
    if pid is None:
        return status(settings)
    how = stop_pid(pid, _pid_marker(rdir), grace_s=30.0)
    (rdir / "kafka.pid").unlink(missing_ok=True)
    return ServiceStatus("kafka", address(settings), False, None, how)


def status(settings: Settings) -> ServiceStatus:
    rdir = run_dir(settings)
    pid = live_pid(rdir / "kafka.pid", _pid_marker(rdir))
    listening = port_open(LOOPBACK, settings.kafka_port)
    if pid is not None:
        detail = "listening" if listening else "process alive, port not open yet (starting?)"
        return ServiceStatus("kafka", address(settings), True, pid, detail)
    detail = "port in use by a process not started by skucast" if listening else "stopped"
    return ServiceStatus("kafka", address(settings), False, None, detail)
