"""Client configuration for Kafka (confluent-kafka and Faust) and Redis, security included.

Secrets stay ``SecretStr`` in the settings and are unwrapped only here, at the client edge.
"""

from __future__ import annotations

import ssl
from typing import Any

from worker.settings import Settings


def confluent_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings for producers, consumers and the admin client."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": settings.kafka_security_protocol.lower(),
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        conf["sasl.mechanism"] = settings.kafka_sasl_mechanism
        conf["sasl.username"] = settings.kafka_sasl_username or ""
        conf["sasl.password"] = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    if settings.kafka_ssl_cafile is not None:
        conf["ssl.ca.location"] = str(settings.kafka_ssl_cafile)
    return {**conf, **extra}


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for Faust, or None for PLAINTEXT."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context(cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context if protocol == "SASL_SSL" else None,
    )


def redis_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments shared by redis.Redis and redis.asyncio.Redis."""
    kwargs: dict[str, Any] = {
        "host": settings.redis_host,
        "port": settings.redis_port,
        "db": settings.redis_db,
        "password": settings.redis_password.get_secret_value() if settings.redis_password else None,
    }
    if settings.redis_tls:
        kwargs["ssl"] = True
        if settings.redis_tls_cafile is not None:
            kwargs["ssl_ca_certs"] = str(settings.redis_tls_cafile)
    return kwargs
