"""Strict parsing (issue 14): impossible calendar dates and numbers a double cannot hold are
quarantined with line, column and reason, never coerced; blank lines are not rows; a damaged,
mislabeled, header-only or ambiguous file refuses the ingest in one sentence, lake unchanged."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pandas as pd
import pytest

from eventvol.data_lake.ingest import IngestError, ingest_files, read_quarantine

FIX = Path(__file__).parent / "fixtures" / "ingest"


def lake_bytes(lake) -> dict[str, str]:
    """Every file of the lake (locks aside) with the hash of its bytes."""
    return {str(p.relative_to(lake.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(lake.root.rglob("*")) if p.is_file() and "locks" not in p.parts}


def q(lake) -> list[tuple]:
    return [(r["line"], r["column"], r["reason"], r["value"]) for r in read_quarantine(lake).to_pylist()]


def test_impossible_dates_and_unrepresentable_numbers_are_quarantined(empty_lake, tmp_path):
    p = tmp_path / "prices.csv"
    p.write_text("date,symbol,close\n"
                 "2023-02-28,A,10\n"      # 2: good
                 "2023-02-29,A,11\n"      # 3: 2023 is not a leap year (strptime would say 03-01)
                 "1900-02-29,A,12\n"      # 4: 1900 is not a leap year either
                 "2024-02-29,A,13\n"      # 5: good, a leap day
                 "2023-04-31,A,14\n"      # 6: April has 30 days
                 "2023-03-01,A,1e400\n"   # 7: overflows a double (would be inf)
                 "2023-03-02,A,1e-400\n"  # 8: underflows (would be 0)
                 "2023-03-03,A,nan\n"     # 9
                 "2023-03-06,A,-inf\n"    # 10
                 "2023-03-07,A,1e308\n")  # 11: large but a double: kept
    r = ingest_files(empty_lake, "prices-csv", [p])
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (10, 3, 7)
    assert q(empty_lake) == [
        (3, "date", "impossible calendar date", "2023-02-29"),
        (4, "date", "impossible calendar date", "1900-02-29"),
        (6, "date", "impossible calendar date", "2023-04-31"),
        (7, "close", "number out of range (overflows a double)", "1e400"),
        (8, "close", "number out of range (underflows a double)", "1e-400"),
        (9, "close", "not a number", "nan"),
        (10, "close", "not a number", "-inf"),
    ]
    bars = empty_lake.df("SELECT trade_date::VARCHAR AS d, close FROM bars ORDER BY 1")
    assert bars.values.tolist() == [["2023-02-28", 10.0], ["2023-03-07", 1e308], ["2024-02-29", 13.0]]


@pytest.mark.parametrize("cell", ["2022-02-29", "20220229", "2/29/2022", "02/29/2022"])
def test_impossible_expiry_in_every_date_spelling(empty_lake, tmp_path, cell):
    # the EOD format reads ISO, compact and US (M/D/YYYY) dates: Feb 29 2022 is none of them
    lines = (FIX / "cboe_eod_nocalcs.csv").read_text().splitlines()
    head = lines[0].split(",")
    row = lines[1].split(",")
    row[head.index("expiration")] = cell
    row[head.index("quote_date")] = "2022-01-03"
    p = tmp_path / "eod.csv"
    p.write_text("\n".join([lines[0], ",".join(row)]) + "\n")
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert (r.rows_written, r.rows_quarantined) == (0, 1)
    assert q(empty_lake) == [(2, "expiration", "impossible calendar date", cell)]


def test_blank_lines_are_not_rows(empty_lake, tmp_path):
    p = tmp_path / "prices.csv"
    p.write_text("date,symbol,close\n2023-01-03,A,1\n\n2023-01-04,A,2\n   \n,,\n\r\n\n\n")
    r = ingest_files(empty_lake, "prices-csv", [p])
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (2, 2, 0)
    assert q(empty_lake) == []
    # a real bad row after blank lines keeps its physical line number
    p.write_text("date,symbol,close\n\n\n2023-01-05,A,x\n\n")
    r = ingest_files(empty_lake, "prices-csv", [p])
    assert (r.rows_read, r.rows_quarantined) == (1, 1)
    assert q(empty_lake) == [(4, "close", "not a number", "x")]


def _gz(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _big_csv() -> bytes:
    return ("date,symbol,close\n" + "".join(f"2023-01-{3 + i % 20:02d},S{i},{i % 97 + 1}.25\n"
                                            for i in range(60_000))).encode()


BROKEN = {
    "truncated.csv.gz": (lambda: gzip.compress(_big_csv(), mtime=0)[:-5000], "is a truncated gzip file"),
    "cut_early.csv.gz": (lambda: gzip.compress(_big_csv(), mtime=0)[:30], "gzip file"),
    "flipped.csv.gz": (lambda: (lambda g: g[:len(g) // 2] + bytes(b ^ 0xFF for b in g[len(g) // 2:len(g) // 2 + 64])
                                + g[len(g) // 2 + 64:])(gzip.compress(_big_csv(), mtime=0)), "is a corrupt gzip file"),
    "plain.csv.gz": (lambda: b"date,symbol,close\n2023-01-03,A,1\n", "is named .gz but is not gzip-compressed"),
    "header_only.csv.gz": (lambda: gzip.compress(b"date,symbol,close\n", mtime=0), "holds a header but no data rows"),
    "header_only.csv": (lambda: b"date,symbol,close\n\n\n", "holds a header but no data rows"),
    "empty.csv": (lambda: b"", "is empty"),
    "dup_header.csv": (lambda: b"date,symbol,close,close\n2023-01-03,A,1,2\n",
                       "column 'close' appears twice in the header on line 1 (fields 3 and 4)"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_files_refuse_the_ingest_and_keep_the_lake(empty_lake, tmp_path, eventvol_cli, name):
    ingest_files(empty_lake, "prices-csv", [FIX / "prices.csv"])
    before = lake_bytes(empty_lake)
    make, msg = BROKEN[name]
    bad = _gz(tmp_path / name, make())
    with pytest.raises(IngestError) as exc:
        # a good file first: the refusal of the second must keep the first out as well
        ingest_files(empty_lake, "prices-csv", [FIX / "prices.csv", bad])
    assert msg in str(exc.value) and str(bad) in str(exc.value) and "\n" not in str(exc.value)
    assert lake_bytes(empty_lake) == before
    code, out, err = eventvol_cli("ingest", "prices-csv", str(bad), "--lake", str(empty_lake.root))
    assert code == 2 and "Traceback" not in err and msg in err and len(err.strip().splitlines()) == 1
    assert lake_bytes(empty_lake) == before


def test_impossible_expiry_in_a_contract_symbol(empty_lake, tmp_path):
    # OSI 230229 would be rolled over to 2023-03-01 by strptime
    text = (FIX / "cboe_quotetable_small.csv").read_text().replace("SPXW250117C05900000", "SPXW250229C05900000")
    p = tmp_path / "qt.csv"
    p.write_text(text)
    r = ingest_files(empty_lake, "cboe-quotetable", [p])
    assert (r.rows_written, r.rows_quarantined) == (4, 1)
    assert q(empty_lake) == [(7, "Calls", "impossible calendar date in the contract symbol", "SPXW250229C05900000")]


@pytest.mark.parametrize("old,new,msg", [
    ("January 6, 2025 at 9:26 PM", "February 29, 2025 at 9:26 PM", "is not a real date and time"),
    ("Last: 5975.3799", "Last: 5.9.3", "is not a positive spot price"),
    ("Last: 5975.3799", "Last: 0", "is not a positive spot price"),
])
def test_quotetable_header_facts_are_strict(empty_lake, tmp_path, old, new, msg):
    p = tmp_path / "qt.csv"
    p.write_text((FIX / "cboe_quotetable_small.csv").read_text().replace(old, new))
    before = lake_bytes(empty_lake)
    with pytest.raises(IngestError, match=msg):
        ingest_files(empty_lake, "cboe-quotetable", [p])
    assert lake_bytes(empty_lake) == before


def test_event_times_are_read_exactly(empty_lake, tmp_path):
    p = tmp_path / "events.csv"
    p.write_text("kind,symbol,scheduled_ts,timing,source\n"
                 "earnings,MSFT,2026-01-28 16:05,AMC,company\n"        # 2: naive = US/Eastern
                 "earnings,AAPL,2026-01-29T21:30:00Z,AMC,company\n"    # 3: UTC
                 "earnings,JPM,now,BMO,company\n"                      # 4: pandas would take it
                 "earnings,GS,today,BMO,company\n"                     # 5
                 "earnings,MS,2026-02-29 08:00,BMO,company\n")         # 6: no such day
    r = ingest_files(empty_lake, "events-csv", [p])
    assert (r.rows_written, r.rows_quarantined) == (2, 3)
    assert [(x[0], x[1], x[2]) for x in q(empty_lake)] == [(4, "scheduled_ts", "not a timestamp"),
                                                          (5, "scheduled_ts", "not a timestamp"),
                                                          (6, "scheduled_ts", "not a timestamp")]
    ev = empty_lake.read("events").set_index("symbol").scheduled_ts
    assert ev["MSFT"] == pd.Timestamp("2026-01-28 21:05", tz="UTC") and ev["AAPL"] == pd.Timestamp("2026-01-29 21:30", tz="UTC")


def test_unreadable_file_is_one_sentence(empty_lake, tmp_path, monkeypatch):
    from eventvol.data_lake.ingest import reader

    p = tmp_path / "locked.csv"
    p.write_text("date,symbol,close\n2023-01-03,A,1\n")

    def denied(path):  # what open() raises on a mode-000 file for a non-root user
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(reader, "_open_text", denied)
    before = lake_bytes(empty_lake)
    with pytest.raises(IngestError, match=r"locked.csv cannot be read \(Permission denied\); refusing the file"):
        ingest_files(empty_lake, "prices-csv", [p])
    assert lake_bytes(empty_lake) == before


def test_integers_beyond_exact_range_are_quarantined(empty_lake, tmp_path):
    p = tmp_path / "prices.csv"
    p.write_text("date,symbol,close,volume\n"
                 "2023-01-03,A,1,9007199254740991\n"     # 2**53 - 1: exact, kept
                 "2023-01-04,A,1,9007199254740993\n"     # 2**53 + 1: a double would store ...992
                 "2023-01-05,A,1,12345678901234567890\n")  # beyond int64
    r = ingest_files(empty_lake, "prices-csv", [p])
    assert (r.rows_written, r.rows_quarantined) == (1, 2)
    assert q(empty_lake) == [(3, "volume", "integer out of range (above 2**53, not read exactly)", "9007199254740993"),
                             (4, "volume", "integer out of range (above 2**53, not read exactly)", "12345678901234567890")]
    assert empty_lake.df("SELECT volume FROM bars").volume.tolist() == [2**53 - 1]
