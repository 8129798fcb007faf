"""Bad vendor input: every rejection path quarantines the row with file, line, column and
reason (or refuses the whole file), and hostile input never escapes the lake or changes a query."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eventvol.data_lake.ingest import IngestError, ingest_files, read_quarantine

FIX = Path(__file__).parent / "fixtures" / "ingest"
EOD_HEADER = (FIX / "cboe_eod_nocalcs.csv").read_text().splitlines()[0].split(",")
GOOD = dict(zip(EOD_HEADER, (FIX / "cboe_eod_nocalcs.csv").read_text().splitlines()[1].split(",")))


def eod_file(tmp_path: Path, rows: list[dict], name="eod.csv", header=EOD_HEADER) -> Path:
    """A Cboe EOD file: each row is the fixture's first row with some cells changed."""
    p = tmp_path / name
    lines = [",".join(header)]
    for change in rows:
        row = {**GOOD, **change}
        lines.append(",".join(row.get(c, "") for c in header))
    p.write_text("\n".join(lines) + "\n")
    return p


def quarantine(lake) -> list[dict]:
    return read_quarantine(lake).to_pylist()


def lake_files(lake) -> dict[str, int]:
    return {str(p.relative_to(lake.root)): p.stat().st_size for p in lake.root.rglob("*")
            if p.is_file() and "locks" not in p.parts}


BAD_ROWS = [
    ({"bid_eod": "2.50", "ask_eod": "2.40"}, "bid", "crossed quote: bid > ask"),
    ({"bid_eod": "-0.10"}, "bid", "negative bid"),
    ({"strike": "-240"}, "strike", "strike must be positive"),
    ({"open_interest": "-5"}, "open_interest", "negative open interest"),
    ({"expiration": "2022-12-30"}, "expiration", "expiration before trade date"),
    ({"option_type": "X"}, "option_type", "unknown option type"),
    ({"strike": "240000"}, "strike", "strike off by x1000"),
    ({"quote_date": "2023-13-45"}, "quote_date", "not a date"),
    ({"bid_eod": "2.3x"}, "bid_eod", "not a number"),
    ({"open_interest": "12.5"}, "open_interest", "not a whole number"),
]


def test_bad_rows_are_quarantined_with_line_column_reason(empty_lake, tmp_path):
    # one file: a good row on line 2, then each bad row (its own strike, so no key clash)
    # followed by a good row, so every bad line sits between good ones
    rows = [{}]
    for i, (change, _, _) in enumerate(BAD_ROWS):
        rows.append({"strike": f"{300 + i}", **change})
        rows.append({"strike": f"{400 + i}"})
    p = eod_file(tmp_path, rows)
    r = ingest_files(empty_lake, "cboe-eod", [p])
    n = len(BAD_ROWS)
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (2 * n + 1, n + 1, n)
    q = quarantine(empty_lake)
    assert [x["line"] for x in q] == [3 + 2 * i for i in range(n)]
    for x, (_, column, reason) in zip(q, BAD_ROWS):
        assert x["file"] == str(p) and x["column"] == column and x["reason"].startswith(reason), x
    written = empty_lake.df("SELECT strike FROM option_quotes ORDER BY strike").strike.tolist()
    assert written == [240.0] + [400.0 + i for i in range(n)]


def test_iv_outside_range_and_zero(empty_lake, tmp_path):
    calcs = (FIX / "cboe_eod_calcs.csv").read_text().splitlines()
    header = calcs[0].split(",")
    base = dict(zip(header, calcs[1].split(",")))
    p = tmp_path / "iv.csv"
    rows = [{**base}, {**base, "implied_volatility_1545": "12.5", "strike": "3905"},
            {**base, "implied_volatility_1545": "0", "strike": "3910"},
            {**base, "implied_volatility_1545": "-0.2", "strike": "3915"}]
    p.write_text("\n".join([",".join(header)] + [",".join(r[c] for c in header) for r in rows]) + "\n")
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert (r.rows_written, r.rows_quarantined) == (2, 2)
    q = quarantine(empty_lake)
    assert [(x["line"], x["column"], x["reason"], x["value"]) for x in q] == [
        (3, "iv", "iv outside (0, 10]", "12.5"), (5, "iv", "iv outside (0, 10]", "-0.2")]
    # IV 0 is Cboe's "no value": kept, with a NULL iv
    iv = empty_lake.df("SELECT strike, iv FROM option_quotes ORDER BY strike")
    assert iv.strike.tolist() == [3900.0, 3910.0] and iv.iv.isna().tolist() == [False, True]


def test_same_day_expiry_is_data(empty_lake, tmp_path):
    p = eod_file(tmp_path, [{"expiration": "2023-01-03"}])
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert (r.rows_written, r.rows_quarantined) == (1, 0)


