"""The ingest's fast path (one strict Arrow cast per column and block) must read exactly what
the per-cell text path reads: same values, same quarantined cells with the same line, column
and reason, and byte-identical lake files. The text path is forced by disabling the casts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from eventvol.data_lake import Lake
from eventvol.data_lake.ingest import ingest_files, read_quarantine, reader
from eventvol.data_lake.ingest.reader import Batch

FIX = Path(__file__).parent / "fixtures" / "ingest"
CALCS = (FIX / "cboe_eod_calcs.csv").read_text().splitlines()

# cells a vendor file really holds, and the spellings where Arrow's cast and the text rules
# could disagree (NaN/inf words, signs, exponents, blanks, padding, thousands separators)
NUMBER_CELLS = ["1.5", "-0", "+2", "1e5", "1.E5", "1e+5", ".5", "5.", "00", "0.1e-400", "1e400", "", " ",
                " 1", "1 ", "nan", "NaN", "-nan", "inf", "-Infinity", "1,5", "0x10", "1d5", ".", "-", "e5",
                "1_0", "abc", "12345678901234567890", "9007199254740993", "3900.000"]
DATE_CELLS = ["2024-03-01", "2024-3-1", "20240301", "03/01/2024", "2024-02-30", "2024-03-01 ", "", "x",
              "2024-03-01T00:00"]


def _batch(cells: list[str]) -> Batch:
    return Batch("f.csv", np.arange(2, 2 + len(cells), dtype=np.int64), {"c": pa.array(cells, pa.string())})


def _both(monkeypatch, cells, read):
    """(values, rejects) of `read(batch)` with the fast path, then with the text path only."""
    fast_b = _batch(cells)
    fast = read(fast_b).to_pylist()
    with monkeypatch.context() as m:
        m.setattr(reader, "_strict_cast", lambda raw, typ: None)
        slow_b = _batch(cells)
        slow = read(slow_b).to_pylist()
    return (fast, fast_b.rejects), (slow, slow_b.rejects)


@pytest.mark.parametrize("cell", NUMBER_CELLS)
def test_number_fast_path_reads_every_cell_like_the_text_path(monkeypatch, cell):
    # each tricky cell alone and inside a block of clean cells (where the fast path is tried)
    for cells in ([cell], ["1.25", cell, "7"]):
        fast, slow = _both(monkeypatch, cells, lambda b: b.number("c"))
        assert fast == slow


@pytest.mark.parametrize("cell", NUMBER_CELLS)
def test_integer_fast_path_reads_every_cell_like_the_text_path(monkeypatch, cell):
    for cells in ([cell], ["12", cell, "7"]):
        fast, slow = _both(monkeypatch, cells, lambda b: b.integer("c"))
        assert fast == slow


@pytest.mark.parametrize("cell", DATE_CELLS)
def test_date_fast_path_reads_every_cell_like_the_text_path(monkeypatch, cell):
    for cells in ([cell], ["2024-03-04", cell]):
        fast, slow = _both(monkeypatch, cells, lambda b: b.date("c"))
        assert fast == slow


def test_fast_path_is_taken_on_clean_blocks_and_refused_on_tricky_ones():
    assert reader.fast_number(pa.array(["1.5", "", "-2e3"])).to_pylist() == [1.5, None, -2000.0]
    assert reader.fast_number(pa.array(["1.5", "nan"])) is None  # text rules refuse NaN
    assert reader.fast_integer(pa.array(["3", "9007199254740993"])) is None  # float64 would round it
    assert reader.fast_iso_date(pa.array(["2024-02-30"])) is None  # strptime would roll it to March


def _eod_file(path: Path, n_rows: int, bad: dict[int, tuple[int, str]] | None = None) -> Path:
    """A Calcs EOD file of `n_rows` distinct contracts (strikes step by 0.05, all within
    1,000 of the underlying, so the one copied quote never contradicts a strike's intrinsic value)
    several 1 MiB blocks long; `bad` maps a data row index to (column index, cell) to plant."""
    base = CALCS[1].split(",")
    out = [CALCS[0]]
    for i in range(n_rows):
        f = list(base)
        f[4] = f"{3000 + 0.05 * (i // 2):.3f}"
        f[5] = "C" if i % 2 == 0 else "P"
        f[10] = str(100 + i % 977)
        if bad and i in bad:
            col, cell = bad[i]
            f[col] = cell
        out.append(",".join(f))
    path.write_text("\n".join(out) + "\n")
    return path


def _lake_files(lake: Lake) -> dict[str, str]:
    return {str(p.relative_to(lake.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((lake.root / "tables").rglob("*.parquet")) if "runs" not in p.parts}


def test_fast_and_text_paths_write_byte_identical_lakes_and_quarantines(tmp_path, monkeypatch):
    # 12,000 rows are 3 blocks of ~5,300 rows; bad cells land in the second and last blocks, so the other
    # blocks take the fast path while those columns of those blocks take the text path
    bad = {6000: (4, "39OO.000"), 6001: (26, "nan"), 11990: (10, "12.5"), 11991: (2, " SPX ")}
    src = _eod_file(tmp_path / "eod.csv", 12_000, bad)
    assert src.stat().st_size > 2 * reader.BLOCK_BYTES
    fast_lake = Lake.open(tmp_path / "fast", create=True)
    fast = ingest_files(fast_lake, "cboe-eod", [src]).to_dict()
    with monkeypatch.context() as m:
        m.setattr(reader, "_strict_cast", lambda raw, typ: None)
        slow_lake = Lake.open(tmp_path / "slow", create=True)
        slow = ingest_files(slow_lake, "cboe-eod", [src]).to_dict()
    for k in ("ingest_id", "rows_read", "rows_written", "rows_quarantined", "rows_collapsed"):
        assert fast[k] == slow[k]
    assert fast["rows_quarantined"] == 3  # " SPX " is trimmed text, not a bad cell
    assert _lake_files(fast_lake) == _lake_files(slow_lake)
    q = read_quarantine(fast_lake).to_pylist()
    assert q == read_quarantine(slow_lake).to_pylist()
    # physical line = data row index + 2 (header on line 1)
    assert [(r["line"], r["column"], r["reason"]) for r in q] == [
        (6002, "strike", "not a number"),
        (6003, "bid_eod", "not a number"),
        (11992, "trade_volume", "not a whole number"),
    ]
