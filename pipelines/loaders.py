"""I/O for the pipelines: read lake tables into the arrays the pure factor code computes on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from data_lake import Lake, NoDataError
from data_lake.store import where_sql

CHAIN_COLUMNS = [
    "underlying", "trade_date", "root", "expiration", "settlement", "strike", "option_type",
    "bid", "ask", "volume", "open_interest", "iv", "underlying_price", "multiplier",
]


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
        v = col.dictionary_encode().combine_chunks().indices.to_numpy() if pa.types.is_string(col.type) else col.to_numpy()
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
