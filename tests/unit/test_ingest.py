"""Contracts and ingest validation: every bad input becomes a dead letter with a precise reason."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from streams.contracts import ForecastEvent, OrderEvent, check_forecast_values, forecast_json, wire_json
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


@pytest.mark.parametrize("build", ["validated", "constructed"])
def test_forecast_json_is_byte_for_byte_the_pydantic_serialisation(build: str) -> None:
    cases = [
        ("85123A", NOW.replace(microsecond=0), [[0.0, 1.0, 2.5], [3.0, 3.0, 3.0]], None),
        ('ünï{x}"q\\', NOW.replace(microsecond=123456), [[1e16, 2e16, 1.2345e20], [0.001, 0.1, 7.0]], "cold_start"),
        ("A", datetime(2026, 1, 1, tzinfo=UTC), [[0.001, 0.1, 123456.789], [1 / 3, 2 / 3, 1.0]], "no_history"),
    ]
    for sku, at, values, fallback in cases:
        fields = dict(sku=sku, made_at=at, as_of=at - timedelta(seconds=1.5), start_date=at.date(), horizon=2,
                      quantiles=[0.1, 0.5, 0.9], values=values, model_version="lstm-1", history_days=3,
                      fallback=fallback)
        event = ForecastEvent(**fields) if build == "validated" else ForecastEvent.model_construct(**fields)
        assert forecast_json(event) == wire_json(event)
        assert ForecastEvent.model_validate_json(forecast_json(event)) == event


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
