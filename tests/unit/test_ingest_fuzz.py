"""Property-based: whatever bytes or field values arrive, decoding never raises, every record is
accounted for exactly once (valid or dead-lettered with a known reason), and valid ones survive."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.ingest import RawRecord, decode_orders

NOW = datetime(2011, 12, 1, tzinfo=UTC)
REASONS = {
    "empty_message", "oversized", "invalid_utf8", "invalid_json", "not_an_object", "unknown_schema_version",
    "missing_field", "unknown_field", "event_time_in_future", "key_mismatch", "invalid_customer_id",
}
VALID = {"order_id": "1", "sku": "A", "quantity": 1, "unit_price": 1.0, "currency": "GBP",
         "event_time": "2011-11-30T10:00:00Z"}


def decode(records: list[RawRecord]):
    return decode_orders(records, hash_key=b"k", now=NOW, future_tolerance=timedelta(hours=24))


def known(reason: str) -> bool:
    return reason in REASONS or reason.startswith("invalid_")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.binary(max_size=300)), max_size=20))
def test_arbitrary_bytes_never_raise_and_are_all_accounted_for(values: list[bytes | None]) -> None:
    records = [RawRecord("orders", 0, i, None, v) for i, v in enumerate(values)]
    batch = decode(records)
    assert len(batch.orders) + len(batch.dead) == len(records)
    assert all(known(d.reason) and d.detail for d in batch.dead)


json_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["NaN", "Infinity", "-1", "1e308", "GBP", "XXX", "2011-11-30T10:00:00Z", "2999-01-01T00:00:00Z",
                     "1900-01-01T00:00:00Z", "2011-11-30T10:00:00", ""]),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from([*VALID, "schema_version", "line", "customer_id", "extra"]), json_values,
                       max_size=9),
       st.booleans())
def test_mutated_fields_give_a_valid_order_or_a_precise_reason(changes: dict, drop: bool) -> None:
    doc = {**VALID, **changes}
    if drop and changes:
        doc.pop(next(iter(changes)))
    try:
        raw = orjson.dumps(doc)
    except (TypeError, orjson.JSONEncodeError):
        raw = repr(doc).encode()
    good = RawRecord("orders", 1, 1, None, orjson.dumps(VALID))
    batch = decode([good, RawRecord("orders", 1, 2, None, raw), good])
    offsets = [r.offset for r, _ in batch.orders]
    assert offsets.count(1) == 2  # the valid neighbours always survive the bad one
    for _, order in batch.orders:
        assert order.quantity > 0 and math.isfinite(order.unit_price) and order.unit_price > 0
        assert order.event_time - NOW <= timedelta(hours=24)
    assert all(known(d.reason) for d in batch.dead)
    assert len(batch.orders) + len(batch.dead) == 3