def test_duplicates_collapse_or_conflict(empty_lake, tmp_path):
    p = eod_file(tmp_path, [{}, {}, {"strike": "250"}, {"strike": "250", "bid_eod": "0.30"}, {"strike": "260"}])
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert (r.rows_read, r.rows_written, r.rows_collapsed, r.rows_quarantined) == (5, 2, 1, 2)
    q = quarantine(empty_lake)
    assert [x["line"] for x in q] == [4, 5]
    assert all(x["reason"] == "conflicting rows share the key" for x in q)
    assert "250.0" in q[0]["value"]
    assert sorted(empty_lake.df("SELECT strike FROM option_quotes").strike) == [240.0, 260.0]


def test_wrong_field_count_is_quarantined(empty_lake, tmp_path):
    p = eod_file(tmp_path, [{}, {"strike": "250"}])
    text = p.read_text().splitlines()
    text.insert(2, "MSFT,2023-01-03,MSFT")
    p.write_text("\n".join(text) + "\n")
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert (r.rows_written, r.rows_quarantined) == (2, 1)
    [q] = quarantine(empty_lake)
    assert q["line"] == 3 and q["reason"].startswith("expected")
    assert empty_lake.df("SELECT strike FROM option_quotes ORDER BY 1").strike.tolist() == [240.0, 250.0]


def test_missing_required_column_refuses_file_and_keeps_lake(empty_lake, tmp_path):
    ingest_files(empty_lake, "cboe-eod", [FIX / "cboe_eod_nocalcs.csv"])
    before = lake_files(empty_lake)
    header = [c for c in EOD_HEADER if c != "ask_eod"]
    p = eod_file(tmp_path, [{"strike": "300"}], header=header)
    with pytest.raises(IngestError, match=r"required column 'ask_eod' is missing"):
        ingest_files(empty_lake, "cboe-eod", [FIX / "cboe_eod_calcs.csv", p])
    assert lake_files(empty_lake) == before


def test_quarantine_cli_lists_rows(empty_lake, tmp_path):
    from eventvol.research.cli import app

    p = eod_file(tmp_path, [{}, {"bid_eod": "9", "ask_eod": "1", "strike": "250"}])
    res = CliRunner().invoke(app, ["ingest", "cboe-eod", str(p), "--lake", str(empty_lake.root), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert (rep["rows_read"], rep["rows_written"], rep["rows_quarantined"]) == (2, 2 - 1, 1)
    assert rep["tables"] == {"option_quotes": 1} and rep["ingest_id"].startswith("ing-")
    res = CliRunner().invoke(app, ["lake", "quarantine", "--lake", str(empty_lake.root), "--json"])
    [row] = json.loads(res.stdout)
    assert (row["line"], row["column"], row["reason"], row["value"]) == (3, "bid", "crossed quote: bid > ask", "9.0")
    res = CliRunner().invoke(app, ["lake", "quarantine", "--lake", str(empty_lake.root)])
    assert f"{p}:3 column bid: crossed quote" in res.stdout


HOSTILE = ["../../x", "a/b", "SPX'; DROP TABLE bars; --", "/etc/passwd", "..\\..\\y"]


def test_hostile_symbols_are_data_not_paths_or_sql(empty_lake, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root_before = {p for p in tmp_path.rglob("*") if empty_lake.root not in p.parents}
    prices = tmp_path / "outside" / "prices.csv"
    prices.write_text("date,symbol,close\n" + "".join(f'2023-01-03,"{s}",{i + 1}\n' for i, s in enumerate(HOSTILE)))
    members = tmp_path / "outside" / "members.csv"
    members.write_text("index,symbol,start_date,end_date\n" + "".join(f'"{s}","{s}",2020-01-02,\n' for s in HOSTILE))
    ingest_files(empty_lake, "prices-csv", [prices])
    ingest_files(empty_lake, "members-csv", [members])
    eod = eod_file(tmp_path / "outside", [{"underlying_symbol": "^../../x", "root": "a/b"}])
    ingest_files(empty_lake, "cboe-eod", [eod])
    # nothing was created outside the lake except the three input files
    created = {p for p in tmp_path.rglob("*") if empty_lake.root not in p.parents} - root_before
    assert created == {prices, members, eod}
    # every file in the lake lives in a date partition or a hash-named folder
    for p in empty_lake.root.rglob("*.parquet"):
        rel = p.relative_to(empty_lake.root).parts
        assert ".." not in rel and rel[0] in ("tables", "quarantine")
    bars = empty_lake.df("SELECT symbol, close FROM bars ORDER BY close")
    assert bars.symbol.tolist() == HOSTILE  # stored verbatim, the bars table intact
    assert sorted(empty_lake.read("index_members")["index"]) == sorted(HOSTILE)
    oq = empty_lake.df("SELECT underlying, root FROM option_quotes")
    assert (oq.underlying[0], oq.root[0]) == ("../../X", "A/B")


def test_hostile_quotetable_root_is_quarantined(empty_lake, tmp_path):
    text = (FIX / "cboe_quotetable_small.csv").read_text().replace("SPX250117C05900000", "../../x")
    p = tmp_path / "qt.csv"
    p.write_text(text)
    r = ingest_files(empty_lake, "cboe-quotetable", [p])
    assert (r.rows_written, r.rows_quarantined) == (4, 1)
    [q] = quarantine(empty_lake)
    assert (q["line"], q["column"], q["reason"], q["value"]) == (6, "Calls", "not an OSI contract symbol", "../../x")


def test_huge_file_refused_at_once(empty_lake, tmp_path):
    big = tmp_path / "big.csv"
    with open(big, "wb") as f:  # sparse: 2 GiB of apparent size, no disk used
        f.write((",".join(EOD_HEADER) + "\n").encode())
        f.truncate(2 * 2**30 + 1)
    before = lake_files(empty_lake)
    with pytest.raises(IngestError, match=r"big.csv is 2.00 GiB, above the ingest limit"):
        ingest_files(empty_lake, "cboe-eod", [big])
    assert lake_files(empty_lake) == before


def _run_bounded(code: str) -> dict:
    """Run `code` in a fresh interpreter; returns its JSON line and peak RSS in MiB."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "CI": "1"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("where", ["header", "body"])
def test_long_line_and_2gb_file_fail_in_bounded_memory(tmp_path, where):
    p = tmp_path / "long.csv"
    with open(p, "wb") as f:
        if where == "body":
            f.write((",".join(EOD_HEADER) + "\n").encode())
            f.write((",".join(GOOD[c] for c in EOD_HEADER) + "\n").encode())
        f.write(b"x" * (10 * 2**20) + b"\n")  # one 10 MB line
        f.truncate(2 * 2**30 + 10)  # then ~2 GB of NULs without a newline
    code = f"""
import json, resource
from pathlib import Path
from eventvol.data_lake import Lake
from eventvol.data_lake.ingest import ingest_files, IngestError
lake = Lake.open({str(tmp_path / 'lake')!r}, create=True)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    ingest_files(lake, "cboe-eod", [Path({str(p)!r})], max_bytes=4 * 2**30)
    msg = None
except IngestError as e:
    msg = str(e)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"msg": msg, "grew_mib": (peak - base) / 1024, "files": [str(x) for x in Path({str(tmp_path / 'lake')!r}, "tables").rglob("*.parquet")]}}))
