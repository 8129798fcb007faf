"""Ingest driver: read vendor files, quarantine bad rows with their reason, write the rest.

Order of work, chosen so that a crash at any moment leaves the lake as before or as after:
1. every file is read and checked in memory (nothing touches the lake);
2. all good rows of the ingest go to the lake in one `Lake.write` (one atomic transaction);
3. the quarantine file is published (write to a temporary name, then rename);
4. the run is logged under the ingest id, once, so a re-ingest is a no-op.
The ingest id is a hash of the format and the files' bytes, so a rerun after a crash (or a
re-ingest) produces byte-identical rows and content-addressed files.
"""

from __future__ import annotations

import hashlib
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from eventvol.data_lake.ingest.formats import FORMATS, Context, Format
from eventvol.data_lake.ingest.reader import (Batch, IngestError, check_header, check_size, head_lines,
                                     max_bytes_default, read_batches, require_columns, split_csv_line)
from eventvol.data_lake.schemas import TableSpec, spec
from eventvol.data_lake.validate import ROW_CHECKS, conform

MAPPING_VERSION = "1"
PENDING_ID = "ing-pending"  # bump when a vendor mapping changes, so re-ingests get a new id
QUARANTINE_SCHEMA = pa.schema([
    ("ingest_id", pa.string()), ("file", pa.string()), ("line", pa.int64()),
    ("column", pa.string()), ("reason", pa.string()), ("value", pa.string()),
])
# Checks the ingest applies on top of the lake's ROW_CHECKS: vendor slips the lake cannot see.
# A units slip (a strike written in thousandths, or divided by 1000) is judged against the chain,
# never against a fixed ratio to spot: post-split chains legitimately hold strikes hundreds of
# times below spot (NVDA's 0.50 with spot 150). A strike is refused when
# - it sits more than CHAIN_RATIO x above the median strike of its own expiry (the file's
#   distinct strikes for that trade date, underlying and expiry, at least 3 of them): no listed
#   contract is struck that far above its chain, or
# - its quote contradicts it: the ask is below half the intrinsic value while that intrinsic is
#   more than half the underlying price (no arbitrage-free quote does that; a forward/spot gap or
#   early-exercise value moves prices by far less), or a put is bid above its strike (a put never
#   pays more than its strike).
# Far *below* the chain is legitimate (post-split strikes; Cboe lists NDX/SPX strikes of 1.00),
# so a low strike is refused only on the evidence of its quote.
CHAIN_RATIO = 500
INTRINSIC = "(CASE WHEN option_type = 'C' THEN underlying_price - strike ELSE strike - underlying_price END)"
EXTRA_CHECKS: dict[str, list[tuple[str, str, str]]] = {
    "option_quotes": [
        ("strike", f"__chain_n >= 3 AND strike > {CHAIN_RATIO} * __chain_median",
         f"strike off by x1000 (more than {CHAIN_RATIO}x above the median strike of its expiry)"),
        ("strike", f"ask > 0 AND {INTRINSIC} > 0.5 * underlying_price AND ask < 0.5 * {INTRINSIC}",
         "strike off by x1000 (the ask is below half the intrinsic value the strike implies)"),
        ("strike", "option_type = 'P' AND bid > strike",
         "strike off by x1000 (a put bid above its strike)"),
    ],
}
# per-table SQL adding the columns EXTRA_CHECKS read (from `__in`, the file's rows)
CHECK_SOURCE: dict[str, str] = {
    "option_quotes": (
        "(SELECT i.*, m.__chain_median, m.__chain_n FROM __in i LEFT JOIN ("
        "SELECT trade_date, underlying, expiration, median(strike) AS __chain_median, count(*) AS __chain_n "
        "FROM (SELECT DISTINCT trade_date, underlying, expiration, strike FROM __in) GROUP BY ALL) m "
        "USING (trade_date, underlying, expiration))"),
}


