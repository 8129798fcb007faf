"""The lake: hive-partitioned Parquet files read through DuckDB, written atomically.

Write path (one writer at a time, under `locks/writer.lock`):
  conform -> validate -> for every partition touched, merge with the existing file by key
  and write a new content-addressed file into `staging/<txn>/` -> commit a journal
  (atomic rename) -> move the new files into place and delete the files they replace.
A crash before the journal commit leaves the old partitions (staging is discarded on the
next open); a crash after it is rolled forward on the next open. Journal entries are
confined to the lake before anything is renamed or deleted; an unusable journal is set aside.
Readers never open `catalog.duckdb`: they use an in-memory DuckDB with views over the lists
of verified parts (paths escaped: DuckDB globs every file name). Integrity and recovery:
docs/lake.md.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from eventvol.data_lake.errors import CorruptLakeError, LakeIOError, LakeNotFoundError, LakeWarning, NoDataError
from eventvol.data_lake.lock import WriterLock
from eventvol.data_lake.schemas import ADDED_COLUMNS, TABLES, TableSpec, duckdb_type, spec
from eventvol.data_lake.validate import conform, in_lake_order, keys_unique_sorted, validate

MARKER = "lake.json"
FORMAT_VERSION = 1
ROW_GROUP_ROWS = 128 * 1024
HASH_CHARS = 24  # part-<first 24 hex digits of the file's sha256>.parquet
# OSErrors that say the machine refused, not that a journal is wrong: re-raised, never set aside
ENVIRONMENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.ENOSPC, errno.EDQUOT})
INTEGRITY = "integrity.json"  # content hashes already checked, by file state (a cache)
DAMAGED_DIR = "damaged"  # where `set_aside_damaged` moves damaged parts (kept, never deleted)
REJECTED_JOURNALS = "quarantine/journals"  # where unusable staging transactions are set aside


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


def _month_bounds(path: Path):
    """First and last day of the month partition holding `path`."""
    first = datetime(*partition_of(path), 1).date()
    return first, (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()


def _partition_label(path: Path) -> str:
    """'option_quotes for 2023-04' for a part of a month partition, 'bars' for a flat table."""
    if path.parent.name.startswith("month="):
        y, m = partition_of(path)
        return f"{path.parent.parent.parent.name} for {y:04d}-{m:02d}"
    return path.parent.name


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def duckdb_path(path: str | os.PathLike) -> str:
    """`path` as a file argument for DuckDB, which expands every file name it is given as a
    glob (even inside a list): `[`, `?` and `*` are bracketed so they match only themselves."""
    return "".join(f"[{c}]" if c in "[?*" else c for c in str(path))


def file_hash(path: Path) -> str:
    """The name-part of a content-addressed part: the first 24 hex digits of its sha256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:HASH_CHARS]


def structure_problem(path: Path) -> str | None:
    """Why `path` cannot be a whole Parquet file (size, magic bytes, footer length), or None.
    Reads 8 bytes at each end: cheap enough to run on every file before a read."""
    try:
        size = path.stat().st_size
        if size < 12:
            return f"it is truncated ({size} bytes)"
        with open(path, "rb") as f:
            head = f.read(4)
            f.seek(size - 8)
            tail = f.read(8)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if head != b"PAR1" or tail[4:] != b"PAR1":
        return "it is truncated or not Parquet (no PAR1 magic bytes)"
    if int.from_bytes(tail[:4], "little") + 12 > size:
        return "it is truncated (its footer is longer than the file)"
    return None


