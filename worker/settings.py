"""The one frozen settings object, loaded once at the edge (CLI/app) and passed down.

Env prefix ``SKUCAST_``; a ``.env`` file is read when present. No other module reads ``os.environ``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    JsonConfigSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

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
    hour_retention_days: int = Field(14, ge=1, le=400)
    sku_idle_ttl_days: int = Field(430, ge=1)

    # --- batching / inference ---
    batch_max_events: int = Field(10_000, ge=1, le=100_000)
    """Largest micro-batch. Under light load batches are what has arrived (a few events); under
    backlog 10k-event batches forecast each busy SKU once per 10k events: ~2x the events per CPU
    second of 2k-event batches (docs/benchmarks.md)."""
    batch_within_s: float = Field(0.02, gt=0, le=10)
    forecast_min_interval_s: float = Field(1.0, ge=0, le=3600)
    """Under heavy load (batches of ``forecast_heavy_batch_events`` or more) a SKU is forecast at
    most this often; the rest is deferred, its orders' offsets held until it goes out (0 = off)."""
    forecast_heavy_batch_events: int = Field(2_000, ge=1, le=1_000_000)
    forecast_memo_rows: int = Field(60_000, ge=0, le=10_000_000)
    """Model outputs kept for reuse while a SKU's history is unchanged (0 = off): a forecast reads
    history up to yesterday, so a SKU's later batches of the day need no model call. ~0.6 KB each;
    one row per SKU and day of the longer alert window (surge or drop: 3 by default)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    torch_threads: int = Field(0, ge=0, le=256)
    """Intra-op threads of the worker's model calls; 0 = 1 (measured fastest beside the event loop)."""
    model_dir: Path = Path("models")

    model_poll_s: float = Field(5.0, ge=0, le=3600)
    """How often the worker checks ``<model_dir>/LATEST`` for a new model (0 = never: no hot reload)."""

    # --- alerts (model.detector; calibrated values in <model_dir>/<version>.alerts.json win) ---
    alert_min_units: float = Field(20.0, ge=0)
    """A surge needs at least this many units today."""
    alert_surge_factor: float = Field(3.0, ge=1.0)
    """Severity ``warning`` from this many times the expected order lines (or a fraction as few, for drops)."""
    alert_critical_factor: float = Field(6.0, ge=1.0)
    """Severity ``critical`` from this many times."""
    alert_surge_z: float = Field(4.0, gt=0, le=100)
    """Surge threshold (z of order lines) when the model has no calibrated thresholds."""
    alert_drop_z: float = Field(5.0, gt=0, le=100)
    """Drop threshold when the model has no calibrated thresholds."""
    alert_window_days: int = Field(2, ge=1, le=7)
    """Days the detector scans (the last 1..W, each against the forecast made before them), when not calibrated."""
    alert_drop_window_days: int = Field(3, ge=0, le=7)
    """Days the drop score scans, the same way (0 = ``alert_window_days``), when not calibrated: a
    SKU selling a few order lines a day is told from a quiet spell only after days of silence."""
    alert_past_days: int = Field(14, ge=0, le=56)
    """Over its last days a drop is judged against the lesser, a surge against the greater, of the
    forecast and what the SKU sold a day over this many days before the drop window (0 = the
    forecast alone), when not calibrated."""
    alert_recent_hours: int = Field(6, ge=0, le=24)
    """Today's trailing hours (1, 2, 3, 6 .. up to this many) are also scored alone (0 = off), when not calibrated."""
    alert_margin: float = Field(1.2, ge=1.0, le=10.0)
    """Forecast error forgiven: surges are judged against expected x this, drops against expected / this."""
    alert_settle_days: int = Field(14, ge=0, le=90)
    """Days after a surge (drop) alert during which no drop (surge) is scored: the forecast still digests it."""
    alert_min_history_days: int = Field(28, ge=0, le=400)
    """No alerts for a SKU with less history (a new product's ramp-up is not a surge)."""
    alert_min_expected_orders: float = Field(6.0, ge=0, le=10_000)
    """A drop needs at least this many order lines expected by now."""
    alert_resolve_z: float = Field(2.0, ge=0, le=100)
    """An alert resolves once a later day's |z| is below this ..."""
    alert_resolve_share: float = Field(0.5, gt=0, le=1)
    """... with at least this share of that day's demand normally seen."""
    alert_cooldown_hours: float = Field(6.0, ge=0, le=24 * 30)
    """Event-time hours after a resolved alert before the same SKU and kind may alert again."""
    alert_false_alarm_rate: float = Field(0.001, gt=0, le=0.5)
    """Alerts per normal SKU-day the calibration (`skucast evaluate-alerts`) allows."""
    alert_watch_max_skus: int = Field(100_000, ge=0, le=10_000_000)
    """SKUs checked for drops hourly (event time) even without new orders; 0 = only SKUs with orders."""

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


CONFIG_FORMATS = {".toml": TomlConfigSettingsSource, ".yaml": YamlConfigSettingsSource,
                  ".yml": YamlConfigSettingsSource, ".json": JsonConfigSettingsSource}


def load_settings(config_file: Path | None = None) -> Settings:
    """Settings from, highest first: ``SKUCAST_*`` environment, ``.env``, ``config_file``, defaults.

    The file (TOML, YAML or JSON) uses the field names without the prefix, e.g. ``kafka_port = 19092``.
    """
    if config_file is None:
        return Settings()
    found = CONFIG_FORMATS.get(config_file.suffix.lower())
    if found is None:
        raise ValueError(f"config file {config_file} must end in one of {', '.join(CONFIG_FORMATS)}")
    if not config_file.is_file():
        raise ValueError(f"config file {config_file} does not exist")
    source_type = found

    class FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            from_file = source_type(settings_cls, config_file)
            return init_settings, env_settings, dotenv_settings, from_file, file_secret_settings

    return FileSettings()