@dataclass
class IngestReport:
    """What one ingest did. `tables` maps each canonical table to the rows written to it."""

    ingest_id: str
    format: str
    files: list[str]
    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    rows_collapsed: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    layouts: dict[str, str] = field(default_factory=dict)  # file -> the vendor layout its header matched
    partitions_written: int = 0
    quarantine_path: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "ingest_id": self.ingest_id, "format": self.format, "files": self.files,
            "rows_read": self.rows_read, "rows_written": self.rows_written,
            "rows_quarantined": self.rows_quarantined, "rows_collapsed": self.rows_collapsed,
            "tables": dict(self.tables), "layouts": dict(self.layouts), "partitions_written": self.partitions_written,
            "quarantine_path": self.quarantine_path, "seconds": round(self.seconds, 3),
        }


def _pause(stage: str) -> None:
    """Test hook: with EVENTVOL_INGEST_PAUSE=<stage>, announce the stage and wait to be killed."""
    if os.environ.get("EVENTVOL_INGEST_PAUSE") == stage:
        sys.stderr.write(f"PAUSE {stage}\n")
        sys.stderr.flush()
        time.sleep(600)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def make_ingest_id(fmt: str, paths: list[Path]) -> str:
    h = hashlib.sha256(f"{fmt}|{MAPPING_VERSION}".encode())
    for p in paths:
        h.update(_file_digest(p).encode())
    return "ing-" + h.hexdigest()[:20]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _checks(s: TableSpec) -> list[tuple[str, str, str]]:
    """(column, SQL true for a bad row, reason), first match wins: required values, enums, the
    lake's ROW_CHECKS, the ingest's extra checks."""
    out = [(c, f"{_q(c)} IS NULL", "missing required value") for c in s.required]
    for c, allowed in s.enums.items():
        vals = ", ".join("'" + v + "'" for v in allowed)
        label = "unknown option type" if c == "option_type" else f"{c} must be one of {', '.join(allowed)}"
        out.append((c, f"{_q(c)} NOT IN ({vals})", label))
    return out + ROW_CHECKS.get(s.name, []) + EXTRA_CHECKS.get(s.name, [])


def _chain_rule_can_fire(tbl: pa.Table) -> bool:
    """False when no strike of the rows is more than CHAIN_RATIO x another (the usual file),
    so no strike can be CHAIN_RATIO x above its expiry's median."""
    mm = pc.min_max(tbl.column("strike"))
    lo, hi = mm["min"].as_py(), mm["max"].as_py()
    return lo is not None and (lo <= 0 or hi > CHAIN_RATIO * lo)


