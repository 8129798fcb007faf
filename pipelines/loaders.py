"""I/O for the pipelines: read lake tables into the arrays the pure factor code computes on."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eventvol.data_lake import Lake, NoDataError
from eventvol.data_lake.schemas import spec
from eventvol.data_lake.store import where_sql
from eventvol.data_lake.vendors import pick_vendor
from eventvol.pipelines.columns import dictionary_codes

CHAIN_COLUMNS = [
    "underlying", "trade_date", "root", "expiration", "settlement", "strike", "option_type",
    "bid", "ask", "volume", "open_interest", "iv", "underlying_price", "multiplier", "vendor",
]


# the option_quotes columns the dealer-positioning (`gex`) family reads with its default IV
# source (`otm`: root pairs a call with its put, vendor names the vendor's IV floor): no bid/ask
GEX_COLUMNS = ["underlying", "trade_date", "root", "expiration", "settlement", "strike", "option_type", "volume",
               "open_interest", "iv", "underlying_price", "multiplier", "vendor"]
# and with IV source `solved` (mid quotes)
GEX_SOLVED_COLUMNS = GEX_COLUMNS + ["bid", "ask"]

# string columns of GEX_COLUMNS read dictionary-encoded (as Parquet stores them): a code per row,
# never a Python or Arrow string per row
GEX_DICTIONARY = ("underlying", "root", "settlement", "option_type", "vendor")
GROUP_KEYS = ("underlying", "trade_date")


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
                as_of=None, columns: list[str] | None = None, vendors: list[str] | None = None) -> pa.Table:
    """Option rows as Arrow, sorted by (underlying, trade_date, root, expiration, strike,
    option_type), filtered in the Parquet scan, one vendor per (underlying, trade_date)
    (`data_lake.vendors.pick_vendor`: `vendors` order, else the lake's). `as_of` hides rows
    not yet available (before the vendor is picked)."""
    where, params = where_sql(equals={"underlying": underlying}, start=start, end=end)
    cols = list(columns or CHAIN_COLUMNS)
    read = cols + [c for c in ("underlying", "trade_date", "vendor") if c not in cols]
    tbl = pick_vendor(lake.read_arrow("option_quotes", columns=read, where=where, params=params, as_of=as_of),
                      vendors, lake=lake)
    return tbl.select(cols)


def _row_codes(col: pa.ChunkedArray) -> np.ndarray:
    """Numbers per row that change exactly where the column's value changes (for adjacent-row
    comparisons): dictionary codes, day numbers or the values themselves."""
    if pa.types.is_dictionary(col.type):
        return dictionary_codes(col)[0]
    if pa.types.is_date32(col.type):
        return col.cast(pa.int32()).to_numpy()
    return col.to_numpy()


def is_grouped(tbl: pa.Table, keys=GROUP_KEYS) -> bool:
    """True when rows are sorted by `keys` (so each group is contiguous): the keys of the
    successive runs of equal keys strictly increase."""
    if tbl.num_rows < 2:
        return True
    first = group_ids(tbl, keys)[1]
    if len(first) < 2:
        return True
    idx = pd.MultiIndex.from_frame(first)
    return bool(idx.is_monotonic_increasing and idx.is_unique)


def load_gex_chains(lake: Lake, *, underlying: str | None = None, start=None, end=None, as_of=None,
                    columns: list[str] | None = None, vendors: list[str] | None = None) -> pa.Table:
    """The `GEX_COLUMNS` (or `columns`, e.g. `GEX_SOLVED_COLUMNS`) of option rows in their
    stored types, the `GEX_DICTIONARY` strings
    dictionary-encoded, grouped by (underlying, trade_date). Read partition by partition by
    Arrow's Parquet reader in the lake's row order, which the lake writes sorted by
    (underlying, trade_date, root, expiration, strike, option_type): no sort. Rows that come
    back out of order anyway (a file written by something else) are sorted by the group keys
    (stable). `as_of` hides rows not yet available. One vendor per (underlying, trade_date):
    `data_lake.vendors.pick_vendor` with the `vendors` order, else the lake's; the `vendor`
    column stays (it names the vendor's IV floor, `pipelines.ivsource`)."""
    columns = columns or GEX_COLUMNS
    parts = [pick_vendor(p, vendors, lake=lake)
             for p in lake.scan_partitions("option_quotes", columns=columns,
                                           equals={"underlying": underlying}, start=start, end=end, as_of=as_of,
                                           dictionary=GEX_DICTIONARY)]
    parts = [p for p in parts if p.num_rows]
    if not parts:
        schema = pa.schema([(c, pa.dictionary(pa.int32(), pa.string()) if c in GEX_DICTIONARY else
                             spec("option_quotes").schema.field(c).type) for c in columns])
        return schema.empty_table()
    return grouped_chains_of(parts)


def grouped_chains_of(parts: list[pa.Table]) -> pa.Table:
    """Partition tables (as `Lake.scan_partitions` reads them) as one table, dictionaries
    unified, grouped by (underlying, trade_date)."""
    tbl = pa.concat_tables(parts).unify_dictionaries()
    if not is_grouped(tbl):
        tbl = tbl.take(sort_indices_by_keys(tbl))
    return tbl


def sort_indices_by_keys(tbl: pa.Table, keys=GROUP_KEYS) -> pa.Array:
    """Stable sort order of `tbl` by `keys` (dictionary columns by their string values)."""
    plain = pa.table({k: (tbl.column(k).cast(tbl.column(k).type.value_type)
                          if pa.types.is_dictionary(tbl.column(k).type) else tbl.column(k)) for k in keys})
    return pc.sort_indices(plain, sort_keys=[(k, "ascending") for k in keys])


def load_rates(lake: Lake, *, start=None, end=None) -> pa.Table:
    """`rates` rows (trade_date, tenor_days, rate: continuous, decimal) for trade dates in
    [start, end], sorted by (trade_date, tenor_days). A rate is known at its trade date's close,
    which is when end-of-day chains are valued. Read by Arrow's Parquet reader (no SQL layer:
    a lake without rates costs a directory listing)."""
    cols = ["trade_date", "tenor_days", "rate"]
    parts = list(lake.scan_partitions("rates", columns=cols, start=start, end=end))
    if not parts:
        return pa.schema([spec("rates").schema.field(c) for c in cols]).empty_table()
    tbl = pa.concat_tables(parts)
    return tbl.take(pc.sort_indices(tbl, sort_keys=[("trade_date", "ascending"), ("tenor_days", "ascending")]))


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


def group_ids(tbl: pa.Table, keys=GROUP_KEYS) -> tuple[np.ndarray, pd.DataFrame]:
    """Group id per row for contiguous groups of a table sorted by `keys`, and the keys of
    each group (strings as str, dates as datetime64)."""
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
            v = _row_codes(col)
            change[1:] |= v[1:] != v[:-1]
    gid = np.cumsum(change) - 1
    first = pa.array(np.flatnonzero(change))
    out = {}
    for k in keys:
        col = tbl.column(k).take(first)
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        out[k] = col.to_numpy(zero_copy_only=False)
    return gid, pd.DataFrame(out)


def chain_for(lake: Lake, underlying: str, trade_date) -> pa.Table:
    """One (underlying, trade_date) chain; a one-sentence error when the lake lacks it."""
    d = pd.Timestamp(trade_date).date()
    df = load_chains(lake, underlying=underlying, start=d, end=d)
    if df.num_rows == 0:
        raise_no_chain(lake, underlying, d)
    return df


def gex_chain_for(lake: Lake, underlying: str, trade_date, columns: list[str] | None = None,
                  vendors: list[str] | None = None) -> pa.Table:
    """One (underlying, trade_date) chain as `load_gex_chains` reads it (the `columns`, default
    `GEX_COLUMNS`, strings dictionary-encoded, one vendor): the Arrow path, no SQL layer; a
    one-sentence error when the lake lacks it."""
    d = pd.Timestamp(trade_date).date()
    tbl = load_gex_chains(lake, underlying=underlying, start=d, end=d, columns=columns, vendors=vendors)
    if tbl.num_rows == 0:
        raise_no_chain(lake, underlying, d)
    return tbl


def raise_no_chain(lake: Lake, underlying: str, d: dt.date) -> None:
    known = lake.query("SELECT count(*) AS n FROM option_quotes WHERE underlying = ?", [underlying])
    if known.column("n")[0].as_py() == 0:
        raise NoDataError(f"the lake has no option quotes for underlying {underlying!r}")
    raise NoDataError(f"the lake has no {underlying} option quotes on {d}")
