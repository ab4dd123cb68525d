"""Contracts and ingest validation: every bad input becomes a dead letter with a precise reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from streams.contracts import ForecastEvent, OrderEvent, check_forecast_values
from streams.ingest import RawRecord, decode_orders, hash_customer_id

NOW = datetime(2011, 12, 1, 12, tzinfo=UTC)
GOOD = {"order_id": "536365", "line": 0, "sku": "85123A", "quantity": 6, "unit_price": 2.55,
        "currency": "GBP", "event_time": "2011-11-30T08:26:00+00:00", "customer_id": "17850"}


def rec(value: bytes | None, key: bytes | None = b"85123A", offset: int = 0) -> RawRecord:
    return RawRecord("orders", 2, offset, key, value)


def decode(*records: RawRecord):
    return decode_orders(records, hash_key=b"secret", now=NOW, future_tolerance=timedelta(hours=24))


def test_valid_order_is_accepted_and_customer_id_is_hashed() -> None:
    batch = decode(rec(orjson.dumps(GOOD)))
    assert not batch.dead
    (_, order), = batch.orders
    assert order.quantity == 6 and order.event_time.tzinfo is not None
    assert order.customer_hash == hash_customer_id("17850", b"secret")
    assert "17850" not in order.model_dump_json()


def test_keyed_hash_depends_on_the_key() -> None:
    assert hash_customer_id("17850", b"a") != hash_customer_id("17850", b"b")


def test_event_time_is_normalised_to_utc() -> None:
    doc = {**GOOD, "event_time": "2011-06-01T10:00:00+01:00"}
    (_, order), = decode(rec(orjson.dumps(doc))).orders
    assert order.event_time == datetime(2011, 6, 1, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"quantity": 0}, "invalid_quantity"),
        ({"quantity": -5}, "invalid_quantity"),
        ({"quantity": 10**9}, "invalid_quantity"),
        ({"quantity": "many"}, "invalid_quantity"),
        ({"unit_price": "NaN"}, "invalid_unit_price"),
        ({"unit_price": "Infinity"}, "invalid_unit_price"),
        ({"unit_price": -1}, "invalid_unit_price"),
        ({"currency": "XXX"}, "invalid_currency"),
        ({"event_time": "2011-11-30T08:26:00"}, "invalid_event_time"),
        ({"event_time": "2031-01-01T00:00:00Z"}, "event_time_in_future"),
        ({"schema_version": 2}, "unknown_schema_version"),
        ({"colour": "red"}, "unknown_field"),
        ({"sku": "has space"}, "invalid_sku"),
        ({"customer_id": ["a"]}, "invalid_customer_id"),
    ],
)
def test_bad_fields_become_dead_letters(change: dict, reason: str) -> None:
    doc = {**GOOD, **change}
    batch = decode(rec(orjson.dumps(doc), key=str(doc["sku"]).encode()))
    assert not batch.orders
    assert batch.dead[0].reason == reason
    assert batch.dead[0].detail


def test_missing_field_names_the_field() -> None:
    doc = {k: v for k, v in GOOD.items() if k != "unit_price"}
    dead = decode(rec(orjson.dumps(doc))).dead[0]
    assert dead.reason == "missing_field" and "unit_price" in dead.detail


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"", "empty_message"), (None, "empty_message"), (b"{not json", "invalid_json"),
     (b"\xc3\x28", "invalid_utf8"), (b"[1]", "not_an_object"), (b"x" * 20_000, "oversized"),
     (b'{"quantity": NaN}', "invalid_json")],
)
def test_undecodable_bytes(raw: bytes | None, reason: str) -> None:
    dead = decode(rec(raw)).dead[0]
    assert dead.reason == reason
    assert base64.b64decode(dead.original_b64) == (raw or b"")
    assert (dead.partition, dead.offset, dead.source_topic) == (2, 0, "orders")


def test_key_must_match_sku() -> None:
    assert decode(rec(orjson.dumps(GOOD), key=b"OTHER")).dead[0].reason == "key_mismatch"


def test_a_bad_message_loses_nothing_else() -> None:
    batch = decode(rec(orjson.dumps(GOOD), offset=1), rec(b"junk", offset=2),
                   rec(orjson.dumps({**GOOD, "line": 1}), offset=3))
    assert [r.offset for r, _ in batch.orders] == [1, 3]
    assert [d.offset for d in batch.dead] == [2]


def test_revenue_is_exact_integer_millis() -> None:
    order = OrderEvent.model_validate({k: v for k, v in GOOD.items() if k != "customer_id"})
    assert order.revenue_milli == 15300
    assert order.dedup_key == "536365#0"


def test_forecast_event_rejects_crossed_quantiles() -> None:
    base = dict(sku="A", made_at=NOW, as_of=NOW, start_date=NOW.date(), horizon=1,
                quantiles=[0.1, 0.5, 0.9], model_version="v", history_days=10)
    ForecastEvent(**base, values=[[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="monotone"):
        ForecastEvent(**base, values=[[1.0, 0.5, 3.0]])
    with pytest.raises(ValueError, match="one row per horizon day"):
        ForecastEvent(**base, values=[[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])


def test_batch_check_of_forecast_values_matches_the_event_validator() -> None:
    import numpy as np

    good = np.array([[[1.0, 2.0, 3.0]], [[0.0, 0.0, 0.0]]])
    check_forecast_values(good, horizon=1, n_quantiles=3)
    with pytest.raises(ValueError, match="monotone"):
        check_forecast_values(np.array([[[1.0, 0.5, 3.0]]]), horizon=1, n_quantiles=3)
    with pytest.raises(ValueError, match="monotone"):
        check_forecast_values(np.array([[[-1.0, 0.5, 3.0]]]), horizon=1, n_quantiles=3)
    with pytest.raises(ValueError, match="monotone"):
        check_forecast_values(np.array([[[np.nan, 0.5, 3.0]]]), horizon=1, n_quantiles=3)
    with pytest.raises(ValueError, match="shape"):
        check_forecast_values(good, horizon=2, n_quantiles=3)


def test_dead_letters_never_carry_a_raw_customer_id() -> None:
    doc = {**GOOD, "quantity": -1, "customer_id": "CUST-SECRET-42"}
    dead = decode(rec(orjson.dumps(doc))).dead[0]
    original = base64.b64decode(dead.original_b64)
    assert b"CUST-SECRET-42" not in original and dead.customer_id_redacted
    assert orjson.loads(original)["customer_id"] == "hmac-sha256:" + hash_customer_id("CUST-SECRET-42", b"secret")
