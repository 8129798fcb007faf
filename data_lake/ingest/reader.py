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
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
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


def _underflows(text: pa.Array, values: pa.Array) -> pa.Array:
    """True where a cell reads as 0.0 although its mantissa is not zero (``1e-400``)."""
    zero = pc.fill_null(pc.equal(values, 0.0), False)
    nonzero_text = pc.match_substring_regex(pc.fill_null(text, ""), r"^[-+]?0*\.?0*[1-9]")
    return pc.and_(zero, nonzero_text)


def fast_number(raw: pa.Array) -> pa.Array | None:
    """float64 of a text column when every non-empty cell is a finite plain number, else None."""
    f = _strict_cast(raw, pa.float64())
    if f is None or (len(f) > f.null_count and not pc.all(pc.is_finite(f)).as_py()):
        return None  # NaN/inf spellings are "not a number" for the text path
    zero = pc.fill_null(pc.equal(f, 0.0), False)
    if pc.any(zero).as_py():  # only the zero cells can be an underflow: check their text alone
        z = raw.filter(zero)
        if pc.any(_underflows(pc.utf8_trim_whitespace(z), f.filter(zero))).as_py():
            return None  # 1e-400: the text path quarantines it instead of storing 0
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


_TOKEN = {"%Y": r"\d{4}", "%m": r"\d{1,2}", "%d": r"(?P<day>\d{1,2})", "%b": r"[A-Za-z]{3}",
          "%H": r"\d{1,2}", "%M": r"\d{2}", "%S": r"\d{2}", "%p": r"[AaPp][Mm]", "%I": r"\d{1,2}"}


@lru_cache(maxsize=64)
def _day_regex(fmt: str) -> str | None:
    """A regex capturing the day written by a cell of strptime format `fmt` (None: no day).
    Fields packed without separators (%Y%m%d) are two digits wide."""
    if "%d" not in fmt:
        return None
    out, i = "^", 0
    while i < len(fmt):
        tok = fmt[i:i + 2]
        if tok in _TOKEN:
            numeric = ("%Y", "%m", "%d", "%H", "%M", "%S", "%I")
            packed = fmt[i + 2:i + 4] in numeric or (i >= 2 and fmt[i - 2:i] in numeric)
            pat = _TOKEN[tok]
            if packed and tok in ("%m", "%d", "%H", "%I"):
                pat = pat.replace(r"\d{1,2}", r"\d{2}")
            out += pat
            i += 2
        else:
            out += re.escape(fmt[i])
            i += 1
    return out


def written_day(text: pa.Array, fmt: str) -> pa.Array | None:
    """The day of month each cell writes in format `fmt` (int64, null when it does not match)."""
    rx = _day_regex(fmt)
    if rx is None:
        return None
    parts = pc.extract_regex(pc.fill_null(text, ""), rx)
    day = pc.struct_field(parts, "day")
    valid = pc.match_substring_regex(pc.fill_null(text, ""), rx)
    return pc.if_else(valid, pc.cast(pc.if_else(valid, day, "0"), pa.int64()), pa.scalar(None, pa.int64()))


class IngestError(EventvolError):
    """A vendor file cannot be ingested as a whole (missing column, too large, unreadable)."""


def max_bytes_default() -> int:
    return int(os.environ.get("EVENTVOL_INGEST_MAX_BYTES", DEFAULT_MAX_BYTES))


GZIP_MAGIC = b"\x1f\x8b"
# what a damaged gzip stream raises, from Python's gzip module or from Arrow's decompressor
_GZ_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error, OSError, pa.ArrowInvalid)


def _check_gzip(path: Path) -> None:
    """A file named .gz must start with the gzip magic bytes: plain text named .gz is refused."""
    if path.suffix == ".gz":
        with open(path, "rb") as f:
            magic = f.read(2)
        if magic != GZIP_MAGIC:
            raise IngestError(f"{path} is named .gz but is not gzip-compressed; refusing the file")


