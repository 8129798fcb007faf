"""What a lake holds, and read-only SQL over its canonical tables (the notebook view)."""

from __future__ import annotations

import duckdb
import pandas as pd

from eventvol.data_lake.errors import EventvolError
from eventvol.data_lake.schemas import TABLES

INFO_COLUMNS = ["table", "rows", "first", "last", "entities", "vendors", "partitions", "bytes", "date_column", "files"]

# The column naming what a row is about, per table (counted as `entities`); tables without one
# (rates, runs, truth) report <NA>.
ENTITY_COLUMNS = {
    "option_quotes": "underlying", "bars": "symbol", "corporate_actions": "symbol", "index_members": "symbol",
    "index_weights": "symbol", "events": "symbol", "letf_funds": "fund", "short_interest": "symbol",
    "factor_returns": "factor", "factors": "entity", "refresh_state": "family",
}


class ReadOnlyQueryError(EventvolError):
    """A query given to `Lake.sql` that is not one read-only SELECT."""


def lake_info(lake) -> pd.DataFrame:
    """One row per canonical table: `rows`; the `first` and `last` value of its date column
    (`date_column`: the partition column, e.g. trade_date; NaT for unpartitioned tables or no
    rows); `entities`: distinct underlyings/symbols/entities (ENTITY_COLUMNS; <NA> where a
    table has none); `vendors`: the distinct `vendor` values, comma-separated (None where the
    table has no vendor column); `partitions`: month partitions (1 for an unpartitioned table
    with files); the number of Parquet `files` and their `bytes` on disk. Empty tables are
    listed with 0 rows."""
    rows = []
    for s in TABLES.values():
        files = lake.files(s.name)
        n, first, last, entities, vendors = 0, pd.NaT, pd.NaT, 0, ""
        ent = ENTITY_COLUMNS.get(s.name)
        has_vendor = "vendor" in s.columns
        if files:
            col = f'"{s.partition_col}"' if s.partition_col else "NULL"
            ent_sql = f'count(DISTINCT "{ent}")' if ent else "0"
            vendor_sql = "string_agg(DISTINCT vendor, ',' ORDER BY vendor)" if has_vendor else "NULL"
            # through `query`: a damaged part is named in one sentence, not a DuckDB error
            n, first, last, entities, vendors = lake.query(
                f'SELECT count(*), min({col}), max({col}), {ent_sql}, {vendor_sql} FROM "{s.name}"').to_pylist()[0].values()
        partitions = len({f.parent for f in files}) if s.partition_col else int(bool(files))
        rows.append({"table": s.name, "rows": int(n), "first": _ts(first), "last": _ts(last),
                     "entities": int(entities) if ent else pd.NA,
                     "vendors": (vendors or "") if has_vendor else None,
                     "partitions": partitions, "bytes": int(sum(f.stat().st_size for f in files)),
                     "date_column": s.partition_col, "files": len(files)})
    out = pd.DataFrame(rows, columns=INFO_COLUMNS)
    out["entities"] = out["entities"].astype("Int64")
    return out


def _ts(v) -> pd.Timestamp:
    if v is None or v is pd.NaT:
        return pd.NaT
    t = pd.Timestamp(v)
    return t.tz_convert("UTC").tz_localize(None) if t.tzinfo is not None else t


def read_only_sql(lake, query: str, params: list | dict | None = None) -> pd.DataFrame:
    """Run one SELECT (WITH ... SELECT, DESCRIBE, SUMMARIZE count as SELECT) over the lake's
    views and return a DataFrame. Anything else (COPY, CREATE, INSERT, ATTACH, SET, several
    statements) is refused before it runs, so a notebook query cannot change the lake."""
    try:
        statements = duckdb.connect().extract_statements(query)
    except duckdb.Error as exc:
        raise ReadOnlyQueryError(f"the query does not parse: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise ReadOnlyQueryError(f"give one SELECT statement, not {len(statements)} statements")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ReadOnlyQueryError(f"lake.sql runs read-only SELECT queries only, not a {kind.name} statement")
    try:
        lake.con  # every view: a notebook may ask the catalog (SHOW TABLES) as well as a table
        return lake.df(query, params)
    except duckdb.Error as exc:
        raise ReadOnlyQueryError(f"the query failed: {str(exc).splitlines()[0]}") from None
