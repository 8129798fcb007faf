"""Bounded, streaming reading of vendor CSV files and vectorized parsing of their text cells.

Every cell is read as text (so one bad number never refuses a whole file) in blocks of
`BLOCK_BYTES`; a line longer than a block fails the file cleanly instead of growing memory.
`Batch` turns text columns into typed Arrow arrays and records each unreadable cell as a
rejection with its file, line and column.

Speed: a column of a block is first converted by one strict Arrow cast (C++, no per-cell
Python or regex); only when that cast refuses some cell (or yields NaN/inf, which the text
rules refuse) does the column take the cell-by-cell text path, so bad cells keep their exact
line, column and reason. The fast path accepts a subset of what the text path accepts, with
the same values (tests/test_ingest_fastpath.py checks both on tricky cells).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from eventvol.data_lake.errors import EventvolError

BLOCK_BYTES = 1 << 20  # also the longest line accepted
DEFAULT_MAX_BYTES = 1 << 30  # larger files are refused: split them or pass max_bytes
_NUMBER = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$"
_EXACT_INT = 2**53  # the text path reads integers through float64: beyond this it rounds
_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError)


def _strict_cast(raw: pa.Array, typ: pa.DataType) -> pa.Array | None:
    """`raw` (untrimmed text, empty = missing) cast to `typ` in one pass, or None when any
    non-empty cell does not convert (the caller then takes the per-cell text path)."""
    try:
        return pc.cast(raw, typ)
    except _CAST_ERRORS:
        pass
    if raw.null_count == len(raw) or not pc.any(pc.equal(raw, "")).as_py():
        return None
    try:  # empty cells are missing values, as in the text path
        return pc.cast(pc.if_else(pc.equal(raw, ""), pa.scalar(None, pa.string()), raw), typ)
    except _CAST_ERRORS:
        return None


def fast_number(raw: pa.Array) -> pa.Array | None:
    """float64 of a text column when every non-empty cell is a finite plain number, else None."""
    f = _strict_cast(raw, pa.float64())
    if f is None or (len(f) > f.null_count and not pc.all(pc.is_finite(f)).as_py()):
        return None  # NaN/inf spellings are "not a number" for the text path
    return f


def fast_integer(raw: pa.Array) -> pa.Array | None:
    """int64 of a text column when every non-empty cell is a whole number below 2**53, else None.

    Read through float64, as the text path does: Arrow's integer cast also takes hex ("0x10")."""
    f = fast_number(raw)
    if f is None:
        return None
    if len(f) > f.null_count and not (pc.all(pc.equal(f, pc.floor(f))).as_py()
                                      and pc.max(pc.abs(f)).as_py() < _EXACT_INT):
        return None
    return pc.cast(f, pa.int64())


def fast_iso_date(raw: pa.Array) -> pa.Array | None:
    """date32 of a text column when every non-empty cell is a valid YYYY-MM-DD date, else None."""
    return _strict_cast(raw, pa.date32())


class IngestError(EventvolError):
    """A vendor file cannot be ingested as a whole (missing column, too large, unreadable)."""


def max_bytes_default() -> int:
    return int(os.environ.get("EVENTVOL_INGEST_MAX_BYTES", DEFAULT_MAX_BYTES))


def _open_text(path: Path):
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def head_lines(path: Path, n: int) -> list[str]:
    """The first `n` lines, each read with a length cap so a huge first line cannot blow memory."""
    out = []
    with _open_text(path) as f:
        for i in range(n):
            line = f.readline(BLOCK_BYTES + 1)
            if len(line) > BLOCK_BYTES:
                raise IngestError(f"{path}: line {i + 1} is longer than {BLOCK_BYTES:,} bytes; refusing the file")
            out.append(line.rstrip("\r\n"))
    return out


def split_csv_line(line: str) -> list[str]:
    return next(csv.reader([line])) if line else []


