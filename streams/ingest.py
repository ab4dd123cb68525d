"""Decode and validate raw order messages, batch-first.

Every record ends up either as a valid :class:`OrderEvent` (customer id already replaced by a
keyed hash) or as a :class:`DeadLetter` with a stable reason code and a precise detail.
Nothing raises: bad input is data, not an exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from streams.contracts import SCHEMA_VERSION, DeadLetter, OrderEvent

MAX_MESSAGE_BYTES = 16 * 1024
_ORDERS: TypeAdapter[list[OrderEvent]] = TypeAdapter(list[OrderEvent])
_CUSTOMER_HASHES: dict[tuple[bytes, str], str] = {}
_CUSTOMER_HASHES_MAX = 200_000


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One consumed Kafka message and where it came from."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(slots=True)
class DecodedBatch:
    orders: list[tuple[RawRecord, OrderEvent]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class _Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def hash_customer_id(customer_id: str, key: bytes) -> str:
    """Keyed hash (HMAC-SHA256, hex) so customer ids can be joined on but not recovered."""
    return hmac.new(key, customer_id.encode("utf-8"), hashlib.sha256).hexdigest()


def redact_customer_id(raw: bytes, key: bytes) -> tuple[bytes, bool]:
    """The message with a raw ``customer_id`` replaced by its keyed hash, when it can be found.

    Dead letters keep the original bytes for replay, except this one field: a raw customer id
    must never be stored or emitted, not even in the DLQ.
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw, False
    if not isinstance(doc, dict) or doc.get("customer_id") is None:
        return raw, False
    doc["customer_id"] = "hmac-sha256:" + hash_customer_id(str(doc["customer_id"]), key)
    return orjson.dumps(doc), True


def dead_letter(record: RawRecord, reason: str, detail: str, received_at: datetime, hash_key: bytes) -> DeadLetter:
    original, redacted = redact_customer_id(record.value or b"", hash_key)
    return DeadLetter(
        reason=reason,
        detail=detail[:500],
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key_b64=base64.b64encode(record.key).decode() if record.key is not None else None,
        original_b64=base64.b64encode(original).decode(),
        customer_id_redacted=redacted,
        received_at=received_at,
    )


def _describe_validation_error(exc: ValidationError) -> _Rejected:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    if first["type"] == "missing":
        return _Rejected("missing_field", f"required field {where!r} is missing")
    if first["type"] == "extra_forbidden":
        return _Rejected("unknown_field", f"field {where!r} is not part of OrderEvent v{SCHEMA_VERSION}")
    got = repr(first.get("input"))[:80]
    return _Rejected(f"invalid_{where}", f"{where}: {first['msg']} (got {got})")


def _prepare(record: RawRecord, hash_key: bytes) -> dict[str, Any]:
    """The message as a dict ready for validation (customer id already hashed), or _Rejected."""
    raw = record.value
    if raw is None or len(raw) == 0:
        raise _Rejected("empty_message", "message value is empty")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise _Rejected("oversized", f"message is {len(raw)} bytes, limit {MAX_MESSAGE_BYTES}")
    try:
        doc: Any = orjson.loads(raw)  # rejects invalid UTF-8 too; the reason is told apart below
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise _Rejected("invalid_utf8", f"not UTF-8 at byte {bad.start}") from None
        raise _Rejected("invalid_json", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise _Rejected("not_an_object", f"expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise _Rejected("unknown_schema_version", f"schema_version {version!r}; this worker reads {SCHEMA_VERSION}")
    customer_id = doc.pop("customer_id", None)
    if customer_id is not None:
        if not isinstance(customer_id, str | int) or isinstance(customer_id, bool):
            raise _Rejected("invalid_customer_id", "customer_id must be a string or integer")
        doc["customer_hash"] = _cached_customer_hash(str(customer_id), hash_key)
    return doc


def _cached_customer_hash(customer_id: str, key: bytes) -> str:
    """hash_customer_id, memoised: a shop's customers come back, and HMAC is a third of decode."""
    cached = _CUSTOMER_HASHES.get((key, customer_id))
    if cached is None:
        if len(_CUSTOMER_HASHES) >= _CUSTOMER_HASHES_MAX:
            _CUSTOMER_HASHES.clear()
        cached = _CUSTOMER_HASHES[(key, customer_id)] = hash_customer_id(customer_id, key)
    return cached


def _validate(doc: dict[str, Any]) -> OrderEvent:
    try:
        return OrderEvent.model_validate(doc)
    except ValidationError as exc:
        raise _describe_validation_error(exc) from None


def _check(record: RawRecord, order: OrderEvent, now: datetime, future_tolerance: timedelta) -> OrderEvent:
    """The checks that need the validated order: not from the future, keyed by its SKU."""
    if order.event_time - now > future_tolerance:
        raise _Rejected(
            "event_time_in_future",
            f"event_time {order.event_time.isoformat()} is more than {future_tolerance} after {now.isoformat()}",
        )
    if record.key is not None and record.key != order.sku.encode("utf-8"):
        raise _Rejected("key_mismatch", f"message key {record.key[:64]!r} differs from sku {order.sku!r}")
    return order


def _validate_all(docs: list[dict[str, Any]]) -> list[OrderEvent] | None:
    """Every doc validated in one pydantic call, or None when any is invalid (then one by one)."""
    try:
        return _ORDERS.validate_python(docs)
    except ValidationError:
        return None


def decode_orders(
    records: Sequence[RawRecord],
    *,
    hash_key: bytes,
    now: datetime,
    future_tolerance: timedelta,
) -> DecodedBatch:
    """Validate a batch of raw order messages. ``now`` is the injected wall clock.

    >>> from datetime import UTC
    >>> now = datetime(2011, 12, 1, tzinfo=UTC)
    >>> rec = RawRecord("orders", 0, 7, b"A1", b'{"order_id":"o1","sku":"A1","quantity":0,'
    ...     b'"unit_price":1.5,"currency":"GBP","event_time":"2011-11-30T10:00:00Z"}')
    >>> decode_orders([rec], hash_key=b"k", now=now, future_tolerance=timedelta(days=1)).dead[0].reason
    'invalid_quantity'
    """
    dead: list[tuple[int, DeadLetter]] = []
    ready: list[tuple[int, RawRecord, dict[str, Any]]] = []
    for i, record in enumerate(records):
        try:
            ready.append((i, record, _prepare(record, hash_key)))
        except _Rejected as rej:
            dead.append((i, dead_letter(record, rej.reason, rej.detail, now, hash_key)))
    bulk = _validate_all([doc for _, _, doc in ready]) if ready else []
    batch = DecodedBatch()
    for k, (i, record, doc) in enumerate(ready):
        try:
            order = bulk[k] if bulk is not None else _validate(doc)
            batch.orders.append((record, _check(record, order, now, future_tolerance)))
        except _Rejected as rej:
            dead.append((i, dead_letter(record, rej.reason, rej.detail, now, hash_key)))
    dead.sort(key=lambda d: d[0])  # in the order the records came
    batch.dead = [d for _, d in dead]
    return batch
