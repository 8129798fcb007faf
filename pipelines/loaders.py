"""I/O for the pipelines: read lake tables into the arrays the pure factor code computes on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_lake import Lake, NoDataError
from data_lake.store import where_sql

CHAIN_COLUMNS = [
    "underlying", "trade_date", "root", "expiration", "settlement", "strike", "option_type",
    "bid", "ask", "volume", "open_interest", "iv", "underlying_price", "multiplier",
]


# the option_quotes columns the dealer-positioning (`gex`) family reads: no bid/ask/root
GEX_COLUMNS = ["underlying", "trade_date", "expiration", "settlement", "strike", "option_type", "volume",
               "open_interest", "iv", "underlying_price", "multiplier"]

# The same columns as DuckDB hands them to numpy: the two string flags become BOOLEAN and every
# number DOUBLE (nulls -> NaN) in the scan, so no string or integer column crosses into Python.
# Dates stay date32 (zero-copy to int32 day numbers). `{src}` is a table, view or read_parquet().
GEX_SELECT = (
    "underlying, trade_date, expiration, "
    "coalesce(settlement = 'AM', false) AS is_am, coalesce(option_type = 'C', false) AS is_call, "
    "CAST(strike AS DOUBLE) AS strike, CAST(volume AS DOUBLE) AS volume, "
    "CAST(open_interest AS DOUBLE) AS open_interest, CAST(iv AS DOUBLE) AS iv, "
    "CAST(underlying_price AS DOUBLE) AS underlying_price, CAST(multiplier AS DOUBLE) AS multiplier"
)
CHAIN_ORDER = "underlying, trade_date, root, expiration, strike, option_type"


def month_ranges(lake: Lake, table: str, start=None, end=None) -> list[tuple[dt.date, dt.date]]:
    """[first day, last day] of each month partition of `table`, clipped to [start, end]."""
    out = []
    lo = pd.Timestamp(start).date() if start is not None else None
    hi = pd.Timestamp(end).date() if end is not None else None
    for y, m in lake.partitions(table):
        first = dt.date(y, m, 1)
        last = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
        if (hi and first > hi) or (lo and last < lo):
            continue
        out.append((max(first, lo) if lo else first, min(last, hi) if hi else last))
    return out


def load_chains(lake: Lake, *, underlying: str | None = None, start=None, end=None,
                as_of=None, columns: list[str] | None = None) -> pa.Table:
    """Option rows as Arrow, sorted by (underlying, trade_date, root, expiration, strike,
    option_type), filtered in the Parquet scan. `as_of` hides rows not yet available."""
    where, params = where_sql(equals={"underlying": underlying}, start=start, end=end)
    return lake.read_arrow("option_quotes", columns=columns or CHAIN_COLUMNS,
                           where=where, params=params, as_of=as_of)


def gex_chains_sql(src: str, where: str | None = None, *, ordered: bool = False) -> str:
    """SELECT of `GEX_SELECT` from `src`. Unordered, DuckDB keeps the order of the rows in the
    files (its default preserve_insertion_order), which the lake writes sorted by
    (underlying, trade_date, root, expiration, strike, option_type) in one file per month."""
    sql = f"SELECT {GEX_SELECT} FROM {src}" + (f" WHERE {where}" if where else "")
    return sql + (f" ORDER BY {CHAIN_ORDER}" if ordered else "")


def is_grouped(tbl: pa.Table, keys=("underlying", "trade_date")) -> bool:
    """True when rows are sorted by `keys` (so each group is contiguous)."""
    if tbl.num_rows < 2:
        return True
    ties = None
    for k in keys:
        col = tbl.column(k)
        a, b = col.slice(0, tbl.num_rows - 1), col.slice(1)
        less = pc.less(b, a).fill_null(False)
        bad = less if ties is None else pc.and_(ties, less)
        if pc.any(bad).as_py():
            return False
        eq = pc.equal(b, a).fill_null(True)
        ties = eq if ties is None else pc.and_(ties, eq)
    return True


def load_gex_chains(lake: Lake, *, underlying: str | None = None, start=None, end=None, as_of=None) -> pa.Table:
    """The `GEX_SELECT` columns of option rows, grouped by (underlying, trade_date) in the
    lake's row order, filtered in the Parquet scan. Read without ORDER BY (a sort of the whole
    range costs ~4x the scan); if the rows come back out of order anyway (several files in a
    partition), they are read again sorted. `as_of` hides rows not yet available."""
    where, params = where_sql(equals={"underlying": underlying}, start=start, end=end)
    if as_of is not None:
        ts = pd.Timestamp(as_of)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        where = (f"({where}) AND " if where else "") + '"available_ts" <= ?'
        params = [*params, ts.to_pydatetime()]
    tbl = lake.query(gex_chains_sql("option_quotes", where), params)
    if not is_grouped(tbl):
        tbl = lake.query(gex_chains_sql("option_quotes", where, ordered=True), params)
    return tbl


def load_rates(lake: Lake, *, start=None, end=None) -> pa.Table:
    """`rates` rows (trade_date, tenor_days, rate: continuous, decimal) for trade dates in
    [start, end], sorted by (trade_date, tenor_days). A rate is known at its trade date's close,
    which is when end-of-day chains are valued."""
    where, params = where_sql(start=start, end=end)
    return lake.read_arrow("rates", columns=["trade_date", "tenor_days", "rate"], where=where, params=params)


def day_numbers(col) -> np.ndarray:
    """Days since 1970-01-01 (int64) of a date32 / datetime64[D]-like column."""
    if isinstance(col, (pa.Array, pa.ChunkedArray)):
        return col.cast(pa.int32()).to_numpy().astype(np.int64)
    return np.asarray(col, dtype="datetime64[D]").astype(np.int64)


def column(tbl: pa.Table, name: str) -> np.ndarray:
    """A column as numpy: dates as datetime64[D], nulls as NaN for numbers."""
    col = tbl.column(name)
    if pa.types.is_integer(col.type) and col.null_count:
        col = col.cast(pa.float64())
    return col.to_numpy()


def group_ids(tbl: pa.Table, keys=("underlying", "trade_date")) -> tuple[np.ndarray, pd.DataFrame]:
    """Group id per row for contiguous groups of a table sorted by `keys`, and the keys of
    each group."""
    if tbl.num_rows == 0:
        return np.zeros(0, np.int64), pd.DataFrame(columns=list(keys))
    change = np.zeros(tbl.num_rows, bool)
    change[0] = True
    for k in keys:
        col = tbl.column(k)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            # adjacent comparison in Arrow: ~20x cheaper than dictionary-encoding the column
            ne = pc.not_equal(col.slice(1), col.slice(0, tbl.num_rows - 1)).fill_null(True)
            change[1:] |= ne.to_numpy(zero_copy_only=False)
        else:
            v = col.to_numpy()
            change[1:] |= v[1:] != v[:-1]
    gid = np.cumsum(change) - 1
    first = np.flatnonzero(change)
    return gid, pd.DataFrame({k: tbl.column(k).take(pa.array(first)).to_numpy(zero_copy_only=False) for k in keys})


def chain_for(lake: Lake, underlying: str, trade_date) -> pa.Table:
    """One (underlying, trade_date) chain; a one-sentence error when the lake lacks it."""
    d = pd.Timestamp(trade_date).date()
    df = load_chains(lake, underlying=underlying, start=d, end=d)
    if df.num_rows == 0:
        known = lake.query("SELECT count(*) AS n FROM option_quotes WHERE underlying = ?", [underlying])
        if known.column("n")[0].as_py() == 0:
            raise NoDataError(f"the lake has no option quotes for underlying {underlying!r}")
        raise NoDataError(f"the lake has no {underlying} option quotes on {d}")
    return df