def check_rows(s: TableSpec, tbl: pa.Table, file: str, con) -> tuple[pa.Table, list[dict], int]:
    """Split one file's canonical rows (with `__line`) into good rows and rejections.

    Identical duplicate rows collapse to one; rows sharing a key with different values are all
    quarantined. Returns (good rows, rejections, rows collapsed)."""
    checks = _checks(s)
    con.register("__in", tbl)
    try:
        cases = " ".join(f"WHEN coalesce({pred}, false) THEN {i}" for i, (_, pred, _) in enumerate(checks))
        values = " ".join(f"WHEN coalesce({pred}, false) THEN CAST({_q(c)} AS VARCHAR)"
                          for c, pred, _ in checks)
        source = CHECK_SOURCE.get(s.name, "__in")
        if s.name == "option_quotes" and not _chain_rule_can_fire(tbl):
            # no strike of the file is CHAIN_RATIO x another: skip the per-expiry median join
            source = "(SELECT *, NULL::DOUBLE AS __chain_median, 0 AS __chain_n FROM __in)"
        hits = con.sql(f"SELECT __line, CASE {cases} END AS r, CASE {values} END AS v FROM {source} "
                       f"WHERE r IS NOT NULL ORDER BY __line").fetchall()
        rejects = []
        cols = tbl.column_names
        for line, r, v in hits:  # a vendor line holding two contracts is rejected once
            col, _, reason = checks[r]
            rejects.append({"file": file, "line": int(line), "column": col, "reason": reason, "value": v})
        if hits:
            bad = pa.array(sorted(int(h[0]) for h in hits), pa.int64())
            tbl = tbl.filter(pc.invert(pc.is_in(tbl.column("__line"), value_set=bad)))
        con.register("__in", tbl)
        keys = ", ".join(_q(k) for k in s.key)
        data = ", ".join(_q(c) for c in cols if c != "__line")
        # equal keys hash equal (DuckDB's hash is its GROUP BY's: -0.0 as 0.0, NaN as NaN), so
        # as many distinct hashes as rows proves the keys unique in one cheap pass; fewer (a
        # duplicate, or a collision) runs the exact GROUP BY below
        if con.execute(f"SELECT count(*) = count(DISTINCT hash({keys})) FROM __in").fetchall()[0][0]:
            return tbl, rejects, 0  # the common case: no GROUP BY, distinct or window pass
        dups = con.sql(f"SELECT count(*) FROM (SELECT {keys} FROM __in GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0]
        if not dups:
            return tbl, rejects, 0
        conflict = con.sql(
            f"SELECT __line, {keys} FROM __in SEMI JOIN (SELECT {keys} FROM (SELECT DISTINCT {data} FROM __in) "
            f"GROUP BY ALL HAVING count(*) > 1) USING ({keys}) ORDER BY __line").fetchall()
        for row in conflict:
            rejects.append({"file": file, "line": int(row[0]), "column": ", ".join(s.key),
                            "reason": "conflicting rows share the key",
                            "value": "(" + ", ".join(str(v) for v in row[1:]) + ")"})
        if conflict:
            bad = pa.array([int(r[0]) for r in conflict], pa.int64())
            tbl = tbl.filter(pc.invert(pc.is_in(tbl.column("__line"), value_set=bad)))
            con.register("__in", tbl)
        before = tbl.num_rows
        tbl = con.sql(f"SELECT * FROM __in QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY __line) = 1 "
                      f"ORDER BY __line").to_arrow_table()
        return tbl, rejects, before - tbl.num_rows
    finally:
        con.unregister("__in")


COALESCE_ROWS = 64 * 1024  # rows mapped at once: the reader's 1 MiB blocks hold ~7k EOD rows


def _coalesced(batches, min_rows: int = COALESCE_ROWS):
    """The reader's blocks joined into batches of at least `min_rows` rows: the mapping's
    per-batch cost (a few ms of casts and calendar look-ups) is paid ~9x less often, while the
    reader keeps its 1 MiB block (the longest line accepted)."""
    pending: list[Batch] = []

    def joined() -> Batch:
        if len(pending) == 1:
            return pending[0]
        out = Batch(pending[0].file, np.concatenate([b.lines for b in pending]),
                    {c: pa.concat_arrays([b.cols[c] for b in pending]) for c in pending[0].cols})
        out.rejects = [r for b in pending for r in b.rejects]
        return out

    for b in batches:
        pending.append(b)
        if sum(len(p) for p in pending) >= min_rows:
            yield joined()
            pending = []
    if pending:
        yield joined()


def _prefetched(batches, depth: int = 2):
    """`batches` produced by a helper thread while the caller maps the previous ones: Arrow's
    CSV tokenizer (single-threaded, to keep exact line numbers) and the mapping's compute
    kernels both release the GIL, so on a second core reading overlaps mapping. Same batches,
    same order; an error of the reader is raised here; leaving early stops the reader."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for b in batches:
                if not put(("batch", b)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the caller, which raises it
            put(("error", exc))
        finally:
            batches.close()  # the reader's file is closed in the thread that used it

    worker = threading.Thread(target=run, name="ingest-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = out.get()
            if kind == "batch":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        stop.set()
        worker.join()


def _read_file(f: Format, path: Path, ctx: Context, max_bytes: int) -> tuple[pa.Table | None, list[dict], int]:
    """Parse one file into canonical rows with a `__line` column; returns (rows, rejections, rows read)."""
    s = spec(f.table)
    check_size(path, max_bytes)
    if f.inspect is not None:
        ctx.header = f.inspect(path)
    names = f.names(path) if f.names else None
    header: list[str] = []  # formats with their own column names (quote tables) check in `inspect`
    if names is None:
        header = split_csv_line(head_lines(path, f.header_line)[-1])
        check_header(path, header, f.header_line)
    layout = f.layout_for(path, header)
    if names is None:
        require_columns(path, header, list(layout.required))
    ctx.header["layout"] = layout.name
    parts, rejects, n_read = [], [], 0
    for b in _prefetched(_coalesced(read_batches(path, header_line=f.header_line, names=names,
                                                 max_bytes=max_bytes, columns=layout.columns))):
        n_read += len(b) + len([r for r in b.rejects])
        if len(b):
            rows = layout.parse(b, ctx)
            any_bad = bool(b.bad.any())  # the common case keeps every row: no filtering copy
            keep = pa.array(~b.bad)
            lines = pa.array(b.lines[~b.bad] if any_bad else b.lines, pa.int64())
            for cols in rows:
                cols = {k: v for k, v in cols.items() if v is not None}
                if s.name == "option_quotes":
                    cols["vendor"] = pa.repeat(pa.scalar(f.vendor, pa.string()), len(b))
                    cols["ingest_id"] = pa.repeat(pa.scalar(ctx.ingest_id, pa.string()), len(b))
                if not cols:
                    continue
                tbl = pa.table(cols)
                tbl = conform(s, tbl.filter(keep) if any_bad else tbl)
                parts.append(tbl.append_column("__line", lines))
        rejects += b.rejects
    if n_read == 0:
        raise IngestError(f"{path} holds a header but no data rows; refusing the file")
    if not parts:
        return None, rejects, n_read
    return pa.concat_tables(parts), rejects, n_read


def ingest_files(lake, fmt: str, paths: list[Path], *, progress: Callable | None = None,
                 max_bytes: int | None = None) -> IngestReport:
    """Ingest vendor files of format `fmt` into `lake` (see `FORMATS` and docs/ingest.md).

    `progress(done, total, name)` is called after each file. Bad rows are quarantined under
    `quarantine/<ingest_id>/rejected.parquet`; a file missing a required column, larger than
    `max_bytes` or holding a line longer than 1 MiB refuses the whole ingest with nothing written.
    """
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc)
    if fmt not in FORMATS:
        raise IngestError(f"unknown ingest format {fmt!r}; choose one of {', '.join(FORMATS)}")
    f = FORMATS[fmt]
    s = spec(f.table)
    paths = [Path(p) for p in paths]
    if not paths:
        raise IngestError("no files to ingest")
    max_bytes = max_bytes if max_bytes is not None else max_bytes_default()
    for p in paths:
        check_size(p, max_bytes)
    # the id hashes the files' bytes, computed once they have parsed: a hostile file (a 2 GB
    # line) must fail on its first block, not after a full hashing pass
    ingest_id = PENDING_ID
    report = IngestReport(ingest_id=ingest_id, format=fmt, files=[str(p) for p in paths])
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    good, rejects = [], []
    try:
        for i, p in enumerate(paths):
            ctx = Context(path=p, ingest_id=ingest_id, lake=lake)
            tbl, rej, n_read = _read_file(f, p, ctx, max_bytes)
            report.layouts[str(p)] = ctx.header.get("layout", fmt)
            report.rows_read += n_read
            rejects += rej
            if tbl is not None:
                tbl, rej, collapsed = check_rows(s, tbl, str(p), con)
                rejects += rej
                report.rows_collapsed += collapsed
                good.append(tbl.append_column("__file", pa.array(np.full(tbl.num_rows, i), pa.int64())))
            if progress is not None:
                progress(i + 1, len(paths), p.name)
        rows = None
        if len(good) == 1:
            rows = good[0].drop_columns(["__line", "__file"])
        elif good:
            # across files the later file wins a key, as an upsert of the files in order would
            con.register("__all", pa.concat_tables(good))
            keys = ", ".join(_q(k) for k in s.key)
            rows = con.sql(f"SELECT * EXCLUDE (__line, __file) FROM __all QUALIFY row_number() OVER "
                           f"(PARTITION BY {keys} ORDER BY __file DESC) = 1").to_arrow_table()
            con.unregister("__all")
        good.clear()  # the per-file tables are no longer needed: free them before the copies below
        tbl = None
    finally:
        con.close()
    ingest_id = report.ingest_id = make_ingest_id(fmt, paths)
    if rows is not None and "ingest_id" in rows.column_names:
        i = rows.column_names.index("ingest_id")
        rows = rows.set_column(i, "ingest_id", pa.repeat(pa.scalar(ingest_id, pa.string()), rows.num_rows))
    # one rejection per vendor line: a line is quarantined as a whole, for its first reason
    seen, unique = set(), []
    for r in rejects:
        if (r["file"], r["line"]) not in seen:
            seen.add((r["file"], r["line"]))
            unique.append(r)
    rejects = unique
    report.rows_quarantined = len(rejects)
    _pause("parsed")
    with lake.writer():
        if rows is not None and rows.num_rows:
            result = lake.write(s.name, rows)
            report.rows_written = rows.num_rows
            report.tables[s.name] = rows.num_rows
            report.partitions_written = len(result.partitions_written)
        _pause("written")
        if rejects:
            report.quarantine_path = str(_publish_quarantine(lake, ingest_id, rejects))
        _pause("quarantined")
        report.seconds = time.perf_counter() - t0
        logged = lake.query("SELECT count(*) AS n FROM runs WHERE run_id = ?", [ingest_id]).column(0)[0].as_py()
        if not logged:  # logged once per ingest id, so a re-ingest changes no file
            lake.record_run("ingest", status="ok", started_at=started, run_id=ingest_id,
                            params={"format": fmt, "files": report.files},
                            rows_written=report.rows_written,
                            message=f"{report.rows_quarantined} rows quarantined")
    return report


def _publish_quarantine(lake, ingest_id: str, rejects: list[dict]) -> Path:
    """Write the rejections once (atomically); a re-ingest finds the same file and keeps it."""
    folder = lake.root / "quarantine" / ingest_id
    final = folder / "rejected.parquet"
    if final.exists():
        return final
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted(rejects, key=lambda r: (r["file"], r["line"], r["column"]))
    tbl = pa.Table.from_pylist([{"ingest_id": ingest_id, **r} for r in rows], schema=QUARANTINE_SCHEMA)
    tmp = folder / "rejected.parquet.tmp"
    pq.write_table(tbl, tmp, compression="zstd")
    os.replace(tmp, final)
    return final


def _read_rejections(lake, path: Path) -> pa.Table:
    """One quarantine file; a damaged one is named in one sentence (the rows it held are
    re-quarantined by re-running that ingest after deleting the file)."""
    from eventvol.data_lake.errors import CorruptLakeError
    from eventvol.data_lake.store import structure_problem

    problem = structure_problem(path)
    if problem is None:
        try:
            return pq.read_table(path, schema=QUARANTINE_SCHEMA, partitioning=None)
        except (OSError, pa.ArrowException) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            problem = " ".join(str(exc).split())
    raise CorruptLakeError(f"quarantine file {path.relative_to(lake.root)} in {lake.root} is damaged ({problem}); "
                           "delete it and re-run that ingest to quarantine its rows again")


def read_quarantine(lake) -> pa.Table:
    """Every quarantined row of the lake, ordered by ingest, file and line."""
    files = sorted((lake.root / "quarantine").glob("*/rejected.parquet"))
    if not files:
        return QUARANTINE_SCHEMA.empty_table()
    tbl = pa.concat_tables([_read_rejections(lake, p) for p in files])
    return tbl.sort_by([("ingest_id", "ascending"), ("file", "ascending"), ("line", "ascending")])
