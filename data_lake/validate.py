"""Schema conformance and row invariants of the canonical tables.

`conform` maps a DataFrame or Arrow table onto a table's exact schema. `ROW_CHECKS` are SQL
predicates that are TRUE for a bad row; the lake refuses a write holding any, and the ingest
layer evaluates the same predicates first to quarantine bad rows with their reason.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eventvol.data_lake.errors import SchemaError, ValidationError
from eventvol.data_lake.schemas import TableSpec

# (column blamed, SQL predicate true for a bad row, reason)
ROW_CHECKS: dict[str, list[tuple[str, str, str]]] = {
    "option_quotes": [
        ("bid", "bid > ask", "crossed quote: bid > ask"),
        ("bid", "bid < 0", "negative bid"),
        ("ask", "ask < 0", "negative ask"),
        ("strike", "strike <= 0", "strike must be positive"),
        ("open_interest", "open_interest < 0", "negative open interest"),
        ("volume", "volume < 0", "negative volume"),
        ("iv", "iv <= 0 OR iv > 10", "iv outside (0, 10]"),
        ("expiration", "expiration < trade_date", "expiration before trade date"),
        ("underlying_price", "underlying_price <= 0", "underlying price must be positive"),
        ("multiplier", "multiplier <= 0", "multiplier must be positive"),
        ("available_ts", "available_ts < quote_ts", "available_ts before quote_ts"),
    ],
    "bars": [
        ("close", "close <= 0", "close must be positive"),
        ("open", "open <= 0", "open must be positive"),
        ("high", "high < low", "high below low"),
        ("volume", "volume < 0", "negative volume"),
    ],
    "index_members": [("end_date", "end_date < start_date", "end_date before start_date")],
    "index_weights": [("weight", "weight < 0 OR weight > 1", "weight outside [0, 1]")],
    "letf_funds": [("aum", "aum < 0", "negative aum")],
    "short_interest": [
        ("shares_short", "shares_short < 0", "negative shares short"),
        ("publish_date", "publish_date < settlement_date", "published before settlement"),
    ],
    "rates": [("tenor_days", "tenor_days <= 0", "tenor must be positive")],
}


def _to_arrow_column(values, field: pa.Field, table: str) -> pa.Array:
    try:
        if isinstance(values, pd.Series):
            if pa.types.is_date32(field.type) and values.dtype.kind == "M":
                values = values.dt.date
            arr = pa.array(values, from_pandas=True)
        else:
            arr = values
        if isinstance(arr, pa.ChunkedArray) and arr.num_chunks == 1:
            # several chunks stay chunked: the write's sort copies every column once anyway
            arr = arr.chunk(0)
        if arr.type == field.type:
            return arr
        if pa.types.is_timestamp(field.type) and pa.types.is_timestamp(arr.type) and arr.type.tz is None:
            # naive timestamps are taken as UTC, the lake's storage convention.
            arr = pc.assume_timezone(arr, "UTC")
        return arr.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, ValueError, TypeError) as exc:
        raise SchemaError(
            f"column {field.name!r} of table {table!r} cannot be read as {field.type}: {exc}"
        ) from None


def conform(spec: TableSpec, data: pd.DataFrame | pa.Table) -> pa.Table:
    """Return `data` with exactly the table's columns and types, refusing unknown or missing
    required columns with a one-sentence error."""
    names = list(data.columns) if isinstance(data, pd.DataFrame) else data.column_names
    unknown = [c for c in names if c not in spec.schema.names]
    if unknown:
        raise SchemaError(f"table {spec.name!r} has no column {unknown[0]!r}")
    n = len(data)
    arrays = []
    for field in spec.schema:
        if field.name in names:
            values = data[field.name] if isinstance(data, pd.DataFrame) else data.column(field.name)
            arrays.append(_to_arrow_column(values, field, spec.name))
        elif field.name in spec.required:
            raise SchemaError(f"table {spec.name!r} requires column {field.name!r}, which is missing")
        else:
            arrays.append(pa.nulls(n, type=field.type))
    return pa.Table.from_arrays(arrays, schema=spec.schema)


def lake_order(spec: TableSpec, tbl: pa.Table) -> pa.Array:
    """Indices putting `tbl` in the order its files store (`spec.order`, ascending, NULLs last,
    NaN after every number and before NULL: DuckDB's `ORDER BY`). With unique keys the order
    is total (it holds every key column), so any correct sort gives the same rows."""
    cols = [c for c in spec.order if c in tbl.column_names]  # all of them, or the key columns only
    return pc.sort_indices(tbl, sort_keys=[(c, "ascending", "at_end") for c in cols])


def _same_as_next(col: pa.Array) -> pa.Array:
    """Row i equals row i+1 the way GROUP BY groups (NULL with NULL, NaN with NaN)."""
    a, b = col.slice(0, len(col) - 1), col.slice(1)
    same = pc.fill_null(pc.equal(a, b), False)
    same = pc.or_(same, pc.and_(pc.is_null(a), pc.is_null(b)))
    if pa.types.is_floating(col.type):
        same = pc.or_(same, pc.fill_null(pc.and_(pc.is_nan(a), pc.is_nan(b)), False))
    return same


def keys_unique_sorted(spec: TableSpec, tbl: pa.Table) -> bool:
    """True when no two rows of `tbl`, already in `lake_order`, share a key: in that order rows
    sharing a key are neighbours, so comparing each row with the next replaces a GROUP BY
    over the keys (several times faster). False means "maybe": the caller then runs the exact
    GROUP BY, so a false alarm (-0.0 beside 0.0) costs time, never a verdict."""
    if tbl.num_rows < 2:
        return True
    if set(spec.order[:len(spec.key)]) != set(spec.key):
        return False  # a non-key column sorts before a key column: neighbours prove nothing
    same = None
    for k in spec.key:
        col = tbl.column(k)
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        eq = _same_as_next(col)
        same = eq if same is None else pc.and_(same, eq)
    return not pc.any(same).as_py()


def keys_unique(spec: TableSpec, tbl: pa.Table) -> bool:
    """`keys_unique_sorted` for rows in any order: sorts the key columns only. False means
    "maybe" (run the exact GROUP BY)."""
    if set(spec.order[:len(spec.key)]) != set(spec.key):
        return False
    keys = tbl.select(list(spec.key))
    return keys_unique_sorted(spec, keys.take(lake_order(spec, keys)))


def validate(spec: TableSpec, tbl: pa.Table, con: duckdb.DuckDBPyConnection, *,
             keys_unique: bool = False) -> pa.Table:
    """Check required columns, enums, row invariants and key uniqueness. Identical duplicate
    rows collapse; anything else raises `ValidationError` naming row and column.
    `keys_unique=True` says the caller has established (`keys_unique_sorted`) that no key
    repeats, which skips the GROUP BY over the keys; every other check still runs."""
    for col in spec.required:
        nulls = pc.is_null(tbl.column(col))
        if pc.any(nulls).as_py():
            row = pc.index(nulls, True).as_py()
            raise ValidationError(f"table {spec.name!r}: row {row} has no value in required column {col!r}")
    for col, allowed in spec.enums.items():
        bad = pc.invert(pc.is_in(tbl.column(col), value_set=pa.array(allowed)))
        bad = pc.and_kleene(bad, pc.is_valid(tbl.column(col)))
        if pc.any(bad).as_py():
            row = pc.index(bad, True).as_py()
            raise ValidationError(
                f"table {spec.name!r}: row {row} column {col!r} is {tbl.column(col)[row].as_py()!r}, "
                f"expected one of {', '.join(allowed)}"
            )
    con.register("__validate", tbl)
    try:
        checks = ROW_CHECKS.get(spec.name, [])
        if checks:
            # one pass over the rows for all checks (the first row failing each check), then the
            # first check in order that failed, as checking them one by one would report
            firsts = ", ".join(f"min(rn) FILTER (WHERE coalesce({bad_sql}, false))" for _, bad_sql, _ in checks)
            hits = con.execute(
                f"SELECT {firsts} FROM (SELECT row_number() OVER () - 1 AS rn, * FROM __validate)"
            ).fetchall()[0]
            for (col, _, reason), row in zip(checks, hits):
                if row is not None:
                    raise ValidationError(f"table {spec.name!r}: row {row} column {col!r}: {reason}")
        if keys_unique:
            return tbl
        keys = ", ".join(f'"{k}"' for k in spec.key)
        dup = con.execute(
            f"SELECT count(*) FROM (SELECT {keys} FROM __validate GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
        if dup:
            tbl = con.sql("SELECT DISTINCT * FROM __validate").to_arrow_table().cast(spec.schema)
            con.register("__validate", tbl)
            conflict = con.execute(
                f"SELECT {keys} FROM __validate GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
            ).fetchall()
            if conflict:
                conflict = conflict[0]
                raise ValidationError(
                    f"table {spec.name!r}: conflicting rows share the key "
                    f"({', '.join(spec.key)}) = {tuple(str(v) for v in conflict)}"
                )
    finally:
        con.unregister("__validate")
    return tbl