def content_problem(path: Path) -> str | None:
    """Why `path` does not hold the bytes it was written with, or None: a part's name is the
    sha256 of its content (`part-<hash>.parquet`), so any flipped or missing byte shows."""
    problem = structure_problem(path)
    if problem:
        return problem
    want = path.name.removeprefix("part-").removesuffix(".parquet")
    try:
        got = file_hash(path)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if got != want:
        return f"its content hash is {got}, not the {want} its name records"
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _year_month(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """year * 100 + month of a date/timestamp column (the month partition of each row)."""
    return pc.add(pc.multiply(pc.year(col), 100), pc.month(col))


def _in_partition_order(s: TableSpec, rows: pa.Table) -> pa.Table:
    """`rows` with a `__ym` column (`_year_month` of the partition column), sorted by it and
    then in lake order: each partition's rows contiguous, in the order its file stores."""
    keyed = rows.append_column("__ym", _year_month(rows.column(s.partition_col)))
    order = [("__ym", "ascending")] + [(c, "ascending", "at_end") for c in s.order]
    return keyed.take(pc.sort_indices(keyed, sort_keys=order)).combine_chunks()


def _split_by_year_month(rows: pa.Table) -> dict[str, pa.Table]:
    """Rows in `_in_partition_order` -> partition name -> that partition's rows (slices,
    without `__ym`)."""
    ym = rows.column("__ym").to_numpy()
    rows = rows.drop_columns(["__ym"])
    cuts = np.flatnonzero(np.diff(ym)) + 1
    bounds = np.concatenate([[0], cuts, [len(ym)]]).astype(np.int64)
    return {f"year={int(ym[a]) // 100:04d}/month={int(ym[a]) % 100:02d}": rows.slice(int(a), int(b - a))
            for a, b in zip(bounds[:-1], bounds[1:]) if b > a}


def _encode(s: TableSpec, rows: pa.Table) -> tuple[pa.Buffer, str]:
    """A partition's Parquet bytes (the lake's format: zstd, 128k-row groups, page checksums),
    encoded in memory, and their content hash (the part's name): a file is then written once,
    never read back to be hashed, and not at all when the partition is unchanged."""
    sink = pa.BufferOutputStream()
    pq.write_table(rows.cast(s.schema), sink, compression="zstd", row_group_size=ROW_GROUP_ROWS,
                   write_page_checksum=True)
    data = sink.getvalue()
    return data, hashlib.sha256(data).hexdigest()[:HASH_CHARS]


def _write_staged(path: Path, data: pa.Buffer) -> Path:
    """`data` into `path`, fsynced (staged files are durable before a journal names them)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path


class Lake:
    """A lake directory. Use `Lake.open(path)`; `create=True` makes an empty lake."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.lock = WriterLock(self.root / "locks" / "writer.lock", self.root)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._view_files: dict[str, tuple[Path, ...]] = {}  # the files each cached view reads
        self._views_lock = threading.Lock()
        # parts whose content hash was checked, by (size, mtime_ns), from integrity.json: a
        # part is never edited in place, so a changed state means a changed file
        self._verified: dict[str, list[int]] | None = None
        self._damage: dict[Path, str] = {}  # parts found damaged, with why

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, create: bool = False) -> "Lake":
        root = Path(path) if path is not None else default_lake_path()
        if root.exists() and not root.is_dir():
            raise LakeNotFoundError(f"the lake path {root} is a file, not a lake folder")
        if not (root / MARKER).is_file():
            if not create:
                raise LakeNotFoundError(f"no lake at {root}; create one with `eventvol demo --lake {root}` or `eventvol ingest`")
            try:
                if root.exists() and any(root.iterdir()):
                    raise LakeNotFoundError(f"{root} exists and is not an eventvol lake; choose an empty or new folder")
                for sub in ("tables", "locks", "staging", "quarantine"):
                    (root / sub).mkdir(parents=True, exist_ok=True)
                tmp = root / (MARKER + ".tmp")
                tmp.write_text(json.dumps({"format_version": FORMAT_VERSION}) + "\n")
                os.replace(tmp, root / MARKER)  # the marker appears whole or not at all
            except OSError as exc:
                raise LakeIOError(f"cannot create a lake at {root}: {exc.strerror or exc}"
                                  + (f" ({exc.filename})" if exc.filename else "")) from None
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
        """The table's files as one DuckDB glob, the lake's own path escaped (for the catalog)."""
        sub = "year=*/month=*/part-*.parquet" if s.partition_col else "part-*.parquet"
        return duckdb_path(self.root / "tables" / s.name) + "/" + sub

    def is_empty(self) -> bool:
        return not any(self.files(t) for t in TABLES)

    def relative(self, path: Path) -> str:
        """`path` relative to the lake root, as messages name lake files."""
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def damaged_message(self, path: Path, problem: str) -> str:
        """The one sentence naming a damaged part and the way to recover."""
        return (f"lake file {self.relative(path)} in {self.root} is damaged ({problem}); "
                f"set it aside with `eventvol lake verify --set-aside --lake {self.root}` and re-ingest "
                f"{_partition_label(path)} (docs/lake.md, Recovery)")

    # ------------------------------------------------------------------ reading
    # Integrity of DuckDB reads: before a view exposes a part, its content hash is checked
    # once per file state (size, mtime) and the result kept in integrity.json by the next
    # write (the writer records the parts it writes, so readers rarely hash; readers never
    # write to the lake). A damaged part is left out
    # of the good parts' file list and becomes a branch bounded to its month that raises the
    # one-sentence error: DuckDB's optimizer drops that branch for a query whose date filter
    # excludes the month, so reads of intact months still answer. Arrow reads
    # (`scan_partitions`) verify page checksums on every read; `verify` checks everything.

    def _integrity_cache(self) -> dict[str, list[int]]:
        if self._verified is None:
            try:
                data = json.loads((self.root / INTEGRITY).read_text())
                parts = data.get("parts", {}) if isinstance(data, dict) else {}
                self._verified = {k: v for k, v in parts.items() if isinstance(v, list) and len(v) == 2}
            except (OSError, ValueError):
                self._verified = {}  # absent or unreadable: every part is hashed again
        return self._verified

    def _save_integrity_cache(self) -> None:
        """Under the writer lock; best effort (a lake that cannot take it hashes again next
        time); atomic replace."""
        parts = {k: v for k, v in self._integrity_cache().items() if (self.root / k).is_file()}
        tmp = self.root / f"{INTEGRITY}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp"
        try:
            tmp.write_text(json.dumps({"format_version": 1, "parts": parts}, sort_keys=True))
            os.replace(tmp, self.root / INTEGRITY)
        except OSError:
            tmp.unlink(missing_ok=True) if tmp.parent.exists() else None

    def _record_verified(self, path: Path) -> None:
        try:
            st = path.stat()
        except OSError:
            return  # not in place (yet): it is hashed when first read
        self._integrity_cache()[self.relative(path)] = [st.st_size, st.st_mtime_ns]

    def part_problem(self, path: Path) -> str | None:
        """Why a part cannot be trusted (see `content_problem`), or None; a part whose file
        state matches the integrity record is not hashed again."""
        try:
            st = path.stat()
        except OSError as exc:
            return f"it cannot be read ({exc.strerror or exc})"
        rel = self.relative(path)
        if self._integrity_cache().get(rel) == [st.st_size, st.st_mtime_ns]:
            return None
        problem = content_problem(path)
        if problem is None:
            # kept in memory; written to integrity.json by the next write (readers never write)
            self._integrity_cache()[rel] = [st.st_size, st.st_mtime_ns]
        return problem

    def _damaged_branch(self, s: TableSpec, path: Path, problem: str) -> str:
        """One row per day of the damaged part's month (a flat table: one row), every value
        computed by `__ev_damaged`, which raises: any query that may need the month fails with
        the one-sentence error, whatever else it filters on; others never reach it."""
        fail = f"__ev_damaged({_sql_str(str(path))})"
        values = ", ".join(
            (f'__d AS "{f.name}"' if f.name == s.partition_col else
             f'CASE WHEN {fail} THEN NULL END::{duckdb_type(f.type)} AS "{f.name}"') for f in s.schema)
        first, last = _month_bounds(path) if s.partition_col else (datetime(1970, 1, 1).date(),) * 2
        days = f"SELECT unnest(generate_series(DATE '{first}', DATE '{last}', INTERVAL 1 DAY))::DATE AS __d"
        guard = f"__d BETWEEN DATE '{first}' AND DATE '{last}' AND " if s.partition_col else ""
        return f"SELECT {values} FROM ({days}) AS __t WHERE {guard}{fail}"

    def _fail_damaged(self, path: str) -> bool:
        p = Path(path)
        raise CorruptLakeError(self.damaged_message(p, self._damage.get(p, "it is damaged")))

    def _view_sql(self, s: TableSpec, files: tuple[Path, ...]) -> str:
        good, damaged = [], []
        for f in files:
            problem = self.part_problem(f)
            if problem is None:
                good.append(f)
            else:
                self._damage[f] = problem
                damaged.append(f)
        if not good and not damaged:
            return "SELECT " + ", ".join(f'NULL::{duckdb_type(f.type)} AS "{f.name}"' for f in s.schema) + " WHERE false"
        names = ", ".join(_sql_str(duckdb_path(f)) for f in good)
        options = "hive_partitioning = false"
        have = set(s.columns)
        if good and s.name in ADDED_COLUMNS:
            # files older than a column added to the table: NULL there (schema evolution)
            options += ", union_by_name = true"
            have = set().union(*(pq.read_schema(f).names for f in good))
        cols = ", ".join(f'"{f.name}"' if f.name in have else f'NULL::{duckdb_type(f.type)} AS "{f.name}"'
                         for f in s.schema)
        if not damaged and have >= set(s.columns):
            # `*`: a part written by other means with fewer columns still reads (as before)
            return f"SELECT * FROM read_parquet([{names}], {options})"
        branches = [f"SELECT {cols} FROM read_parquet([{names}], {options})"] if good else []
        return " UNION ALL ".join(branches + [self._damaged_branch(s, f, self._damage[f]) for f in damaged])

    def _views(self, tables) -> duckdb.DuckDBPyConnection:
        """The cached connection with current views of `tables` (names of canonical tables):
        a view is (re)created when its table's files changed (a write by this or another
        process renames content-addressed files). Views are made on first use, so a query
        pays for the tables it names only (a view binds its files' schema: ~10 ms a table)."""
        with self._views_lock:
            if self._con is None:
                self._con = duckdb.connect()
                self._con.execute("SET TimeZone = 'UTC'")
                self._con.create_function("__ev_damaged", self._fail_damaged, ["VARCHAR"], "BOOLEAN",
                                          side_effects=True)
                self._view_files = {}
            for name in tables:
                s = TABLES[name]
                files = tuple(self.files(s.name))
                if files != self._view_files.get(s.name):
                    self._con.execute(f'CREATE OR REPLACE VIEW "{s.name}" AS {self._view_sql(s, files)}')
                    self._view_files[s.name] = files
            return self._con

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """A cached connection with a current view of every canonical table."""
        return self._views(TABLES)

    @staticmethod
    def tables_named(sql: str) -> list[str]:
        """The canonical tables whose names appear as words in `sql` (DuckDB identifiers are
        case-insensitive): the views a query needs. A name inside a string literal only costs
        a view it does not use."""
        words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql)}
        return [t for t in TABLES if t in words]

    def _corrupt_error(self, exc: Exception) -> CorruptLakeError | None:
        """The one-sentence error for a DuckDB or Arrow failure caused by a damaged lake file
        (named in the message, or found damaged by the read guard), else None."""
        text = str(exc)
        for path, problem in list(self._damage.items()):
            if self.damaged_message(path, problem) in text or str(path) in text:
                return CorruptLakeError(self.damaged_message(path, problem))
        named = [f for files in list(self._view_files.values()) for f in files if str(f) in text]
        if named:
            # DuckDB names the file it failed on: 'No magic bytes found at end of file ...'
            problem = content_problem(named[0]) or _one_line(text.split("\n")[0])
            return CorruptLakeError(self.damaged_message(named[0], problem))
        if "Invalid data" in text or "Parquet" in text or "parquet" in text or "TProtocol" in text:
            # DuckDB did not say which file it choked on: find the one whose content is not
            # what its name records among the files the views read
            for files in list(self._view_files.values()):
                for path in files:
                    problem = content_problem(path)
                    if problem:
                        self._damage[path] = problem
                        return CorruptLakeError(self.damaged_message(path, problem))
        return None

    def query(self, sql: str, params: list | dict | None = None, *,
              tables: dict[str, pa.Table | pd.DataFrame] | None = None) -> pa.Table:
        """Run parameterized SQL over the lake's views and return an Arrow table. `tables`
        registers in-memory frames (e.g. an event list to join) for this query only.
        A damaged lake file the query needs raises `CorruptLakeError` naming it."""
        cur = self._views(self.tables_named(sql)).cursor()
        try:
            for name, data in (tables or {}).items():
                cur.register(name, data)
            return cur.sql(sql, params=params or None).to_arrow_table()
        except duckdb.Error as exc:
            corrupt = self._corrupt_error(exc)
            if corrupt is not None:
                raise corrupt from None
            raise
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
            tbl = self._read_part(path, columns=columns, filters=expr, read_dictionary=list(dictionary) or None)
            if tbl.num_rows:
                yield tbl

    def _read_part(self, path: Path, **kw) -> pa.Table:
        """One part read by Arrow: its content hash checked as for DuckDB reads (once per file
        state) and its page checksums verified on every read; a damaged part raises
        `CorruptLakeError` naming it before Arrow returns anything from it."""
        problem = self.part_problem(path)
        if problem is None:
            try:
                return pq.read_table(path, partitioning=None, page_checksum_verification=True, **kw)
            except (OSError, pa.ArrowException) as exc:
                if isinstance(exc, OSError) and exc.errno is not None:
                    raise  # the system refused the read (permission, I/O): not the file's content
                problem = _one_line(str(exc).split("\n")[0])
        self._damage[path] = problem
        raise CorruptLakeError(self.damaged_message(path, problem))

    # ------------------------------------------------------------------ integrity
    def verify(self, tables: list[str] | None = None,
               progress=None) -> pd.DataFrame:
        """Check every part of the lake (or of `tables`): whole Parquet, content hash equal to
        its name, every page checksum, schema readable. One row per damaged file: table, file
        (relative to the lake), partition, problem; an empty frame when the lake is intact.
        `progress(done, total, name)` is called after each file."""
        rows = []
        names = tables or list(TABLES)
        files = [(t, f) for t in names for f in self.files(t)]
        for i, (table, path) in enumerate(files):
            problem = content_problem(path)
            if problem is None:
                try:
                    pq.read_table(path, partitioning=None, page_checksum_verification=True,
                                  schema=spec(table).schema)
                except (OSError, pa.ArrowException) as exc:
                    problem = _one_line(str(exc).split("\n")[0])
            if problem is None:
                self._record_verified(path)
            else:
                part = "" if not path.parent.name.startswith("month=") else "%04d-%02d" % partition_of(path)
                rows.append({"table": table, "file": self.relative(path), "partition": part, "problem": problem})
            if progress:
                progress(i + 1, len(files), self.relative(path))
        return pd.DataFrame(rows, columns=["table", "file", "partition", "problem"])

    def set_aside_damaged(self, damaged: pd.DataFrame | None = None) -> list[Path]:
        """Move every damaged part (as `verify` finds them) to `damaged/<time>/<same path>`
        under the writer lock: the partition then reads as absent (re-ingest rebuilds it) and
        the bytes are kept for inspection. Returns the new locations."""
        moved = []
        with self.writer():
            damaged = self.verify() if damaged is None else damaged
            if damaged.empty:
                return moved
            dest_root = self.root / DAMAGED_DIR / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
            for rel in damaged["file"]:
                # the entry itself (a symlinked part is moved as the link, its target untouched)
                src = self._confined(str(Path(rel).parent), "tables") / Path(rel).name
                dst = dest_root / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                self._damage.pop(src, None)
                moved.append(dst)
            self._con = None
            self._save_integrity_cache()
            self.rebuild_catalog()
        return moved

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
            tbl, unique = self._checked(s, data, con)
            result = self._write_partitions(s, tbl, mode, con, in_order=unique)
            # views are globs, so only a table's first files change the catalog's SQL
            # (and a table that gained a column: its view may still add the column as NULL)
            if result.partitions_written and (was_empty or s.name in ADDED_COLUMNS
                                              or not (self.root / "catalog.duckdb").exists()):
                self._con = None
                self.rebuild_catalog()
            return result

    @staticmethod
    def _checked(s: TableSpec, data: pd.DataFrame | pa.Table, con) -> tuple[pa.Table, bool]:
        """(rows conformed and validated, keys known unique): in lake order when the keys are
        known unique (the rows in file order once: rows sharing a key are then neighbours, a
        cheap key check in place of a GROUP BY, and a new partition needs no second sort),
        else in the caller's order, duplicates collapsed. Errors name the caller's row
        numbers."""
        tbl = conform(s, data)
        in_order = in_lake_order(s, tbl)
        unique = keys_unique_sorted(s, in_order)
        tbl = validate(s, tbl, con, keys_unique=unique)
        return (in_order if unique else tbl), unique

    def replace_rows(self, table: str, data: pd.DataFrame | pa.Table, *, delete: pc.Expression,
                     months: Iterable[tuple[int, int]] = ()) -> WriteResult:
        """Validate `data` and, in one atomic transaction, rewrite every month partition it
        touches and every (year, month) in `months`: the partition's rows matching `delete`
        (an Arrow expression over key columns, e.g. one family's factors on the recomputed
        days) are removed, then `data`'s rows are added (a new row wins over an old one with
        its key). Rows outside `delete` stay as they were; a partition left without rows loses
        its files. The refresh runner's write: one transaction for a whole batch of months,
        partitions staged on a few threads (Parquet encoding, hashing and fsync release the
        GIL), merged in Arrow."""
        s = spec(table)
        if s.partition_col is None:
            raise ValueError(f"table {table!r} is not partitioned by date")
        with self.writer():
            was_empty = not self.files(table)
            tbl, _ = self._checked(s, data, self._scratch_con())  # ordered by the merge below
            yms = pc.unique(_year_month(tbl.column(s.partition_col))).to_pylist() if tbl.num_rows else []
            parts = {f"year={v // 100:04d}/month={v % 100:02d}" for v in yms}
            parts |= {f"year={y:04d}/month={m:02d}" for y, m in months}
            result = WriteResult(table=s.name, rows=tbl.num_rows)
            txn = self.root / "staging" / f"txn-{uuid.uuid4().hex}"
            txn.mkdir(parents=True)
            moves: list[tuple[str, str]] = []
            deletes: list[str] = []
            names = sorted(parts)
            existing = {n: sorted((self.table_dir(s.name) / n).glob("part-*.parquet")) for n in names}
            try:
                slices = self._merged_by_partition(s, tbl, [f for n in names for f in existing[n]], delete)
                kept = [n for n in names if n in slices]

                def stage(i: int) -> tuple[Path, Path | None]:
                    # (final part, staged file or None when the partition is unchanged)
                    data, digest = _encode(s, slices[kept[i]])
                    final = self.table_dir(s.name) / kept[i] / f"part-{digest}.parquet"
                    return final, None if existing[kept[i]] == [final] else _write_staged(txn / f"{i}.parquet", data)

                with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
                    staged = dict(zip(kept, pool.map(stage, range(len(kept)))))
                for name in names:
                    if name not in staged:  # no rows left: the partition's files go
                        if existing[name]:
                            deletes += [str(p.relative_to(self.root)) for p in existing[name]]
                            result.partitions_written.append(name)
                        continue
                    final, path = staged[name]
                    if path is None:
                        result.partitions_unchanged.append(name)
                        continue
                    moves.append((str(path.relative_to(self.root)), str(final.relative_to(self.root))))
                    deletes += [str(p.relative_to(self.root)) for p in existing[name] if p != final]
                    result.partitions_written.append(name)
            except BaseException:
                shutil.rmtree(txn, ignore_errors=True)
                raise
            if not moves and not deletes:
                shutil.rmtree(txn, ignore_errors=True)
                return result
            self._commit(txn, moves, deletes)
            if was_empty and result.partitions_written or not (self.root / "catalog.duckdb").exists():
                self._con = None
                self.rebuild_catalog()
            return result

    def _merged_by_partition(self, s: TableSpec, new: pa.Table, files: list[Path],
                             delete: pc.Expression) -> dict[str, pa.Table]:
        """`replace_rows`' merge, for all partitions at once (one multi-threaded read, one
        filter, one sort: per-partition Arrow calls cost more than the work on small
        partitions): partition name -> its rows after the write, in lake order. A new row wins
        over a kept row with its key."""
        rows, kept = new, None
        if files:
            kept = self._read_existing(files, s).filter(~delete)
            if kept.num_rows:
                rows = pa.concat_tables([kept, new.cast(s.schema)])
        rows = _in_partition_order(s, rows)
        if kept is not None and kept.num_rows and not keys_unique_sorted(s, rows):
            # an old row shares its key with a new one: the old goes (equal keys, equal partition)
            kept = kept.join(new.select(list(s.key)), keys=list(s.key), join_type="left anti").select(s.columns)
            rows = _in_partition_order(s, pa.concat_tables([kept.cast(s.schema), new.cast(s.schema)]))
        return _split_by_year_month(rows)

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

    def _merge(self, s: TableSpec, old: pa.Table | None, new: pa.Table, con, in_order: bool = False) -> pa.Table:
        """The partition's rows after the write, in `lake_order`. Keys are unique, so the order
        is total: an Arrow sort gives the rows DuckDB's ORDER BY gave (the same Parquet bytes,
        however the rows are chunked), in about a third of the time."""
        if old is None or old.num_rows == 0:
            rows = new if in_order else in_lake_order(s, new)
        else:
            keys = ", ".join(f'"{k}"' for k in s.key)
            con.register("__new", new)
            con.register("__old", old)
            try:
                kept = con.sql(f"SELECT * FROM __old ANTI JOIN __new USING ({keys})").to_arrow_table().cast(s.schema)
            finally:
                con.unregister("__new")
                con.unregister("__old")
            rows = in_lake_order(s, pa.concat_tables([kept, new.cast(s.schema)]))
        return rows.cast(s.schema)

    def _write_partitions(self, s: TableSpec, tbl: pa.Table, mode: str, con, in_order: bool = False) -> WriteResult:
        result = WriteResult(table=s.name, rows=tbl.num_rows)
        txn = self.root / "staging" / f"txn-{uuid.uuid4().hex}"
        txn.mkdir(parents=True)
        moves: list[tuple[str, str]] = []
        deletes: list[str] = []
        try:
            for part, rows in self._partitions(s, tbl):
                part_dir = self.table_dir(s.name) / part if part else self.table_dir(s.name)
                existing = sorted(part_dir.glob("part-*.parquet")) if part_dir.exists() else []
                old = self._read_existing(existing, s) if (existing and mode == "upsert") else None
                data, digest = _encode(s, self._merge(s, old, rows, con, in_order))
                final = part_dir / f"part-{digest}.parquet"
                if existing == [final]:
                    result.partitions_unchanged.append(part)
                    continue
                staged = _write_staged(txn / f"{len(moves)}.parquet", data)
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

    def _read_existing(self, files: list[Path], s: TableSpec) -> pa.Table:
        """The current parts of a partition an upsert merges with, content hashes verified
        first: a damaged part would otherwise be re-hashed into a new, valid-looking part."""
        for path in files:
            problem = content_problem(path)
            if problem:
                raise CorruptLakeError(self.damaged_message(path, problem))
        if len(files) == 1:  # the usual case: one part, read without the dataset layer (~1 ms less)
            tbl = pq.ParquetFile(files[0]).read()
            if tbl.schema.equals(s.schema):
                return tbl
        return pq.read_table(files, schema=s.schema, partitioning=None)

    def _commit(self, txn: Path, moves: list[tuple[str, str]], deletes: list[str]) -> None:
        journal = txn / "journal.json"
        tmp = txn / "journal.json.tmp"
        try:
            tmp.write_text(json.dumps({"moves": moves, "deletes": deletes}))
            _fsync(tmp)
            os.replace(tmp, journal)  # the commit point
        except BaseException:
            shutil.rmtree(txn, ignore_errors=True)  # not committed: the old partitions stand
            raise
        self._apply(txn)
        # the parts were named by hashing the very bytes now in place: record them as checked
        for _, final in moves:
            self._record_verified(self.root / final)
        self._save_integrity_cache()

    def _confined(self, rel: str, under: str, resolved: dict | None = None) -> Path:
        """`root/rel` resolved (symlinks followed), refused unless it stays inside `root/under`.
        `resolved` caches folder resolutions across the calls of one journal (a backfill's
        journal names ~800 parts in a few hundred folders); plain string paths, as pathlib
        costs more than the checks."""
        if not isinstance(rel, str) or not rel or os.path.isabs(rel):
            raise ValueError(f"{rel!r} is not a path relative to the lake")
        resolved = {} if resolved is None else resolved

        def real(p: str) -> str:
            if p not in resolved:
                resolved[p] = os.path.realpath(p)
            return resolved[p]

        full = os.path.join(str(self.root), rel)
        head, name = os.path.split(full)
        if name in ("", ".", "..") or os.path.islink(full):
            path = os.path.realpath(full)
        else:  # a plain last component: the resolved folder and the name
            path = os.path.join(real(head), name)
        base = real(os.path.join(str(self.root), under))
        if not path.startswith(base.rstrip(os.sep) + os.sep):
            raise ValueError(f"{rel!r} leaves {under}/ of the lake")
        return Path(path)

    def _plan(self, txn: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
        """The journal's moves and deletes as confined paths: every staged file inside this
        transaction's folder, every final and deleted file a part under tables/. Raises
        ValueError (nothing done) on anything else."""
        plan = json.loads((txn / "journal.json").read_text())
        if not isinstance(plan, dict) or not isinstance(plan.get("moves"), list) or not isinstance(plan.get("deletes"), list):
            raise ValueError("the journal is not {moves: [...], deletes: [...]}")
        txn_rel = str(txn.relative_to(self.root))
        resolved: dict[str, str] = {}
        moves = []
        for entry in plan["moves"]:
            if not (isinstance(entry, list) and len(entry) == 2):
                raise ValueError(f"move {entry!r} is not [staged, final]")
            src, dst = self._confined(entry[0], txn_rel, resolved), self._confined(entry[1], "tables", resolved)
            if not dst.name.startswith("part-") or dst.suffix != ".parquet":
                raise ValueError(f"move target {entry[1]!r} is not a part file")
            moves.append((src, dst))
        deletes = []
        for rel in plan["deletes"]:
            path = self._confined(rel, "tables", resolved)
            if not path.name.startswith("part-") or path.suffix != ".parquet":
                raise ValueError(f"delete {rel!r} is not a part file")
            deletes.append(path)
        return moves, deletes

    def _apply(self, txn: Path) -> None:
        """Roll a committed transaction forward; safe to repeat after a crash. Every path is
        checked before anything is renamed or deleted (a journal is data read from disk)."""
        moves, deletes = self._plan(txn)
        finals = {dst for _, dst in moves}
        for src, dst in moves:
            if src.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
        for path in deletes:
            if path not in finals:
                path.unlink(missing_ok=True)
        shutil.rmtree(txn, ignore_errors=True)

    def _set_aside_transaction(self, txn: Path, why: str) -> None:
        dest = self.root / REJECTED_JOURNALS / txn.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            dest = dest.with_name(f"{txn.name}-{uuid.uuid4().hex[:8]}")
        os.replace(txn, dest)
        warnings.warn(LakeWarning(
            f"the staging journal {self.relative(txn)} of lake {self.root} is unusable ({why}); "
            f"it was set aside in {self.relative(dest)} and the committed tables were left as they were"),
            stacklevel=3)

    def _recover(self) -> None:
        """Under the lock: roll committed transactions forward, discard uncommitted ones, set
        aside (with a warning) any journal that is unreadable or names paths it must not."""
        staging = self.root / "staging"
        if not staging.exists():
            return
        txns = sorted(staging.iterdir())
        for txn in txns:
            if txn.is_symlink() or not txn.is_dir():
                self._set_aside_transaction(txn, "it is not a transaction folder")
            elif (txn / "journal.json").exists():
                try:
                    self._apply(txn)
                except (ValueError, TypeError, UnicodeDecodeError, OSError) as exc:
                    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
                        raise  # the machine refused (permission, I/O, space): not the journal's fault
                    self._set_aside_transaction(txn, _one_line(str(exc)))
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
        # DuckDB reads `?` in a database path as the start of URI options: build such a
        # catalog in a private folder and copy it next to its final name
        build_dir = tempfile.mkdtemp(prefix="eventvol-catalog-") if "?" in str(self.root) else None
        build = Path(build_dir) / "catalog.duckdb" if build_dir else tmp
        try:
            con = duckdb.connect(str(build))
            try:
                for s in TABLES.values():
                    con.execute(f'CREATE OR REPLACE VIEW "{s.name}" AS {self._catalog_view_sql(s, con)}')
            finally:
                con.close()
            if build_dir:
                shutil.copyfile(build, tmp)
        finally:
            if build_dir:
                shutil.rmtree(build_dir, ignore_errors=True)
        os.replace(tmp, final)
        return final

    def _catalog_view_sql(self, s: TableSpec, con) -> str:
        """A live glob (the lake's path escaped) for other tools; if a damaged part keeps DuckDB
        from binding it, the list of the parts that bind (`eventvol lake verify` names the rest)."""
        if not self.files(s.name):
            return self._view_sql(s, ())
        glob = f"SELECT * FROM read_parquet({_sql_str(self._glob(s))}, hive_partitioning = false)"
        try:
            con.execute(f"DESCRIBE {glob}")
            return glob
        except duckdb.Error:
            good = [f for f in self.files(s.name) if self.part_problem(f) is None]
            if not good:
                return self._view_sql(s, ())
            names = ", ".join(_sql_str(duckdb_path(f)) for f in good)
            return f"SELECT * FROM read_parquet([{names}], hive_partitioning = false)"

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