def gzip_error(path: Path, exc: BaseException) -> IngestError:
    """The one-sentence refusal of a truncated or corrupt gzip file."""
    what = "truncated" if isinstance(exc, EOFError) or "end-of-stream" in str(exc) or "truncated" in str(exc).lower() \
        else "corrupt"
    return IngestError(f"{path} is a {what} gzip file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                       "refusing the file")


def _open_text(path: Path):
    if path.suffix == ".gz":
        _check_gzip(path)
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def head_lines(path: Path, n: int) -> list[str]:
    """The first `n` lines, each read with a length cap so a huge first line cannot blow memory.
    A file with fewer lines is refused (it has no header where the format expects one)."""
    out = []
    try:
        with _open_text(path) as f:
            for i in range(n):
                line = f.readline(BLOCK_BYTES + 1)
                if len(line) > BLOCK_BYTES:
                    raise IngestError(f"{path}: line {i + 1} is longer than {BLOCK_BYTES:,} bytes; refusing the file")
                if not line:
                    raise IngestError(f"{path} is empty or ends before its header on line {n}; refusing the file")
                out.append(line.rstrip("\r\n"))
    except IngestError:
        raise
    except _GZ_ERRORS as exc:
        if path.suffix == ".gz":
            raise gzip_error(path, exc) from None
        if isinstance(exc, OSError):  # permissions, a vanished file, an I/O error
            raise IngestError(f"{path} cannot be read ({exc.strerror or exc}); refusing the file") from None
        raise
    return out


def check_header(path: Path, names: list[str], line: int) -> None:
    """Refuse a header that names a column twice (which copy would be the data?)."""
    seen: dict[str, int] = {}
    for i, c in enumerate(names, start=1):
        if c in seen:
            raise IngestError(f"{path}: column {c!r} appears twice in the header on line {line} "
                              f"(fields {seen[c]} and {i}); refusing the file")
        seen[c] = i


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
        out = pc.cast(arr, pa.float64())
        # a number a double cannot hold is refused, never stored as inf or 0 (1e400, 1e-400)
        over = pc.fill_null(pc.invert(pc.is_finite(out)), False)
        under = _underflows(arr, out)
        for mask, why in ((over, "number out of range (overflows a double)"),
                          (under, "number out of range (underflows a double)")):
            m = mask.to_numpy(zero_copy_only=False)
            if m.any():
                self.reject(m, label or name, why, arr)
                out = pc.if_else(mask, pa.scalar(None, pa.float64()), out)
        return out

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
        # 1e19 cannot be int64, and above 2**53 the double this was read through has already
        # rounded it (9007199254740993 -> ...992): refuse the cell rather than store another number
        big = pc.fill_null(pc.invert(pc.less(pc.abs(f), float(_EXACT_INT))), False).to_numpy(zero_copy_only=False)
        if big.any():
            self.reject(big, label or name, "integer out of range (above 2**53, not read exactly)",
                        self.text(name))
            f = pc.if_else(pa.array(big), pa.scalar(None, pa.float64()), f)
        return pc.cast(f, pa.int64())

    def date(self, name: str, formats: tuple[str, ...] = ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y"), *,
             label: str | None = None) -> pa.Array:
        """Column `name` as date32, trying each format in turn; unparseable cells quarantine."""
        if formats[0] == "%Y-%m-%d":  # the first format wins, so ISO cells read the same
            fast = fast_iso_date(self.cols[name])
            if fast is not None:
                return fast
        return pc.cast(self._strptime(name, formats, label, "not a date"), pa.date32())

    def timestamp(self, name: str, formats: tuple[str, ...], *, label: str | None = None) -> pa.Array:
        """Column `name` as a naive timestamp[s] (the vendor's wall clock), trying each format;
        unparseable or impossible cells quarantine their row."""
        return self._strptime(name, formats, label, "not a timestamp")

    def _strptime(self, name: str, formats: tuple[str, ...], label: str | None, reason: str) -> pa.Array:
        arr = self.text(name)
        out = pa.nulls(len(arr), pa.timestamp("s"))
        impossible = np.zeros(len(arr), bool)
        for fmt in formats:
            got = pc.strptime(arr, format=fmt, unit="s", error_is_null=True)
            # strptime rolls impossible days over (2023-02-29 -> 03-01): the day it wrote must
            # be the day the cell says, otherwise the cell is an impossible calendar date
            day = written_day(arr, fmt)
            if day is not None:
                rolled = pc.fill_null(pc.not_equal(pc.day(got), day), False)
                rolled = pc.and_(rolled, pc.is_null(out)).to_numpy(zero_copy_only=False)
                impossible |= rolled
                got = pc.if_else(pa.array(rolled), pa.scalar(None, got.type), got)
            out = pc.coalesce(out, got)
        impossible &= pc.is_null(out).to_numpy(zero_copy_only=False)
        if impossible.any():
            self.reject(impossible, label or name, "impossible calendar date", arr)
        bad = pc.and_kleene(pc.is_null(out), pc.is_valid(arr)).to_numpy(zero_copy_only=False)
        if bad.any():
            self.reject(bad, label or name, reason, arr)
        return out


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

    if path.suffix == ".gz":
        _check_gzip(path)
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
    except _GZ_ERRORS as exc:
        stream.close()
        if path.suffix == ".gz" and not isinstance(exc, pa.ArrowInvalid) or "decompress" in str(exc).lower():
            raise gzip_error(path, exc) from None
        if not isinstance(exc, pa.ArrowInvalid):
            raise
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
            except _GZ_ERRORS as exc:
                if path.suffix == ".gz" and (not isinstance(exc, pa.ArrowInvalid) or "decompress" in str(exc).lower()
                                             or "gzip" in str(exc).lower()):
                    raise gzip_error(path, exc) from None
                if not isinstance(exc, pa.ArrowInvalid):
                    raise
                if "straddling" in str(exc) or "block" in str(exc):
                    raise IngestError(
                        f"{path}: a line near line {next_line} is longer than {BLOCK_BYTES:,} bytes; "
                        "refusing the file") from None
                raise IngestError(f"{path}: cannot read as CSV near line {next_line}: {str(exc).splitlines()[0]}") from None
            # the reader parses ahead: a skipped line reported now may lie in a later block, so
            # a skip belongs to this batch only up to its last row (else every later row would
            # be numbered a block too far)
            pending = {int(n) for n, _ in skipped if n is not None and int(n) not in done_skips}
            n = rb.num_rows
            cand = np.arange(next_line, next_line + n + len(pending) + 1, dtype=np.int64)
            if pending:
                cand = cand[~np.isin(cand, np.fromiter(pending, np.int64))]
            lines = cand[:n]
            last_line = int(lines[-1]) if n else next_line - 1
            skip_lines = {ln for ln in pending if ln <= last_line}
            done_skips |= skip_lines
            new_skips = [s for s in skipped if s[0] is not None and int(s[0]) in skip_lines]
            cells = {c: rb.column(c) for c in keep}
            blank = _blank_rows(cells, n)
            if blank is not None:  # blank lines (trailing ones too) are not rows
                idx = pa.array(np.flatnonzero(~blank))
                cells = {c: a.take(idx) for c, a in cells.items()}
                lines = lines[~blank]
            batch = Batch(str(path), lines, cells)
            for ln, text in new_skips:
                if ln is not None and text.strip() == "":
                    continue  # blank lines are not data
                batch.rejects.append({"file": str(path), "line": int(ln or 0), "column": "",
                                      "reason": f"expected {len(cols)} fields", "value": text[:200]})
            next_line = last_line + 1
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


def _blank_rows(cells: dict[str, pa.Array], n: int) -> np.ndarray | None:
    """Rows whose every read cell is empty or whitespace (a blank line, or one of only
    separators), or None when there is none (the usual case, checked without a copy)."""
    if not n or not cells:
        return None
    blank = None
    for a in cells.values():
        empty = pc.equal(pc.utf8_trim_whitespace(a), "")
        blank = empty if blank is None else pc.and_(blank, empty)
        if not pc.any(blank).as_py():
            return None
    return pc.fill_null(blank, False).to_numpy(zero_copy_only=False)


def require_columns(path: Path, present: list[str], required: list[str]) -> None:
    """Refuse the whole file when a required column is missing, naming it."""
    for c in required:
        if c not in present:
            raise IngestError(f"{path}: required column {c!r} is missing; refusing the file")