def check_size(path: Path, max_bytes: int) -> None:
    if not path.is_file():
        raise IngestError(f"{path} is not a readable file")
    size = path.stat().st_size
    if size > max_bytes:
        raise IngestError(
            f"{path} is {size / 2**30:.2f} GiB, above the ingest limit of {max_bytes / 2**30:.2f} GiB; "
            "split the file or raise EVENTVOL_INGEST_MAX_BYTES"
        )


@dataclass
class Batch:
    """One block of text rows of one file. `lines` holds the 1-based line number of each row."""

    file: str
    lines: np.ndarray
    cols: dict[str, pa.Array]
    bad: np.ndarray = field(init=False)
    rejects: list[dict] = field(default_factory=list)
    _text: dict[str, pa.Array] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.bad = np.zeros(len(self.lines), dtype=bool)

    def __len__(self) -> int:
        return len(self.lines)

    def text(self, name: str) -> pa.Array:
        """Trimmed text of a column; empty cells are null (computed once per column)."""
        if name not in self._text:
            arr = pc.utf8_trim_whitespace(self.cols[name])
            self._text[name] = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
        return self._text[name]

    def reject(self, mask: np.ndarray, column: str, reason: str, values: pa.Array | None = None) -> None:
        """Quarantine rows where `mask` is true (only the first reason of a row is kept)."""
        mask = np.asarray(mask, dtype=bool) & ~self.bad
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        vals = values.take(pa.array(idx)).to_pylist() if values is not None else [None] * len(idx)
        for i, v in zip(idx.tolist(), vals):
            self.rejects.append({"file": self.file, "line": int(self.lines[i]), "column": column,
                                 "reason": reason, "value": None if v is None else str(v)[:200]})
        self.bad |= mask

    def number(self, name: str, *, label: str | None = None) -> pa.Array:
        """Column `name` as float64; unparseable cells quarantine their row."""
        fast = fast_number(self.cols[name])
        if fast is not None:
            return fast
        arr = self.text(name)
        ok = pc.match_substring_regex(arr, _NUMBER)
        bad = pc.and_kleene(pc.invert(ok), pc.is_valid(arr))
        badnp = bad.to_numpy(zero_copy_only=False)
        if badnp.any():
            self.reject(badnp, label or name, "not a number", arr)
            arr = pc.if_else(bad, pa.scalar(None, pa.string()), arr)
        return pc.cast(arr, pa.float64())

    def integer(self, name: str, *, label: str | None = None) -> pa.Array:
        """Column `name` as int64 (a fractional value quarantines its row)."""
        fast = fast_integer(self.cols[name])
        if fast is not None:
            return fast
        f = self.number(name, label=label)
        frac = pc.not_equal(f, pc.floor(f)).to_numpy(zero_copy_only=False)
        frac = np.where(pc.is_null(f).to_numpy(zero_copy_only=False), False, frac)
        if frac.any():
            self.reject(frac, label or name, "not a whole number", f)
            f = pc.if_else(pa.array(frac), pa.scalar(None, pa.float64()), f)
        # 1e400 (inf) or 1e19 cannot be int64: refuse the cell rather than fail the file
        big = pc.fill_null(pc.invert(pc.less(pc.abs(f), float(2**63))), False).to_numpy(zero_copy_only=False)
        if big.any():
            self.reject(big, label or name, "integer out of range", f)
            f = pc.if_else(pa.array(big), pa.scalar(None, pa.float64()), f)
        return pc.cast(f, pa.int64())

    def date(self, name: str, formats: tuple[str, ...] = ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y"), *,
             label: str | None = None) -> pa.Array:
        """Column `name` as date32, trying each format in turn; unparseable cells quarantine."""
        if formats[0] == "%Y-%m-%d":  # the first format wins, so ISO cells read the same
            fast = fast_iso_date(self.cols[name])
            if fast is not None:
                return fast
        arr = self.text(name)
        out = pa.nulls(len(arr), pa.timestamp("s"))
        for fmt in formats:
            out = pc.coalesce(out, pc.strptime(arr, format=fmt, unit="s", error_is_null=True))
        bad = pc.and_kleene(pc.is_null(out), pc.is_valid(arr)).to_numpy(zero_copy_only=False)
        if bad.any():
            self.reject(bad, label or name, "not a date", arr)
        return pc.cast(out, pa.date32())


