"""Ingest guarantees: re-ingest is a no-op, partial chains merge, a SIGKILL at any stage leaves
the lake as before (or, past the commit point, completable by a rerun), and point-in-time
reads never see a row before it was available."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from eventvol.data_lake import Lake
from eventvol.data_lake.ingest import ingest_files, read_quarantine

FIX = Path(__file__).parent / "fixtures" / "ingest"
CALCS = (FIX / "cboe_eod_calcs.csv").read_text().splitlines()


def snapshot(lake: Lake, *, skip_runs: bool = False) -> dict[str, str]:
    """sha256 of every file of the lake's tables and quarantine (the visible state)."""
    out = {}
    for sub in ("tables", "quarantine"):
        for p in sorted((lake.root / sub).rglob("*")):
            if p.is_file() and not (skip_runs and "runs" in p.parts):
                out[str(p.relative_to(lake.root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def chain(lake: Lake) -> pd.DataFrame:
    return lake.df("SELECT * FROM option_quotes ORDER BY trade_date, underlying, root, expiration, strike, option_type")


def write_eod(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([CALCS[0], *rows]) + "\n")
    return path


def test_reingest_is_a_noop(empty_lake, tmp_path):
    bad = CALCS[2].replace(",11.90,20,12.60,", ",13.90,20,12.60,")  # crossed EOD quote
    p = write_eod(tmp_path / "eod.csv", [CALCS[1], bad, *CALCS[3:]])
    first = ingest_files(empty_lake, "cboe-eod", [p]).to_dict()
    snap, rows = snapshot(empty_lake), chain(empty_lake)
    catalog = (empty_lake.root / "catalog.duckdb").stat().st_mtime_ns
    again = ingest_files(empty_lake, "cboe-eod", [p]).to_dict()
    assert first["rows_quarantined"] == 1 and first["rows_written"] == 6
    for k in ("ingest_id", "rows_read", "rows_written", "rows_quarantined", "tables"):
        assert again[k] == first[k]
    assert again["partitions_written"] == 0
    assert snapshot(empty_lake) == snap
    assert (empty_lake.root / "catalog.duckdb").stat().st_mtime_ns == catalog
    pd.testing.assert_frame_equal(chain(Lake.open(empty_lake.root)), rows)
    assert len(read_quarantine(empty_lake)) == 1
    assert empty_lake.df("SELECT count(*) AS n FROM runs WHERE command = 'ingest'").n[0] == 1


def test_partial_spx_chains_merge_into_one(tmp_path, real_data):
    jan = real_data / "cboe_quotetable" / "spx_2025-01-06_jan-expiries.csv"
    feb = real_data / "cboe_quotetable" / "spx_2025-01-06_feb-expiries.csv"
    apart = Lake.open(tmp_path / "apart", create=True)
    r1 = ingest_files(apart, "cboe-quotetable", [jan])
    r2 = ingest_files(apart, "cboe-quotetable", [feb])
    together = Lake.open(tmp_path / "together", create=True)
    ingest_files(together, "cboe-quotetable", [jan, feb])
    a, t = chain(apart), chain(together)
    assert len(a) == r1.rows_written + r2.rows_written == len(t)
    assert set(a.trade_date) == {pd.Timestamp("2025-01-06").date()}
    months = set(pd.to_datetime(a.expiration).dt.month)
    assert months == {1, 2}
    # ingest ids differ (different calls), everything else is the same chain
    pd.testing.assert_frame_equal(a.drop(columns="ingest_id"), t.drop(columns="ingest_id"))
    # the third Friday lists SPX (AM) and SPXW (PM) on the same strikes: two contracts each
    third = a[a.expiration == pd.Timestamp("2025-01-17").date()]
    by_root = third.groupby("root").agg(n=("strike", "size"), settle=("settlement", "first"))
    assert by_root.settle.to_dict() == {"SPX": "AM", "SPXW": "PM"}
    spx = set(third[third.root == "SPX"].strike)
    assert spx and spx <= set(third[third.root == "SPXW"].strike)
    # same-day expiries of the January file are kept
    assert (a.expiration == a.trade_date).sum() > 0


CHILD = r"""
import os, sys, time
from pathlib import Path
import eventvol.data_lake.store as st
from eventvol.data_lake import Lake
from eventvol.data_lake.ingest import ingest_files

lake_path, stage, *files = sys.argv[1:]

def pause():
    sys.stderr.write(f"PAUSE {stage}\n"); sys.stderr.flush(); time.sleep(600)

if stage == "commit":  # staged files written, journal not yet committed
    st.Lake._commit = lambda self, txn, moves, deletes: pause()
elif stage == "apply":  # journal committed, killed after the first file moved into place
    orig = os.replace
    count = [0]
    def replace(src, dst):
        orig(src, dst)
        if str(src).endswith(".parquet") and "staging" in str(src):
            count[0] += 1
            if count[0] == 1:
                pause()
    st.os.replace = replace
else:
    os.environ["EVENTVOL_INGEST_PAUSE"] = stage
ingest_files(Lake.open(lake_path), "cboe-eod", [Path(f) for f in files])
print("finished")
"""


@pytest.mark.parametrize("stage,committed", [("parsed", False), ("commit", False), ("apply", True), ("written", True)])
def test_sigkill_mid_ingest(tmp_path, stage, committed):
    base = Lake.open(tmp_path / "lake", create=True)
    ingest_files(base, "cboe-eod", [FIX / "cboe_eod_calcs.csv"])
    # the new file touches the existing 2023-03 partition and a new 2023-05 one, with a bad row
    rows = [r.replace("2023-03-16", "2023-05-16").replace("2023-03-17", "2023-05-19") for r in CALCS[1:4]]
    rows += [CALCS[6].replace(",62.50,", ",62.51,").replace("2285", "9999"), CALCS[5].replace(",0.1902,", ",11.0,")]
    new = write_eod(tmp_path / "new.csv", rows)
    reference = tmp_path / "reference"
    shutil.copytree(base.root, reference)
    before, before_rows = snapshot(base), chain(base)

    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(base.root), stage, str(new)],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "1"})
    line = proc.stderr.readline()
    assert line.strip() == f"PAUSE {stage}", line + proc.stderr.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    proc.stdout.close()

    lake = Lake.open(base.root)  # recovery: roll a committed journal forward, drop the rest
    assert not any((lake.root / "staging").iterdir())
    if not committed:
        assert snapshot(lake) == before
        pd.testing.assert_frame_equal(chain(lake), before_rows)
    else:
        assert len(chain(lake)) == len(before_rows) + 3

    rerun = ingest_files(lake, "cboe-eod", [new])
    clean_lake = Lake.open(reference)
    clean = ingest_files(clean_lake, "cboe-eod", [new])
    assert (rerun.rows_written, rerun.rows_quarantined) == (clean.rows_written, clean.rows_quarantined) == (4, 1)
    assert snapshot(lake, skip_runs=True) == snapshot(clean_lake, skip_runs=True)
    pd.testing.assert_frame_equal(chain(lake), chain(clean_lake))
    runs = lambda lk: lk.df("SELECT run_id FROM runs ORDER BY 1").run_id.tolist()  # noqa: E731
    assert runs(lake) == runs(clean_lake)


