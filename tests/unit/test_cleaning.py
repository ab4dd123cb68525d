"""Cleaning rules of model/data.py, one hand-made frame per rule, then the real file."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from model import data

DATA = Path(__file__).resolve().parents[2] / "data" / "online_retail.parquet"


def frame(*rows: dict[str, Any]) -> pd.DataFrame:
    """Order lines with sensible defaults; each row overrides what it needs."""
    base = {
        "InvoiceNo": "536365",
        "StockCode": "85123A",
        "Description": "HEART T-LIGHT HOLDER",
        "Quantity": 6,
        "InvoiceDate": pd.Timestamp("2011-06-01 10:00"),
        "UnitPrice": 2.55,
        "CustomerID": 17850.0,
        "Country": "United Kingdom",
    }
    return data.number_lines(pd.DataFrame([{**base, **row} for row in rows]))


def test_normalise_stock_codes_strips_and_upper_cases() -> None:
    df = data.normalise_stock_codes(frame({"StockCode": " 85123a "}, {"StockCode": "m"}))
    assert df["StockCode"].tolist() == ["85123A", "M"]


def test_drop_missing_stock_codes() -> None:
    df = frame({"StockCode": "22423"}, {"StockCode": None}, {"StockCode": "  "})
    assert data.drop_missing_stock_codes(df)["StockCode"].tolist() == ["22423"]


def test_drop_cancellations() -> None:
    df = frame({"InvoiceNo": "536365"}, {"InvoiceNo": "C536379", "Quantity": -1})
    assert data.drop_cancellations(df)["InvoiceNo"].tolist() == ["536365"]


def test_drop_non_positive_quantities() -> None:
    df = frame({"Quantity": 3}, {"Quantity": 0}, {"Quantity": -2})
    assert data.drop_non_positive_quantities(df)["Quantity"].tolist() == [3]


def test_drop_non_positive_prices() -> None:
    df = frame({"UnitPrice": 1.0}, {"UnitPrice": 0.0}, {"UnitPrice": -11062.06})
    assert data.drop_non_positive_prices(df)["UnitPrice"].tolist() == [1.0]


@pytest.mark.parametrize(
    "code", ["POST", "DOT", "C2", "M", "m", "D", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "gift_0001_10"]
)
def test_drop_non_product_codes(code: str) -> None:
    df = frame({"StockCode": code}, {"StockCode": "22423"}, {"StockCode": "DCGSSBOY"})
    assert data.drop_non_product_codes(df)["StockCode"].tolist() == ["22423", "DCGSSBOY"]


def test_drop_reversed_lines_removes_only_the_sale_a_later_cancellation_undoes() -> None:
    df = frame(
        {
            "InvoiceNo": "541431",
            "StockCode": "23166",
            "Quantity": 74215,
            "InvoiceDate": pd.Timestamp("2011-01-18 10:01"),
        },
        {"InvoiceNo": "541432", "StockCode": "23166", "Quantity": 5, "InvoiceDate": pd.Timestamp("2011-01-18 10:02")},
        {
            "InvoiceNo": "C541433",
            "StockCode": "23166",
            "Quantity": -74215,
            "InvoiceDate": pd.Timestamp("2011-01-18 10:17"),
        },
        # Same quantity but another customer: not the same sale.
        {"InvoiceNo": "541434", "StockCode": "23166", "Quantity": 7, "CustomerID": 12346.0},
        {"InvoiceNo": "C541435", "StockCode": "23166", "Quantity": -7, "CustomerID": 99999.0},
        # Cancellation earlier than the sale cannot undo it.
        {"InvoiceNo": "C541400", "StockCode": "22423", "Quantity": -3, "InvoiceDate": pd.Timestamp("2011-01-01 09:00")},
        {"InvoiceNo": "541500", "StockCode": "22423", "Quantity": 3, "InvoiceDate": pd.Timestamp("2011-01-02 09:00")},
    )
    kept = data.drop_reversed_lines(df)
    assert "541431" not in kept["InvoiceNo"].tolist()
    assert {"541432", "541434", "541500"} <= set(kept["InvoiceNo"])
    assert len(kept) == len(df) - 1


def test_clean_applies_every_rule_in_order() -> None:
    df = frame(
        {"StockCode": "85123a", "Quantity": 2},
        {"StockCode": "POST", "UnitPrice": 18.0},
        {"InvoiceNo": "C1", "Quantity": -2, "StockCode": "22423"},
        {"Quantity": -5},
        {"UnitPrice": 0.0},
    )
    out = data.clean(df)
    assert out["StockCode"].tolist() == ["85123A"]
    assert out["Quantity"].tolist() == [2]


def test_event_times_are_london_wall_clock_as_utc() -> None:
    df = frame(
        {"InvoiceDate": pd.Timestamp("2011-01-10 09:00")},  # GMT: same as UTC
        {"InvoiceDate": pd.Timestamp("2011-07-10 09:00")},  # BST: one hour ahead of UTC
    )
    times = data.event_times_utc(df).tolist()
    assert times == [datetime(2011, 1, 10, 9, tzinfo=UTC), datetime(2011, 7, 10, 8, tzinfo=UTC)]


def test_to_order_lines_columns_types_and_event_time_order() -> None:
    df = frame(
        {"InvoiceNo": "2", "StockCode": "22423", "InvoiceDate": pd.Timestamp("2011-07-10 11:00"), "CustomerID": None},
        {"InvoiceNo": "1", "StockCode": "85123a", "InvoiceDate": pd.Timestamp("2011-07-10 10:00")},
        {"InvoiceNo": "1", "StockCode": "71053", "InvoiceDate": pd.Timestamp("2011-07-10 10:00")},
    )
    lines = data.to_order_lines(df)
    assert list(lines.columns) == data.ORDER_LINE_COLUMNS
    assert lines["order_id"].tolist() == ["1", "1", "2"]
    assert lines["line"].tolist() == [0, 1, 0]
    assert lines["sku"].tolist() == ["85123A", "71053", "22423"]
    assert lines["customer_id"].tolist() == ["17850", "17850", None]
    assert lines["event_time"].iloc[0] == pd.Timestamp("2011-07-10 09:00", tz="UTC")
    assert set(lines["currency"]) == {"GBP"} and set(lines["market"]) == {"UK"}
    assert lines["category"].isna().all()


@pytest.fixture(scope="module")
def real_clean() -> pd.DataFrame:
    return data.clean(data.load_raw(DATA))


def test_real_data_after_cleaning(real_clean: pd.DataFrame) -> None:
    assert (real_clean["Quantity"] > 0).all() and (real_clean["UnitPrice"] > 0).all()
    assert not real_clean["InvoiceNo"].str.startswith("C").any()
    codes = real_clean["StockCode"].astype(str)
    assert set(codes[~codes.str.contains(r"\d")]) == {"DCGSSBOY", "DCGSSGIRL"}
    assert (codes == codes.str.upper()).all()
    assert real_clean["Quantity"].max() < 74215  # the two cancelled bulk orders are gone
    assert 500_000 < len(real_clean) < 541_909


def test_real_order_lines_are_sorted_and_unique(real_clean: pd.DataFrame) -> None:
    lines = data.to_order_lines(real_clean)
    assert lines["event_time"].is_monotonic_increasing
    assert not lines.duplicated(["order_id", "line"]).any()
    assert lines["event_time"].min() == pd.Timestamp("2010-12-01 08:26", tz="UTC")


def test_daily_demand_matches_cleaned_totals(real_clean: pd.DataFrame) -> None:
    skus, start, units = data.daily_demand(real_clean, top_n=50)
    assert start == date(2010, 12, 1)
    assert units.shape == (50, (date(2011, 12, 9) - start).days + 1)
    assert units.dtype == np.float32
    totals = real_clean.groupby(real_clean["StockCode"].astype(str))["Quantity"].sum()
    np.testing.assert_allclose(units.sum(axis=1), totals.loc[skus].to_numpy(), rtol=1e-6)
    # No trading on Saturdays in this shop: every SKU's Saturday column is zero.
    saturdays = [d for d in range(units.shape[1]) if (start.toordinal() + d) % 7 == 6]
    assert units[:, saturdays].sum() == 0


def test_daily_demand_buckets_by_market_local_day() -> None:
    df = data.clean(
        frame(
            {"InvoiceDate": pd.Timestamp("2011-07-10 00:30"), "Quantity": 4},  # 23:30 UTC the day before
            {"InvoiceDate": pd.Timestamp("2011-07-12 12:00"), "Quantity": 1, "StockCode": "22423"},
        )
    )
    skus, start, units = data.daily_demand(df, top_n=None)
    assert start == date(2011, 7, 10)
    assert units.shape == (2, 3)
    assert units[skus.index("85123A")].tolist() == [4.0, 0.0, 0.0]
    _, utc_start, utc_units = data.daily_demand(df, tz="UTC", top_n=None)
    assert utc_start == date(2011, 7, 9) and utc_units.shape == (2, 4)