def read_batches(path: Path, *, header_line: int, names: list[str] | None = None,
                 max_bytes: int | None = None, columns: tuple[str, ...] | None = None) -> Iterator[Batch]:
    """Stream a CSV whose header is on line `header_line` (1-based) in blocks.

    `names` renames the columns (for files with repeated header names); `columns`, if given,
    limits the batches to those of its columns the file has (every line's field count is still
    checked against the whole header). Rows with the wrong
    number of fields become rejections of their line. Lines are counted physically, so files
    whose quoted cells hold newlines report approximate line numbers.
    """
    path = Path(path)
    check_size(path, max_bytes if max_bytes is not None else max_bytes_default())
    header = head_lines(path, header_line)[-1]
    file_names = split_csv_line(header)
    cols = names or file_names
    keep = cols if columns is None else [c for c in cols if c in set(columns)]
    skipped: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        skipped.append((row.number, row.text))
        return "skip"

    stream = pa.input_stream(str(path), compression="detect")
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(skip_rows=header_line, column_names=cols,
                                           block_size=BLOCK_BYTES, use_threads=False,
                                           encoding="utf8"),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False,
                                             ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in keep},
                                                 include_columns=keep, strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        stream.close()
        if "straddling" in str(exc) or "block" in str(exc):
            raise IngestError(f"{path}: a line is longer than {BLOCK_BYTES:,} bytes; refusing the file") from None
        if "Empty CSV" in str(exc):
            return
        raise IngestError(f"{path}: cannot read as CSV: {str(exc).splitlines()[0]}") from None
    next_line = header_line + 1
    done_skips: set[int] = set()
    try:
        while True:
            try:
                rb = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                if "straddling" in str(exc) or "block" in str(exc):
                    raise IngestError(
                        f"{path}: a line near line {next_line} is longer than {BLOCK_BYTES:,} bytes; "
                        "refusing the file") from None
                raise IngestError(f"{path}: cannot read as CSV near line {next_line}: {str(exc).splitlines()[0]}") from None
            new_skips = [s for s in skipped if s[0] not in done_skips]
            skip_lines = {int(n) for n, _ in new_skips if n is not None}
            done_skips |= skip_lines
            n = rb.num_rows
            cand = np.arange(next_line, next_line + n + len(skip_lines) + 1, dtype=np.int64)
            if skip_lines:
                cand = cand[~np.isin(cand, np.fromiter(skip_lines, np.int64))]
            lines = cand[:n]
            batch = Batch(str(path), lines, {c: rb.column(c) for c in keep})
            for ln, text in new_skips:
                if ln is not None and text.strip() == "":
                    continue  # blank lines are not data
                batch.rejects.append({"file": str(path), "line": int(ln or 0), "column": "",
                                      "reason": f"expected {len(cols)} fields", "value": text[:200]})
            next_line = int(max(lines[-1] if n else next_line - 1, max(skip_lines, default=0))) + 1
            yield batch
        # rows skipped after the last batch
        tail = [s for s in skipped if s[0] not in done_skips and s[1].strip()]
        if tail:
            b = Batch(str(path), np.zeros(0, np.int64), {c: pa.array([], pa.string()) for c in keep})
            for ln, text in tail:
                b.rejects.append({"file": str(path), "line": int(ln or 0), "column": "",
                                  "reason": f"expected {len(cols)} fields", "value": text[:200]})
            yield b
    finally:
        stream.close()


def require_columns(path: Path, present: list[str], required: list[str]) -> None:
    """Refuse the whole file when a required column is missing, naming it."""
    for c in required:
        if c not in present:
            raise IngestError(f"{path}: required column {c!r} is missing; refusing the file")
