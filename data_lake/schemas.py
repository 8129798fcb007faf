"""Canonical tables of the lake: columns, types, keys, partitioning and point-in-time columns.

These are the contract between layers (see ARCHITECTURE.md). Units: prices and strikes in
dollars, IV as a decimal, vega per 1 vol point, theta per calendar day, timestamps in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSpec:
    """How one canonical table is stored.

    `partition_col` is the DATE (or TIMESTAMP) column whose year/month name the hive
    partition; None stores the table as one unpartitioned file. `known_col` is the column
    that says when a row became known, used by `as_of` reads.
    """

    name: str
    schema: pa.Schema
    key: tuple[str, ...]
    partition_col: str | None = None
    sort_by: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    known_col: str | None = None
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def order(self) -> tuple[str, ...]:
        """Sort order within a file: `sort_by`, then any key column not already in it."""
        return tuple(self.sort_by) + tuple(k for k in self.key if k not in self.sort_by)

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)


def _spec(name, fields, key, **kw) -> TableSpec:
    schema = pa.schema([pa.field(n, t) for n, t in fields])
    required = tuple(kw.pop("required", ())) or tuple(key)
    return TableSpec(name=name, schema=schema, key=tuple(key), required=required, **kw)


OPTION_QUOTES = _spec(
    "option_quotes",
    [
        ("trade_date", pa.date32()),
        ("quote_ts", UTC_TS),
        ("available_ts", UTC_TS),
        ("underlying", pa.string()),
        ("root", pa.string()),
        ("expiration", pa.date32()),
        ("settlement", pa.string()),
        ("strike", pa.float64()),
        ("option_type", pa.string()),
        ("bid", pa.float64()),
        ("ask", pa.float64()),
        ("volume", pa.int64()),
        ("open_interest", pa.int64()),
        ("iv", pa.float64()),
        ("delta", pa.float64()),
        ("gamma", pa.float64()),
        ("vega", pa.float64()),
        ("theta", pa.float64()),
        ("underlying_price", pa.float64()),
        ("multiplier", pa.int32()),
        ("vendor", pa.string()),
        ("ingest_id", pa.string()),
    ],
    # `vendor` is part of the key: a second vendor's chain lives beside the first instead of
    # replacing it; readers pick one vendor per (underlying, trade_date) with
    # `data_lake.vendors.pick_vendor` (ARCHITECTURE, decisions of the second round).
    key=("trade_date", "underlying", "root", "expiration", "strike", "option_type", "vendor"),
    partition_col="trade_date",
    # underlying first so that row-group min/max statistics prune by symbol; vendor last, so a
    # single-vendor lake's files are byte-identical to those written before vendor joined the key
    sort_by=("underlying", "trade_date", "root", "expiration", "strike", "option_type", "vendor"),
    required=(
        "trade_date", "quote_ts", "available_ts", "underlying", "root", "expiration",
        "settlement", "strike", "option_type", "underlying_price", "multiplier", "vendor",
    ),
    known_col="available_ts",
    enums={"option_type": ("C", "P"), "settlement": ("AM", "PM")},
)

BARS = _spec(
    "bars",
    [
        ("trade_date", pa.date32()),
        ("symbol", pa.string()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.int64()),
    ],
    key=("trade_date", "symbol"),
    partition_col="trade_date",
    sort_by=("symbol", "trade_date"),
    required=("trade_date", "symbol", "close"),
)

CORPORATE_ACTIONS = _spec(
    "corporate_actions",
    [
        ("symbol", pa.string()),
        ("ex_date", pa.date32()),
        ("kind", pa.string()),
        ("ratio", pa.float64()),
        ("amount", pa.float64()),
        ("known_at", UTC_TS),
    ],
    key=("symbol", "ex_date", "kind"),
    partition_col="ex_date",
    known_col="known_at",
)

INDEX_MEMBERS = _spec(
    "index_members",
    [
        ("index", pa.string()),
        ("symbol", pa.string()),
        ("start_date", pa.date32()),
        ("end_date", pa.date32()),
        # when the membership became known (UTC); as_of reads hide later rows, so a membership
        # published after the fact (backdated start_date) cannot leak into earlier decisions.
        # NULL in files written before the column existed: see MEMBERS_KNOWN_DEFAULT in docs/ingest.md
        ("known_at", UTC_TS),
    ],
    key=("index", "symbol", "start_date"),
    required=("index", "symbol", "start_date"),
    known_col="known_at",
)

INDEX_WEIGHTS = _spec(
    "index_weights",
    [
        ("index", pa.string()),
        ("symbol", pa.string()),
        ("as_of", pa.date32()),
        ("weight", pa.float64()),
        ("known_at", UTC_TS),
    ],
    key=("index", "symbol", "as_of"),
    partition_col="as_of",
    sort_by=("index", "as_of", "symbol"),
    required=("index", "symbol", "as_of", "weight"),
    known_col="known_at",
)

EVENTS = _spec(
    "events",
    [
        ("event_id", pa.string()),
        ("kind", pa.string()),
        ("symbol", pa.string()),
        ("scheduled_ts", UTC_TS),
        ("timing", pa.string()),
        ("reaction_session", pa.date32()),
        ("known_at", UTC_TS),
        ("source", pa.string()),
        ("payload", pa.string()),
    ],
    key=("event_id",),
    partition_col="scheduled_ts",
    sort_by=("kind", "scheduled_ts", "event_id"),
    required=("event_id", "kind", "scheduled_ts", "timing"),
    known_col="known_at",
    enums={"timing": ("BMO", "AMC", "INTRADAY", "UNKNOWN")},
)

RATES = _spec(
    "rates",
    [("trade_date", pa.date32()), ("tenor_days", pa.int32()), ("rate", pa.float64())],
    key=("trade_date", "tenor_days"),
    partition_col="trade_date",
    required=("trade_date", "tenor_days", "rate"),
)

LETF_FUNDS = _spec(
    "letf_funds",
    [
        ("trade_date", pa.date32()),
        ("fund", pa.string()),
        ("benchmark", pa.string()),
        ("leverage", pa.float64()),
        ("aum", pa.float64()),
    ],
    key=("trade_date", "fund"),
    partition_col="trade_date",
    required=("trade_date", "fund", "benchmark", "leverage", "aum"),
)

SHORT_INTEREST = _spec(
    "short_interest",
    [
        ("settlement_date", pa.date32()),
        ("publish_date", pa.date32()),
        ("symbol", pa.string()),
        ("shares_short", pa.int64()),
        ("float_shares", pa.int64()),
    ],
    key=("settlement_date", "symbol"),
    partition_col="settlement_date",
    required=("settlement_date", "publish_date", "symbol", "shares_short"),
    known_col="publish_date",
)

FACTOR_RETURNS = _spec(
    "factor_returns",
    [("period", pa.date32()), ("factor", pa.string()), ("value", pa.float64())],
    key=("period", "factor"),
    required=("period", "factor", "value"),
)

FACTORS = _spec(
    "factors",
    [
        ("factor", pa.string()),
        ("trade_date", pa.date32()),
        ("entity", pa.string()),
        ("value", pa.float64()),
        ("run_id", pa.string()),
    ],
    key=("factor", "trade_date", "entity"),
    partition_col="trade_date",
    sort_by=("factor", "entity", "trade_date"),
    required=("factor", "trade_date", "entity"),
)

RUNS = _spec(
    "runs",
    [
        ("run_id", pa.string()),
        ("command", pa.string()),
        ("started_at", UTC_TS),
        ("finished_at", UTC_TS),
        ("status", pa.string()),
        ("params", pa.string()),
        ("input_fingerprint", pa.string()),
        ("rows_written", pa.int64()),
        ("message", pa.string()),
    ],
    key=("run_id",),
    required=("run_id", "command", "started_at", "status"),
)

REFRESH_STATE = _spec(
    "refresh_state",
    [
        ("family", pa.string()),
        ("trade_date", pa.date32()),
        ("input_fingerprint", pa.string()),
        ("run_id", pa.string()),
        ("computed_at", UTC_TS),
        ("rows_written", pa.int64()),
    ],
    key=("family", "trade_date"),
    partition_col="trade_date",
    sort_by=("family", "trade_date"),
    required=("family", "trade_date", "input_fingerprint", "run_id"),
)
"""One row per refreshed (factor family, trade date) unit: the fingerprint of the input
partitions it was computed from (see pipelines/refresh.py). Written after the unit's factor
rows, so a crash in between only makes the unit due again."""

TRUTH = _spec(
    "truth",
    [
        ("mechanism", pa.string()),
        ("parameter", pa.string()),
        ("value", pa.float64()),
        ("description", pa.string()),
    ],
    key=("mechanism", "parameter"),
    required=("mechanism", "parameter", "value"),
)

# Columns added to a table after lakes with that table existed: files written before lack them.
# Reads see NULL there (schema evolution, `Lake` views); the next write of a partition rewrites
# its file with the column. `index_members.known_at`: NULL = written before the column, read as
# known at the open of start_date by the factor pipelines (docs/ingest.md).
ADDED_COLUMNS: dict[str, tuple[str, ...]] = {"index_members": ("known_at",)}

TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        OPTION_QUOTES, BARS, CORPORATE_ACTIONS, INDEX_MEMBERS, INDEX_WEIGHTS, EVENTS, RATES,
        LETF_FUNDS, SHORT_INTEREST, FACTOR_RETURNS, FACTORS, RUNS, TRUTH, REFRESH_STATE,
    )
}


def spec(table: str) -> TableSpec:
    """The spec of a canonical table; unknown names are a one-sentence error."""
    from eventvol.data_lake.errors import SchemaError

    try:
        return TABLES[table]
    except KeyError:
        raise SchemaError(f"unknown table {table!r}; known tables: {', '.join(TABLES)}") from None


_DUCK_TYPES = {
    pa.date32(): "DATE",
    UTC_TS: "TIMESTAMPTZ",
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
}


def duckdb_type(t: pa.DataType) -> str:
    return _DUCK_TYPES[t]
