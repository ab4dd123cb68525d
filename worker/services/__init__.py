"""Real Kafka and Redis for development and tests, started by the project itself (no Docker).

``up`` starts (or reuses) a single-node Kafka broker and a Redis server on 127.0.0.1, ``down``
stops them by PID, ``status`` reports them; each returns one :class:`ServiceStatus` per service,
Kafka first. Failures raise :class:`ServiceError` with a message meant for a human.

Example (needs java, mvn and redis-server)::

    from worker.settings import Settings
    from worker import services
    for s in services.up(Settings()):
        print(s.name, s.address, s.pid, s.detail)
"""

from __future__ import annotations

from worker.services import kafka, redis
from worker.services.kafka import kafka_unreachable_message
from worker.services.process import ServiceError, ServiceStatus
from worker.services.redis import redis_client_error_message
from worker.settings import Settings

__all__ = [
    "ServiceError",
    "ServiceStatus",
    "down",
    "kafka_unreachable_message",
    "redis_client_error_message",
    "status",
    "up",
]


def up(settings: Settings) -> list[ServiceStatus]:
    """Start Kafka, then Redis; idempotent (running services are reused)."""
    return [kafka.up(settings), redis.up(settings)]


def down(settings: Settings) -> list[ServiceStatus]:
    """Stop Kafka, then Redis. Stopping what is not running is not an error."""
    return [kafka.down(settings), redis.down(settings)]


def status(settings: Settings) -> list[ServiceStatus]:
    return [kafka.status(settings), redis.status(settings)]
