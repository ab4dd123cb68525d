"""The one frozen settings object, loaded once at the edge (CLI/app) and passed down.

Env prefix ``SKUCAST_``; a ``.env`` file is read when present. No other module reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STATE_DIR = Path.home() / ".cache" / "skucast"


class Settings(BaseSettings):
    """Effective configuration of every skucast command."""

    model_config = SettingsConfigDict(
        env_prefix="SKUCAST_", env_file=".env", extra="ignore", frozen=True
    )

    # --- services (Kafka + Redis) ---
    kafka_host: str = "127.0.0.1"
    kafka_port: int = Field(9092, ge=1, le=65535)
    kafka_controller_port: int = Field(9093, ge=1, le=65535)
    kafka_heap_mb: int = Field(768, ge=256, le=8192)
    redis_host: str = "127.0.0.1"
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_db: int = Field(0, ge=0, le=15)
    redis_password: SecretStr | None = None
    # --- security (all off for the local loopback stack) ---
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    redis_tls: bool = False
    redis_tls_cafile: Path | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    """Cache of downloaded jars and the services' run directory (data, logs, PIDs)."""

    # --- naming, so several stacks/tests can share one broker and one Redis ---
    app_id: str = "skucast"
    topic_prefix: str = ""
    redis_prefix: str = "skc"

    # --- topics ---
    orders_partitions: int = Field(4, ge=1, le=1024)
    output_partitions: int = Field(4, ge=1, le=1024)

    # --- ingest ---
    customer_hash_key: SecretStr = SecretStr("change-me-in-production")
    market_timezone: str = "Europe/London"
    late_grace_hours: float = Field(48.0, ge=0)
    future_tolerance_hours: float = Field(24.0, ge=0)
    dedup_horizon_days: int = Field(7, ge=1, le=400)
    day_retention: int = Field(420, ge=60, le=5000)
    hour_retention_days: int = Field(21, ge=1, le=400)
    sku_idle_ttl_days: int = Field(430, ge=1)

    # --- batching / inference ---
    batch_max_events: int = Field(2000, ge=1, le=100_000)
    batch_within_s: float = Field(0.02, gt=0, le=10)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = Field(0, ge=0, le=256)
    """0 = torch default."""
    model_dir: Path = Path("models")

    # --- alerts (first simple rule) ---
    alert_min_units: float = Field(20.0, ge=0)
    alert_surge_factor: float = Field(3.0, ge=1.0)

    # --- HTTP (metrics, query API) ---
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=1, le=65535)

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.kafka_host}:{self.kafka_port}"

    @property
    def redis_address(self) -> str:
        return f"{self.redis_host}:{self.redis_port}"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic name (``orders`` → ``<prefix>orders``)."""
        return f"{self.topic_prefix}{name}"
