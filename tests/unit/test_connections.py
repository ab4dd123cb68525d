"""Security settings reach the clients; secrets never show in reprs or `config show`."""

from __future__ import annotations

import faust

from worker.connections import confluent_config, faust_credentials, redis_kwargs
from worker.settings import Settings


def test_plaintext_by_default() -> None:
    s = Settings()
    assert confluent_config(s)["security.protocol"] == "plaintext"
    assert faust_credentials(s) is None
    assert "ssl" not in redis_kwargs(s)


def test_sasl_ssl_reaches_every_client_and_stays_secret() -> None:
    s = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_sasl_username="shop", kafka_sasl_password="pa55-kafka", redis_password="pa55-redis",
                 redis_tls=True)
    conf = confluent_config(s, **{"linger.ms": 5})
    assert conf["security.protocol"] == "sasl_ssl" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "shop" and conf["sasl.password"] == "pa55-kafka" and conf["linger.ms"] == 5
    creds = faust_credentials(s)
    assert isinstance(creds, faust.SASLCredentials) and creds.ssl_context is not None
    assert redis_kwargs(s)["password"] == "pa55-redis" and redis_kwargs(s)["ssl"] is True
    for text in (repr(s), str(s.model_dump())):
        assert "pa55-kafka" not in text and "pa55-redis" not in text


def test_ssl_only_uses_ssl_credentials() -> None:
    assert isinstance(faust_credentials(Settings(kafka_security_protocol="SSL")), faust.SSLCredentials)
