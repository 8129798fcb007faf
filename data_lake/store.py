"""The lake: hive-partitioned Parquet files read through DuckDB, written atomically.

Write path (one writer at a time, under `locks/writer.lock`):
  conform -> validate -> for every partition touched, merge with the existing file by key
  and write a new content-addressed file into `staging/<txn>/` -> commit a journal
  (atomic rename) -> move the new files into place and delete the files they replace.
A crash before the journal commit leaves the old partitions (staging is discarded on the
next open); a crash after it is rolled forward on the next open. Readers never open
`catalog.duckdb`: they use an in-memory DuckDB with views over the Parquet globs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from eventvol.data_lake.errors import LakeNotFoundError, NoDataError
from eventvol.data_lake.lock import WriterLock
from eventvol.data_lake.schemas import ADDED_COLUMNS, TABLES, TableSpec, duckdb_type, spec
from eventvol.data_lake.validate import conform, validate

MARKER = "lake.json"
FORMAT_VERSION = 1
ROW_GROUP_ROWS = 128 * 1024


@dataclass
class WriteResult:
    """What one `Lake.write` did. Partitions are 'year=YYYY/month=MM' (or '' if unpartitioned)."""

    table: str
    rows: int
    partitions_written: list[str] = field(default_factory=list)
    partitions_unchanged: list[str] = field(default_factory=list)


def where_sql(*, equals: dict[str, object] | None = None, date_col: str = "trade_date",
              start=None, end=None) -> tuple[str | None, list]:
    """A parameterized WHERE body (no keyword) for equality filters on trusted column names
    and an inclusive date range on `date_col`; (None, []) when nothing is filtered."""
    clauses, params = [], []
    for col, value in (equals or {}).items():
        if value is not None:
            clauses.append(f'"{col}" = ?')
            params.append(value)
    if start is not None:
        clauses.append(f'"{date_col}" >= ?')
        params.append(pd.Timestamp(start).date())
    if end is not None:
        clauses.append(f'"{date_col}" <= ?')
        params.append(pd.Timestamp(end).date())
    return (" AND ".join(clauses) or None), params


def default_lake_path() -> Path:
    return Path(os.environ.get("EVENTVOL_LAKE", "lake"))


def partition_of(path: Path) -> tuple[int, int]:
    """(year, month) of a data file in a year=YYYY/month=MM partition folder."""
    return int(path.parent.parent.name.split("=")[1]), int(path.parent.name.split("=")[1])


def _known_bound(s: TableSpec, as_of) -> object:
    """The value a row's knowledge column must not exceed to be known at `as_of` (naive
    times are UTC): a date for `publish_date`, else a UTC datetime."""
    if s.known_col is None:
        raise NoDataError(f"table {s.name!r} has no point-in-time column for as_of reads")
    ts = pd.Timestamp(as_of)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.date() if s.known_col == "publish_date" else ts.to_pydatetime()


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:24]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Lake:
    """A lake directory. Use `Lake.open(path)`; `create=True` makes an empty lake."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.lock = WriterLock(self.root / "locks" / "writer.lock", self.root)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._empty_at_connect: list[str] = []

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, create: bool = False) -> "Lake":
        root = Path(path) if path is not None else default_lake_path()
        if not (root / MARKER).exists():
            if not create:
                raise LakeNotFoundError(f"no lake at {root}; create one with `eventvol demo --lake {root}` or `eventvol ingest`")
            if root.exists() and any(root.iterdir()):
                raise LakeNotFoundError(f"{root} exists and is not an eventvol lake; choose an empty or new folder")
            for sub in ("tables", "locks", "staging", "quarantine"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            (root / MARKER).write_text(json.dumps({"format_version": FORMAT_VERSION}) + "\n")
        lake = cls(root)
        lake._recover_if_idle()
        return lake

    # ------------------------------------------------------------------ layout
    def table_dir(self, table: str) -> Path:
        return self.root / "tables" / spec(table).name

    def files(self, table: str) -> list[Path]:
        """The visible data files of a table, sorted."""
        s = spec(table)
        pattern = "year=*/month=*/part-*.parquet" if s.partition_col else "part-*.parquet"
        return sorted(self.table_dir(table).glob(pattern))

    def partitions(self, table: str) -> list[tuple[int, int]]:
        """(year, month) of every partition of a date-partitioned table, ascending."""
        return sorted({partition_of(f) for f in self.files(table)})

    def _glob(self, s: TableSpec) -> str:
        sub = "year=*/month=*/part-*.parquet" if s.partition_col else "part-*.parquet"
        return str(self.root / "tables" / s.name / sub)

    def is_empty(self) -> bool:
        return not any(self.files(t) for t in TABLES)

    # ------------------------------------------------------------------ reading
    def _view_sql(self, s: TableSpec) -> str:
        files = self.files(s.name)
        if files and s.name in ADDED_COLUMNS:
            # files older than a column added to the table: NULL there (schema evolution)
            have: set[str] = set()
            for f in files:
                have |= set(pq.read_schema(f).names)
            if any(c not in have for c in s.columns):
                cols = ", ".join(f'"{f.name}"' if f.name in have else f'NULL::{duckdb_type(f.type)} AS "{f.name}"'
                                 for f in s.schema)
                return (f"SELECT {cols} FROM read_parquet({_sql_str(self._glob(s))}, hive_partitioning = false, "
                        "union_by_name = true)")
            return f"SELECT * FROM read_parquet({_sql_str(self._glob(s))}, hive_partitioning = false, union_by_name = true)"
        if files:
            return f"SELECT * FROM read_parquet({_sql_str(self._glob(s))}, hive_partitioning = false)"
        cols = ", ".join(f'NULL::{duckdb_type(f.type)} AS "{f.name}"' for f in s.schema)
        return f"SELECT {cols} WHERE false"

    def connect(self) -> duckdb.DuckDBPyConnection:
        """A fresh in-memory DuckDB connection with one view per canonical table."""
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        for s in TABLES.values():
            con.execute(f'CREATE OR REPLACE VIEW "{s.name}" AS {self._view_sql(s)}')
        return con

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """A cached connection; recreated when a table that was empty at connect time has
        files now (its view was an empty typed select, other views are live globs)."""
        if self._con is not None and any(self.files(t) for t in self._empty_at_connect):
            self._con = None
        if self._con is None:
            self._empty_at_connect = [t for t in TABLES if not self.files(t)]
            self._con = self.connect()
        return self._con

    def query(self, sql: str, params: list | dict | None = None, *,
              tables: dict[str, pa.Table | pd.DataFrame] | None = None) -> pa.Table:
        """Run parameterized SQL over the lake's views and return an Arrow table. `tables`
        registers in-memory frames (e.g. an event list to join) for this query only."""
        cur = self.con.cursor()
        try:
            for name, data in (tables or {}).items():
                cur.register(name, data)
            return cur.sql(sql, params=params or None).to_arrow_table()
        finally:
            cur.close()

    def df(self, sql: str, params: list | dict | None = None, **kw) -> pd.DataFrame:
        return self.query(sql, params, **kw).to_pandas()

    def info(self) -> pd.DataFrame:
        """Rows, first/last date, files and bytes per canonical table (see data_lake.overview)."""
        from eventvol.data_lake.overview import lake_info

        return lake_info(self)

    def sql(self, query: str, params: list | dict | None = None) -> pd.DataFrame:
        """One read-only SELECT over the canonical tables, as a DataFrame."""
        from eventvol.data_lake.overview import read_only_sql

        return read_only_sql(self, query, params)

    def read(self, table: str, **kw) -> pd.DataFrame:
        """Like `read_arrow`, as a pandas DataFrame."""
        return self.read_arrow(table, **kw).to_pandas()

    def read_arrow(
        self,
        table: str,
        *,
        columns: list[str] | None = None,
        where: str | None = None,
        params: list | None = None,
        as_of: datetime | pd.Timestamp | None = None,
    ) -> pa.Table:
        """Rows of `table` (filters pushed into the Parquet scan). With `as_of`, only rows whose
        knowledge column (`available_ts`, `known_at`, `publish_date`) is <= as_of."""
        s = spec(table)
        cols = ", ".join(f'"{c}"' for c in (columns or s.columns))
        if columns:
            unknown = [c for c in columns if c not in s.columns]
            if unknown:
                raise NoDataError(f"table {table!r} has no column {unknown[0]!r}")
        clauses, args = [], list(params or [])
        if where:
            clauses.append(f"({where})")
        if as_of is not None:
            args.append(_known_bound(s, as_of))
            clauses.append(f'"{s.known_col}" <= ?')
        sql = f'SELECT {cols} FROM "{s.name}"'
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        order = ", ".join(f'"{c}"' for c in s.order if c in (columns or s.columns))
        if order:
            sql += f" ORDER BY {order}"
        return self.query(sql, args)

    def scan_partitions(
        self,
        table: str,
        *,
        columns: list[str],
        equals: dict[str, object] | None = None,
        start=None,
        end=None,
        as_of: datetime | pd.Timestamp | None = None,
        dictionary: tuple[str, ...] = (),
    ) -> Iterator[pa.Table]:
        """Rows of a date-partitioned `table`, one Arrow table per month partition that can hold
        rows in [start, end], each in the file's own row order (the table's `sort_by`), read by
        Arrow's multi-threaded Parquet reader with the filters pushed into row-group statistics.

        The hot path for whole-history factor scans: no SQL layer and no conversion, so the
        columns keep their stored types, and `dictionary` string columns arrive dictionary-
        encoded as Parquet stores them (no string is materialized per row). `equals` filters
        columns on equality, `start`/`end` the partition column inclusively, `as_of` hides rows
        whose knowledge column is later (as `read_arrow`)."""
        s = spec(table)
        if s.partition_col is None:
            raise NoDataError(f"table {table!r} is not partitioned by date")
        unknown = [c for c in [*columns, *(equals or {})] if c not in s.columns]
        if unknown:
            raise NoDataError(f"table {table!r} has no column {unknown[0]!r}")
        expr = None

        def both(e):
            return e if expr is None else expr & e

        for col, value in (equals or {}).items():
            if value is not None:
                expr = both(pc.field(col) == value)
        lo = pd.Timestamp(start).date() if start is not None else None
        hi = pd.Timestamp(end).date() if end is not None else None
        if lo is not None:
            expr = both(pc.field(s.partition_col) >= pa.scalar(lo, pa.date32()))
        if hi is not None:
            expr = both(pc.field(s.partition_col) <= pa.scalar(hi, pa.date32()))
        if as_of is not None:
            bound = _known_bound(s, as_of)
            expr = both(pc.field(s.known_col) <= pa.scalar(bound, s.schema.field(s.known_col).type))
        for path in self.files(table):
            first = datetime(*partition_of(path), 1).date()
            last = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
            if (lo and last < lo) or (hi and first > hi):
                continue
            tbl = pq.read_table(path, columns=columns, filters=expr, read_dictionary=list(dictionary) or None,
                                partitioning=None)
            if tbl.num_rows:
                yield tbl

    # ------------------------------------------------------------------ writing
    @contextmanager
    def writer(self) -> Iterator["Lake"]:
        """Hold the single-writer lock for several writes (re-entrant)."""
        self.lock.acquire()
        try:
            self._recover()
            yield self
        finally:
            self.lock.release()

    def write(self, table: str, data: pd.DataFrame | pa.Table, *, mode: str = "upsert") -> WriteResult:
        """Validate `data` and write it atomically.

        mode='upsert' merges into each touched partition by key (new rows win);
        mode='replace' replaces each touched partition with the new rows only.
        """
        if mode not in ("upsert", "replace"):
            raise ValueError(f"unknown write mode {mode!r}")
        s = spec(table)
        with self.writer():
            was_empty = not self.files(table)
            con = self._scratch_con()
            tbl = validate(s, conform(s, data), con)
            result = self._write_partitions(s, tbl, mode, con)
            # views are globs, so only a table's first files change the catalog's SQL
            # (and a table that gained a column: its view may still add the column as NULL)
            if result.partitions_written and (was_empty or s.name in ADDED_COLUMNS
                                              or not (self.root / "catalog.duckdb").exists()):
                self._con = None
                self.rebuild_catalog()
            return result

    def _scratch_con(self) -> duckdb.DuckDBPyConnection:
        """The in-memory DuckDB connection writes validate and merge with (no lake views),
        created once per Lake: opening one costs 0.05-0.1 s, more than writing a small
        partition, and the refresh writes twice per batch. Writers unregister what they
        register."""
        if getattr(self, "_wcon", None) is None:
            self._wcon = duckdb.connect()
            self._wcon.execute("SET TimeZone = 'UTC'")
        return self._wcon

    def _partitions(self, s: TableSpec, tbl: pa.Table) -> Iterator[tuple[str, pa.Table]]:
        if s.partition_col is None:
            yield "", tbl
            return
        col = tbl.column(s.partition_col)
        ym = pc.add(pc.multiply(pc.year(col), 100), pc.month(col))
        values = sorted(pc.unique(ym).to_pylist())
        for value in values:
            name = f"year={value // 100:04d}/month={value % 100:02d}"
            # one month (the usual ingest or refresh): the table itself, not a filtered copy
            yield name, tbl if len(values) == 1 else tbl.filter(pc.equal(ym, value))

    def _merge(self, s: TableSpec, old: pa.Table | None, new: pa.Table, con) -> pa.Table:
        order = ", ".join(f'"{c}"' for c in s.order)
        con.register("__new", new)
        try:
            if old is None or old.num_rows == 0:
                sql = f"SELECT * FROM __new ORDER BY {order}"
            else:
                con.register("__old", old)
                keys = ", ".join(f'"{k}"' for k in s.key)
                sql = (
                    f"SELECT * FROM (SELECT * FROM __old ANTI JOIN __new USING ({keys}) "
                    f"UNION ALL SELECT * FROM __new) ORDER BY {order}"
                )
            return con.sql(sql).to_arrow_table().cast(s.schema)
        finally:
            con.unregister("__new")
            if old is not None:
                con.unregister("__old")

    def _write_partitions(self, s: TableSpec, tbl: pa.Table, mode: str, con) -> WriteResult:
        result = WriteResult(table=s.name, rows=tbl.num_rows)
        txn = self.root / "staging" / f"txn-{uuid.uuid4().hex}"
        txn.mkdir(parents=True)
        moves: list[tuple[str, str]] = []
        deletes: list[str] = []
        try:
            for part, rows in self._partitions(s, tbl):
                part_dir = self.table_dir(s.name) / part if part else self.table_dir(s.name)
                existing = sorted(part_dir.glob("part-*.parquet")) if part_dir.exists() else []
                old = pq.read_table(existing, schema=s.schema) if (existing and mode == "upsert") else None
                merged = self._merge(s, old, rows, con)
                staged = txn / f"{len(moves)}.parquet"
                pq.write_table(merged, staged, compression="zstd", row_group_size=ROW_GROUP_ROWS)
                final = part_dir / f"part-{_file_hash(staged)}.parquet"
                if existing == [final]:
                    staged.unlink()
                    result.partitions_unchanged.append(part)
                    continue
                _fsync(staged)
                moves.append((str(staged.relative_to(self.root)), str(final.relative_to(self.root))))
                deletes += [str(p.relative_to(self.root)) for p in existing if p != final]
                result.partitions_written.append(part)
        except BaseException:
            shutil.rmtree(txn, ignore_errors=True)
            raise
        if not moves:
            shutil.rmtree(txn, ignore_errors=True)
            return result
        self._commit(txn, moves, deletes)
        return result

    def _commit(self, txn: Path, moves: list[tuple[str, str]], deletes: list[str]) -> None:
        journal = txn / "journal.json"
        tmp = txn / "journal.json.tmp"
        tmp.write_text(json.dumps({"moves": moves, "deletes": deletes}))
        _fsync(tmp)
        os.replace(tmp, journal)  # the commit point
        self._apply(txn)

    def _apply(self, txn: Path) -> None:
        """Roll a committed transaction forward; safe to repeat after a crash."""
        plan = json.loads((txn / "journal.json").read_text())
        finals = {final for _, final in plan["moves"]}
        for staged, final in plan["moves"]:
            src, dst = self.root / staged, self.root / final
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        for rel in plan["deletes"]:
            if rel not in finals:
                (self.root / rel).unlink(missing_ok=True)
        shutil.rmtree(txn, ignore_errors=True)

    def _recover(self) -> None:
        """Under the lock: roll committed transactions forward, discard uncommitted ones."""
        staging = self.root / "staging"
        if not staging.exists():
            return
        txns = sorted(staging.iterdir())
        for txn in txns:
            if (txn / "journal.json").exists():
                self._apply(txn)
            else:
                shutil.rmtree(txn, ignore_errors=True)
        if txns:
            # files moved under the views: reconnect. Nothing recovered (every write takes
            # this path): keep the connection, whose glob views see new files anyway, so that
            # a read after each write does not rebuild every view (0.1 s a time)
            self._con = None

    def _recover_if_idle(self) -> None:
        staging = self.root / "staging"
        if not staging.exists() or not any(staging.iterdir()):
            return
        try:
            with self.writer():
                self.rebuild_catalog()
        except Exception:
            pass  # a live writer owns the staging area; it will finish its own transaction

    # ------------------------------------------------------------------ catalog and runs
    def rebuild_catalog(self) -> Path:
        """Write `catalog.duckdb` (views over every table) via a temporary file and a rename,
        so the catalog is never half-written; it holds nothing the Parquet files don't."""
        final = self.root / "catalog.duckdb"
        tmp = self.root / "catalog.duckdb.tmp"
        tmp.unlink(missing_ok=True)
        con = duckdb.connect(str(tmp))
        try:
            for s in TABLES.values():
                con.execute(f'CREATE OR REPLACE VIEW "{s.name}" AS {self._view_sql(s)}')
        finally:
            con.close()
        os.replace(tmp, final)
        return final

    def record_run(
        self,
        command: str,
        *,
        status: str,
        started_at: datetime,
        params: dict | None = None,
        rows_written: int = 0,
        message: str = "",
        input_fingerprint: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Append one row to the run log and return its run_id."""
        run_id = run_id or new_run_id()
        row = pd.DataFrame(
            {
                "run_id": [run_id],
                "command": [command],
                "started_at": [pd.Timestamp(started_at)],
                "finished_at": [pd.Timestamp(datetime.now(timezone.utc))],
                "status": [status],
                "params": [json.dumps(params or {}, sort_keys=True, default=str)],
                "input_fingerprint": [input_fingerprint],
                "rows_written": [rows_written],
                "message": [message],
            }
        )
        self.write("runs", row)
        return run_id


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