"""
    res = _run_bounded(code)
    assert res["msg"] is not None and "longer than 1,048,576 bytes" in res["msg"]
    assert res["files"] == []
    assert res["grew_mib"] < 64  # a few blocks of 1 MiB, not the 10 MB line nor the 2 GB file


def _chain_file(tmp_path: Path, rows: list[tuple], spot: float, name="chain.csv") -> Path:
    """An EOD file of (strike, option_type, bid, ask) rows of one expiry, underlying at `spot`."""
    out = []
    for strike, cp, bid, ask in rows:
        out.append({"underlying_symbol": "NVDA", "root": "NVDA", "quote_date": "2024-06-14", "expiration": "2024-12-20",
                    "strike": str(strike), "option_type": cp, "bid_eod": str(bid), "ask_eod": str(ask),
                    "underlying_bid_eod": str(spot - 0.01), "underlying_ask_eod": str(spot + 0.01)})
    return eod_file(tmp_path, out, name=name)


# a post-split chain: after the 10:1 split, adjusted strikes reach 0.50 with the stock at 150
NVDA_CHAIN = [(0.5, "C", 149.40, 149.60), (0.5, "P", 0, 0.01), (100, "C", 50.10, 50.60), (100, "P", 0.40, 0.45),
              (150, "C", 9.10, 9.30), (150, "P", 8.80, 9.00), (200, "C", 1.10, 1.20), (200, "P", 50.90, 51.40)]


def test_post_split_low_strike_is_kept(empty_lake, tmp_path):
    p = _chain_file(tmp_path, NVDA_CHAIN, 150.0)
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert (r.rows_written, r.rows_quarantined) == (8, 0)
    low = empty_lake.df("SELECT option_type, bid, ask FROM option_quotes WHERE strike = 0.5 ORDER BY 1")
    assert low.values.tolist() == [["C", 149.40, 149.60], ["P", 0.0, 0.01]]


@pytest.mark.parametrize("slip,reason", [
    ((150_000, "C", 9.10, 9.30), "more than 500x above the median strike of its expiry"),   # 150 written x1000
    ((150_000, "P", 8.80, 9.00), "more than 500x above the median strike of its expiry"),
    ((0.15, "C", 9.10, 9.30), "the ask is below half the intrinsic value"),                   # 150 / 1000
    ((0.15, "P", 8.80, 9.00), "a put bid above its strike"),
])
def test_x1000_slip_is_still_quarantined(empty_lake, tmp_path, slip, reason):
    p = _chain_file(tmp_path, NVDA_CHAIN + [slip], 150.0)
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert (r.rows_written, r.rows_quarantined) == (8, 1)
    [q] = quarantine(empty_lake)
    assert (q["line"], q["column"]) == (10, "strike") and q["reason"].startswith(f"strike off by x1000 ({reason}")