def test_point_in_time_poisoned_future(empty_lake, tmp_path):
    day1 = write_eod(tmp_path / "day1.csv", CALCS[1:6])
    ingest_files(empty_lake, "cboe-eod", [day1])
    as_of = pd.Timestamp("2023-03-16 22:00", tz="UTC")  # 18:00 ET: the EOD file is out
    seen = empty_lake.read("option_quotes", as_of=as_of)
    assert len(seen) == 5
    assert len(empty_lake.read("option_quotes", as_of=as_of - pd.Timedelta(seconds=1))) == 0

    # poison the future: the next session with absurd quotes, and IvyDB rows of the same day
    # (delivered overnight, so only known on the next morning)
    poison = [r.replace("2023-03-16", "2023-03-17").replace(",70.20,15,71.80,", ",9000,15,9001,") for r in CALCS[1:6]]
    ingest_files(empty_lake, "cboe-eod", [write_eod(tmp_path / "day2.csv", poison)])
    # IvyDB rows of the next session too (secprd gives their underlying price). The lake keeps
    # one row per key, so a same-day row of another vendor would replace the Cboe row: only
    # next-session IvyDB rows are future here.
    ivy_lines = (FIX / "ivydb_opprcd.csv").read_text().splitlines()
    ivy_next = tmp_path / "opprcd_next.csv"
    ivy_next.write_text("\n".join([ivy_lines[0]] + [r for r in ivy_lines[1:] if r.startswith("108105,2023-03-17,")]) + "\n")
    ingest_files(empty_lake, "ivydb-secprd", [FIX / "ivydb_secprd.csv"])
    assert ingest_files(empty_lake, "ivydb-opprcd", [ivy_next]).rows_written == 1
    pd.testing.assert_frame_equal(empty_lake.read("option_quotes", as_of=as_of), seen)
    # a reader never sees a row known later than its as_of
    for t in ("2023-03-16 21:00", "2023-03-17 09:59", "2023-03-17 10:00", "2023-03-17 23:00", "2023-03-21"):
        ts = pd.Timestamp(t, tz="UTC")
        got = empty_lake.read("option_quotes", as_of=ts)
        assert (got.available_ts <= ts).all()
    # IvyDB rows of 03-16 are delivered overnight: first visible at 06:00 ET on 03-17
    ivy_lake = Lake.open(tmp_path / "ivy", create=True)
    ingest_files(ivy_lake, "ivydb-opprcd", [FIX / "ivydb_opprcd.csv"])
    assert len(ivy_lake.read("option_quotes", as_of="2023-03-17 09:59:59")) == 0
    ivy = ivy_lake.read("option_quotes", as_of="2023-03-17 10:00")
    assert len(ivy) == 4 and set(ivy.trade_date) == {pd.Timestamp("2023-03-16").date()}
    # IvyDB open interest is the previous session's: it is stored on the vendor's row as is,
    # the lake's convention (OI published on the morning of D belongs to D-1's close)
    assert ivy[ivy.root == "SPX"].open_interest.tolist() == [15321, 20110]
