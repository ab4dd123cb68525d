"""Wire contracts: JSON on the wire, one schema version field on every message.

Customer ids never enter an ``OrderEvent``: :func:`streams.ingest.decode_orders` replaces them
with a keyed hash before validation, so only ``customer_hash`` is ever stored or emitted.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime
from typing import Annotated, Literal

import numpy as np
import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION: Literal[1] = 1

# ISO 4217 codes accepted on ingest; an unknown code is a dead letter, not a guess.
CURRENCIES = frozenset(
    [
        "GBP",
        "EUR",
        "USD",
        "CNY",
        "JPY",
        "HKD",
        "SGD",
        "AUD",
        "CAD",
        "CHF",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "CZK",
        "INR",
        "KRW",
        "BRL",
        "MXN",
        "ZAR",
        "NZD",
        "TWD",
    ]
)

SkuId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s\x00-\x1f]+$")]
ShortText = Annotated[str, Field(min_length=1, max_length=64)]
MAX_QUANTITY = 100_000
MAX_UNIT_PRICE = 1_000_000.0


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class OrderEvent(_Wire):
    """One order line: ``quantity`` units of ``sku`` at ``unit_price`` each, at ``event_time``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    order_id: ShortText
    line: int = Field(0, ge=0, le=100_000, description="line number within the order")
    sku: SkuId
    quantity: int = Field(gt=0, le=MAX_QUANTITY)
    unit_price: float = Field(gt=0, le=MAX_UNIT_PRICE)
    currency: str = Field(min_length=3, max_length=3)
    event_time: AwareDatetime
    category: ShortText | None = None
    market: ShortText | None = None
    channel: ShortText | None = None
    customer_hash: str | None = Field(None, min_length=64, max_length=64)

    @field_validator("unit_price")
    @classmethod
    def _finite_price(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("unit_price must be finite")
        return v

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, v: str) -> str:
        if v not in CURRENCIES:
            raise ValueError(f"unknown currency {v!r}")
        return v

    @field_validator("event_time")
    @classmethod
    def _to_utc(cls, v: datetime) -> datetime:
        return v.astimezone(UTC)

    @property
    def dedup_key(self) -> str:
        return f"{self.order_id}#{self.line}"

    @property
    def revenue_milli(self) -> int:
        """Line revenue in thousandths of the currency unit (integer: exact under summation)."""
        return round(self.quantity * self.unit_price * 1000)


class ForecastEvent(_Wire):
    """Multi-day demand forecast for one SKU: ``values[d][q]`` is quantile ``quantiles[q]`` of day d."""

    schema_version: Literal[1] = SCHEMA_VERSION
    sku: SkuId
    made_at: AwareDatetime
    as_of: AwareDatetime = Field(description="event-time watermark of the SKU when forecast")
    start_date: date = Field(description="first forecast day (market-local date)")
    horizon: int = Field(ge=1, le=366)
    quantiles: list[float]
    values: list[list[float]]
    model_version: str
    history_days: int = Field(ge=0)
    fallback: str | None = Field(None, description="why a documented fallback made this forecast")

    @model_validator(mode="after")
    def _shape(self) -> ForecastEvent:
        if len(self.values) != self.horizon:
            raise ValueError("values must have one row per horizon day")
        for row in self.values:
            if len(row) != len(self.quantiles):
                raise ValueError("each day needs one value per quantile")
            if any(b < a for a, b in itertools.pairwise(row)) or row[0] < 0:
                raise ValueError("quantiles must be non-negative and monotone")
        return self


def wire_json(event: BaseModel) -> bytes:
    """JSON bytes of a wire model, straight from pydantic's Rust serializer (Kafka and Redis alike)."""
    return bytes(event.__pydantic_serializer__.to_json(event))


def forecast_json(event: ForecastEvent) -> bytes:
    """:func:`wire_json` of a forecast, byte for byte, in about half the time (orjson over its
    fields: plain values, in declaration order, UTC times with ``Z``); the worker's hottest
    serialisation, one per forecast."""
    return orjson.dumps(event.__dict__, option=orjson.OPT_UTC_Z)


def check_forecast_values(values: np.ndarray, horizon: int, n_quantiles: int) -> None:
    """:class:`ForecastEvent`'s value rules for a whole batch (n, horizon, quantiles) at once.

    For producers that build many events with ``model_construct``; raises ``ValueError`` as the
    per-event validator would.
    """
    if values.ndim != 3 or values.shape[1:] != (horizon, n_quantiles):
        raise ValueError(f"forecast values of shape (n, {horizon}, {n_quantiles}) expected, got {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values[..., 0] < 0) or np.any(np.diff(values, axis=2) < 0):
        raise ValueError("quantiles must be finite, non-negative and monotone")


AlertState = Literal["opened", "updated", "resolved"]
Severity = Literal["info", "warning", "critical"]


class AlertEvent(_Wire):
    schema_version: Literal[1] = SCHEMA_VERSION
    alert_id: str
    sku: SkuId
    state: AlertState
    kind: Literal["surge", "drop"]
    severity: Severity
    day: date
    event_time: AwareDatetime
    observed: float
    expected: float
    lower: float
    upper: float
    score: float
    festival: str | None = None
    model_version: str
    made_at: AwareDatetime
    projected_shortfall: float | None = None


class DeadLetter(_Wire):
    """A message that could not be processed: original bytes (base64), why, and where it came from."""

    schema_version: Literal[1] = SCHEMA_VERSION
    reason: str = Field(description="stable machine-readable code, e.g. invalid_json")
    detail: str = Field(description="human-readable specifics: field, value, rule")
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None = None
    original_b64: str = Field(description="original message bytes, base64; a raw customer_id is replaced by its hash")
    customer_id_redacted: bool = False
    received_at: AwareDatetime


class LateEvent(_Wire):
    """An order that arrived after the grace period behind its SKU's watermark."""

    schema_version: Literal[1] = SCHEMA_VERSION
    reason: str
    order: OrderEvent
    watermark: AwareDatetime
    lateness_s: float
    partition: int
    offset: int


def utcnow() -> datetime:
    """The wall clock, for the edges that need one (injected elsewhere)."""
    return datetime.now(UTC)
