"""UCI Online Retail: load, clean, and shape into daily demand and a replayable order stream.

Cleaning rules, applied in this order by :func:`clean` (each is a small function of its own):

1. :func:`normalise_stock_codes` -- strip whitespace and upper-case ``StockCode`` (the raw data
   spells some codes both ways, e.g. ``85123a`` / ``85123A``).
2. :func:`drop_missing_stock_codes` -- rows with no ``StockCode`` (missing or empty).
3. :func:`drop_reversed_lines` -- an order line that a later cancellation undoes exactly (same
   customer, same code, same quantity, cancellation after it): the sale never happened. This
   removes the data set's two bulk outliers (74,215 x 23166 and 80,995 x 23843), each
   cancelled minutes later, and ~2,860 other reversed lines (~4 % of units).
4. :func:`drop_cancellations` -- invoices whose number starts with ``C``.
5. :func:`drop_non_positive_quantities` -- ``Quantity <= 0`` (returns, stock adjustments).
6. :func:`drop_non_positive_prices` -- ``UnitPrice <= 0`` (write-offs, "Adjust bad debt").
7. :func:`drop_non_product_codes` -- service lines, not goods: the codes in
   :data:`NON_PRODUCT_CODES` and gift vouchers (``GIFT_*``). The list comes from the data: every
   code without a digit plus ``C2`` was inspected; all of them are postage, carriage, fees,
   manual adjustments, discounts, samples or commission, except ``DCGSSBOY`` / ``DCGSSGIRL``
   (party bags, real goods), which are kept.

``InvoiceDate`` is the shop's wall-clock time in London; :func:`event_times_utc` makes it an
aware UTC time (no trading happens in the DST-ambiguous night hours; ambiguous times would be read
as GMT, non-existent ones shifted forward).

Example::

    >>> raw = load_raw("data/online_retail.parquet")          # doctest: +SKIP
    >>> skus, start, units = daily_demand(clean(raw), top_n=500)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

MARKET_TZ = "Europe/London"

NON_PRODUCT_CODES: frozenset[str] = frozenset(
    {
        "POST",  # POSTAGE
        "DOT",  # DOTCOM POSTAGE
        "C2",  # CARRIAGE
        "M",  # Manual
        "D",  # Discount
        "S",  # SAMPLES
        "B",  # Adjust bad debt
        "BANK CHARGES",
        "AMAZONFEE",
        "CRUK",  # CRUK Commission
        "PADS",  # PADS TO MATCH ALL CUSHIONS, priced at 0.001
    }
)
GIFT_VOUCHER_PREFIX = "GIFT_"

ORDER_LINE_COLUMNS = [
    "order_id",
    "line",
    "sku",
    "quantity",
    "unit_price",
    "currency",
    "event_time",
    "category",
    "market",
    "customer_id",
]


def load_raw(path: str | Path) -> pd.DataFrame:
    """Read the parquet file as published and number each row within its invoice."""
    return number_lines(pd.read_parquet(path))


def number_lines(df: pd.DataFrame) -> pd.DataFrame:
    """Add ``Line``: 0-based row number within the invoice, in file order.

    Numbered before cleaning so an order line keeps the same ``order_id#line`` identity
    whatever the cleaning rules drop.
    """
    out = df.copy()
    out["Line"] = out.groupby("InvoiceNo", sort=False).cumcount().astype("int64")
    return out


def normalise_stock_codes(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["StockCode"] = out["StockCode"].astype("string").str.strip().str.upper()
    return out


def drop_missing_stock_codes(df: pd.DataFrame) -> pd.DataFrame:
    code = df["StockCode"].astype("string")
    return df[code.notna() & (code.str.strip() != "")]


def _is_cancellation(df: pd.DataFrame) -> pd.Series:
    return df["InvoiceNo"].astype(str).str.startswith("C")


def drop_reversed_lines(df: pd.DataFrame) -> pd.DataFrame:
    """Drop sales that a later cancellation of the same customer, code and quantity undoes.

    Each cancellation line cancels the latest earlier matching sale (at most one).
    """
    cancelled = _is_cancellation(df)
    keys = ["CustomerID", "StockCode", "units"]
    cancels = df.loc[cancelled & df["CustomerID"].notna(), ["InvoiceDate", "CustomerID", "StockCode"]]
    cancels = cancels.assign(units=-df.loc[cancels.index, "Quantity"])
    sales = df.loc[~cancelled & df["CustomerID"].notna(), ["InvoiceDate", "CustomerID", "StockCode"]]
    sales = sales.assign(units=df.loc[sales.index, "Quantity"], sale_row=sales.index)
    if cancels.empty or sales.empty:
        return df
    matched = pd.merge_asof(
        cancels.sort_values("InvoiceDate"),
        sales.sort_values("InvoiceDate"),
        on="InvoiceDate",
        by=keys,
        direction="backward",
    )["sale_row"].dropna()
    return df.drop(index=pd.Index(matched.unique()))


def drop_cancellations(df: pd.DataFrame) -> pd.DataFrame:
    return df[~_is_cancellation(df)]


def drop_non_positive_quantities(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["Quantity"] > 0]


def drop_non_positive_prices(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["UnitPrice"] > 0]


def drop_non_product_codes(df: pd.DataFrame) -> pd.DataFrame:
    code = df["StockCode"].astype("string").str.strip().str.upper()
    service = code.isin(NON_PRODUCT_CODES) | code.str.startswith(GIFT_VOUCHER_PREFIX)
    return df[~service.fillna(False).astype(bool)]


CLEANING_RULES: tuple[Callable[[pd.DataFrame], pd.DataFrame], ...] = (
    normalise_stock_codes,
    drop_missing_stock_codes,
    drop_reversed_lines,
    drop_cancellations,
    drop_non_positive_quantities,
    drop_non_positive_prices,
    drop_non_product_codes,
)


def clean(df: pd.DataFrame) -> pd.DataFrame:
    """Apply :data:`CLEANING_RULES` in order; the index of surviving rows is kept."""
    for rule in CLEANING_RULES:
        df = rule(df)
    return df


def event_times_utc(df: pd.DataFrame) -> pd.Series:
    """``InvoiceDate`` (London wall clock) as aware UTC timestamps."""
    local = pd.to_datetime(df["InvoiceDate"]).dt.tz_localize(MARKET_TZ, ambiguous=False, nonexistent="shift_forward")
    return local.dt.tz_convert("UTC")


def _local_dates(df: pd.DataFrame, tz: str) -> pd.Series:
    """Market-local calendar day of each row, as ``datetime64`` at midnight (naive)."""
    return event_times_utc(df).dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()


def rank_skus(df: pd.DataFrame) -> list[str]:
    """SKUs by number of order lines (descending), then total units, then code.

    Order lines rather than units: one bulk order should not make a SKU "top".
    """
    stats = df.groupby("StockCode", observed=True).agg(lines=("Quantity", "size"), units=("Quantity", "sum"))
    stats = stats.reset_index().sort_values(["lines", "units", "StockCode"], ascending=[False, False, True])
    return [str(code) for code in stats["StockCode"]]


def daily_demand(df: pd.DataFrame, tz: str = MARKET_TZ, top_n: int | None = 500) -> tuple[list[str], date, np.ndarray]:
    """Dense daily units of the ``top_n`` SKUs (see :func:`rank_skus`) of a cleaned frame.

    Returns ``(skus, start_date, units)`` where ``units[i, d]`` is the units of ``skus[i]`` sold
    on market-local day ``start_date + d`` (float32, zero on days without sales). The day range
    is the whole frame's, first to last sale of any SKU.
    """
    if df.empty:
        raise ValueError("no order lines left to aggregate")
    days = _local_dates(df, tz)
    start = days.min()
    n_days = int((days.max() - start).days) + 1
    skus = rank_skus(df)[: top_n if top_n is not None else None]
    row_of = {sku: i for i, sku in enumerate(skus)}
    rows = df["StockCode"].astype(str).map(row_of)
    keep = rows.notna().to_numpy()
    day_idx = ((days - start).dt.days).to_numpy()[keep]
    units = np.zeros((len(skus), n_days), dtype=np.float64)
    np.add.at(units, (rows.to_numpy()[keep].astype(np.int64), day_idx), df["Quantity"].to_numpy()[keep])
    return skus, start.date(), units.astype(np.float32)


def _customer_ids(values: pd.Series) -> list[str | None]:
    """``17850.0`` -> ``"17850"``; missing -> ``None``."""
    return [None if pd.isna(v) else str(int(v)) for v in values]


def to_order_lines(df: pd.DataFrame) -> pd.DataFrame:
    """The cleaned order lines as replayable events, in event-time order.

    Columns: :data:`ORDER_LINE_COLUMNS`; ``event_time`` is aware UTC, ``currency`` GBP,
    ``market`` UK, ``category`` None. Ties in time keep invoice then line order.
    """
    lines = df["Line"] if "Line" in df else df.groupby("InvoiceNo", sort=False).cumcount()
    out = pd.DataFrame(
        {
            "order_id": df["InvoiceNo"].astype(str),
            "line": lines.astype("int64"),
            "sku": df["StockCode"].astype(str).str.strip().str.upper(),
            "quantity": df["Quantity"].astype("int64"),
            "unit_price": df["UnitPrice"].astype("float64"),
            "currency": "GBP",
            "event_time": event_times_utc(df),
            "category": None,
            "market": "UK",
            "customer_id": pd.Series(_customer_ids(df["CustomerID"]), index=df.index, dtype=object),
        },
        index=df.index,
    )
    out = out.sort_values(["event_time", "order_id", "line"], kind="stable")
    return out.reset_index(drop=True)[ORDER_LINE_COLUMNS]
