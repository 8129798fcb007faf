"""`eventvol refresh`: due units only, no-op reruns change no file, lookback fingerprints,
missing inputs, the lock (exit 75) and SIGKILL at every stage of a run."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eventvol.data_lake import Lake, LakeLockedError
from eventvol.data_lake.synthetic import SyntheticConfig, build
from eventvol.pipelines import refresh as rf
from eventvol.pipelines.registry import REGISTRY, FactorSpec, register

TINY = SyntheticConfig(seed=5, start="2023-01-03", end="2023-02-28", n_stocks=3, n_members=3)
CUT = dt.date(2023, 2, 14)  # the "history" lake holds option quotes and bars up to here
EVENTVOL = str(Path(sys.executable).with_name("eventvol"))


def _bars_ma(lake, start, end):
    """Test family input: bars from 4 sessions before `start` (its lookback) to `end`."""
    lo = rf.window_start(start, 4)
    return lake.read("bars", columns=["trade_date", "symbol", "close"],
                     where="trade_date >= ? AND trade_date <= ?", params=[lo, end])


def _bars_ma_compute(bars: pd.DataFrame, start, end) -> pd.DataFrame:
    """5-session mean close per symbol: every unit depends on 4 earlier sessions."""
    bars = bars.sort_values(["symbol", "trade_date"])
    ma = bars.groupby("symbol")["close"].transform(lambda s: s.rolling(5).mean())
    out = pd.DataFrame({"factor": "close_ma5", "trade_date": bars["trade_date"], "entity": bars["symbol"], "value": ma})
    d = pd.to_datetime(out["trade_date"]).dt.date
    return out[(d >= start) & (d <= end) & out["value"].notna()]


BARS_MA = FactorSpec(name="test_bars_ma", inputs=("bars",), outputs=("close_ma5",), load=_bars_ma,
                     compute=_bars_ma_compute, lookback_sessions=4)


@pytest.fixture(scope="module")
def full_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("refresh") / "full"
    build(Lake.open(path, create=True), TINY)
    return path


@pytest.fixture(scope="module")
def history_path(full_path, tmp_path_factory) -> Path:
    """The tiny market with option quotes and bars only up to CUT."""
    full = Lake.open(full_path)
    path = tmp_path_factory.mktemp("refresh") / "history"
    lake = Lake.open(path, create=True)
    for t in ("option_quotes", "bars"):
        lake.write(t, full.read_arrow(t, where="trade_date <= ?", params=[CUT]))
    return path


@pytest.fixture
def history(history_path, tmp_path) -> Lake:
    shutil.copytree(history_path, tmp_path / "lake")
    return Lake.open(tmp_path / "lake")


@pytest.fixture
def with_bars_ma():
    register(BARS_MA)
    yield BARS_MA
    REGISTRY.pop(BARS_MA.name, None)


def add_session(lake: Lake, full: Lake, d: dt.date) -> None:
    for t in ("option_quotes", "bars"):
        lake.write(t, full.read_arrow(t, where="trade_date = ?", params=[d]))


def factor_values(lake: Lake) -> pd.DataFrame:
    return lake.read("factors", columns=["factor", "trade_date", "entity", "value"]).sort_values(
        ["factor", "entity", "trade_date"]).reset_index(drop=True)


def lake_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file of the lake except the lock file, whose content is the pid of
    the last process that took the lock (it holds no data)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "locks" not in p.parts}


def test_first_run_computes_every_session_and_matches_materialize(history):
    from eventvol.pipelines.factors import materialize
    from eventvol.pipelines.positioning import positioning_summary

    res = rf.refresh(history, factors=["gex"])
    sessions = sorted(history.df("SELECT DISTINCT trade_date FROM option_quotes")["trade_date"])
    assert [u.trade_date for u in res.computed] == [pd.Timestamp(d).date() for d in sessions]
    assert res.failed == [] and res.skipped == []
    got = factor_values(history)
    # independent path: the single-chain summary behind `eventvol gex`
    d = pd.Timestamp(sessions[7]).date()
    one = positioning_summary(history, "SYNX", d)
    row = got[(got.factor == "net_gex_per_1pct") & (got.entity == "SYNX") & (got.trade_date == d)]
    assert row["value"].item() == pytest.approx(one["net_gex_per_1pct"], rel=1e-12)
    # and the month-by-month materializer gives the same rows bit for bit
    materialize(history, "gex")
    pd.testing.assert_frame_equal(factor_values(history), got, check_exact=True)
    runs = history.read("runs")
    assert (runs["command"] == "refresh").sum() == 1 and runs["status"].tolist()[0] == "ok"


def test_second_run_with_no_new_data_computes_nothing_and_changes_no_file(history, with_bars_ma):
    first = rf.refresh(history)
    assert len(first.computed) > 0
    before = lake_hashes(history.root)
    second = rf.refresh(history)
    assert second.computed == [] and second.failed == [] and second.run_id is None
    assert len(second.skipped) == len(first.computed)
    assert lake_hashes(history.root) == before


def test_new_session_recomputes_only_units_whose_inputs_changed(history, full_path):
    rf.refresh(history, factors=["gex"])
    old = factor_values(history)
    jan = {k: v for k, v in lake_hashes(history.root).items() if "month=01" in k}
    assert any("tables/factors/" in k for k in jan)
    new_day = dt.date(2023, 2, 15)
    add_session(history, Lake.open(full_path), new_day)
    res = rf.refresh(history, factors=["gex"])
    # month partitions are the fingerprint's grain: the February units are due, nothing else
    feb = sorted(d for d in old.trade_date.unique() if d.month == 2) + [new_day]
    assert sorted(u.trade_date for u in res.computed) == feb
    assert len(res.skipped) == (old.trade_date.drop_duplicates().map(lambda d: d.month) == 1).sum() > 0
    assert {k: v for k, v in lake_hashes(history.root).items() if "month=01" in k} == jan
    clean = Lake.open(history.root)
    got = factor_values(clean)
    pd.testing.assert_frame_equal(got[got.trade_date < new_day].reset_index(drop=True), old, check_exact=True)
    assert (got.trade_date == new_day).sum() == (old.trade_date == CUT).sum()


def test_lookback_reaches_into_the_previous_month(history, with_bars_ma):
    rf.refresh(history, factors=["test_bars_ma"])
    bars = history.read("bars")
    jan_last = bars[pd.to_datetime(bars.trade_date).dt.month == 1]["trade_date"].max()
    # a revised January close must make February's first 4 units (whose window holds it) due
    row = bars[(bars.trade_date == jan_last)].iloc[[0]].copy()
    before = bars[bars.symbol == row["symbol"].item()].sort_values("trade_date")
    expect_before = before["close"].rolling(5).mean().to_numpy()
    row["close"] = row["close"] * 1.5
    history.write("bars", row)
    res = rf.refresh(history, factors=["test_bars_ma"])
    sessions = sorted(bars.trade_date.unique())
    i = sessions.index(jan_last)
    due = sorted(u.trade_date for u in res.computed)
    jan = [d for d in sessions if d.month == 1]
    assert due == jan + sessions[i + 1:i + 5]
    got = factor_values(history)
    sym = row["symbol"].item()
    after = history.read("bars", where="symbol = ?", params=[sym]).sort_values("trade_date")
    expect = after["close"].rolling(5).mean().to_numpy()
    mine = got[got.entity == sym].sort_values("trade_date")["value"].to_numpy()
    # pandas' rolling sum is streamed, so another history length rounds differently: 1e-12
    np.testing.assert_allclose(mine, expect[4:], rtol=1e-12, atol=0)
    assert not np.allclose(mine[i - 4:i + 1], expect_before[i:i + 5], rtol=1e-6)  # the revision moved them


def test_force_recomputes_every_unit_with_identical_values(history):
    rf.refresh(history, factors=["gex"])
    before = factor_values(history)
    res = rf.refresh(history, factors=["net_gex_per_1pct"], force=True)  # an output name selects its family
    assert len(res.computed) == before.trade_date.nunique() and res.skipped == []
    pd.testing.assert_frame_equal(factor_values(history), before, check_exact=True)


def run_cli(lake: Path, *args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    e = {**os.environ, "CI": "1", **(env or {})}
    return subprocess.Popen([EVENTVOL, "refresh", "--lake", str(lake), "--factors", "gex", *args], env=e,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("budget", ["abc", "0", "-5", "1e6", "2.5"])
def test_a_bad_row_budget_is_one_sentence_and_writes_nothing(history, budget):
    before = {p.relative_to(history.root): p.stat().st_mtime_ns for p in history.root.rglob("*") if p.is_file()}
    p = run_cli(history.root, env={rf.BATCH_ROWS_ENV: budget})
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"eventvol: error: {rf.BATCH_ROWS_ENV} must be a positive whole number "
                                        f"of rows, not {budget!r}"]
    after = {p.relative_to(history.root): p.stat().st_mtime_ns for p in history.root.rglob("*") if p.is_file()}
    assert {k: v for k, v in after.items() if k.parts[0] != "locks"} == \
        {k: v for k, v in before.items() if k.parts[0] != "locks"}
    assert not Lake.open(history.root).files("factors")


def test_missing_inputs_for_a_due_session_exit_3_and_still_write_the_rest(history):
    p = run_cli(history.root, "--end", "2023-02-21", "--json")
    outp, errp = p.communicate(timeout=60)
    assert p.returncode == rf.EXIT_MISSING_INPUTS
    last = errp.strip().splitlines()[-1]
    assert last.startswith("eventvol: error: inputs of due session 2023-02-15 for factor family 'gex' are missing")
    assert "Traceback" not in errp
    import json

    summary = json.loads(outp)
    assert summary["units_failed"] == 4  # 15, 16, 17 and 21 February (the 20th is Presidents' Day)
    assert [f["trade_date"] for f in summary["failed"]] == ["2023-02-15", "2023-02-16", "2023-02-17", "2023-02-21"]
    assert summary["units_computed"] == len(Lake.open(history.root).df("SELECT DISTINCT trade_date FROM factors"))
    gex_lines = [line.split("Z ", 1)[1] for line in errp.splitlines() if " refresh gex " in line]
    # one line per family and month, one for the sessions whose data has not arrived
    assert gex_lines == ["refresh gex 4 sessions failed missing inputs in option_quotes "
                         "(2023-02-15..2023-02-21: data not arrived)",
                         "refresh gex 2023-01 computed 20 units (new 20) rows=1040",
                         "refresh gex 2023-02 computed 10 units (new 10) rows=520"]
    assert summary["units_computed"] == 30


def test_verbose_logs_one_line_per_unit(history):
    p = run_cli(history.root, "--end", "2023-02-21", "--verbose")
    outp, _ = p.communicate(timeout=60)  # without --json the log is on stdout
    assert p.returncode == rf.EXIT_MISSING_INPUTS
    unit_lines = [line for line in outp.splitlines() if " refresh gex 2023-0" in line and " units" not in line]
    assert len(unit_lines) == 30 + 4  # every computed and every missing unit
    assert sum(" failed missing inputs in option_quotes" in line for line in unit_lines) == 4


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    t = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"refresh exited early: {proc.communicate()}")
        if time.monotonic() - t > timeout:
            raise AssertionError("refresh never reached its pause point")
        time.sleep(0.02)


def test_concurrent_refresh_exits_75_at_once_and_the_first_is_unharmed(history, tmp_path):
    pause = tmp_path / "pause"
    first = run_cli(history.root, env={rf.PAUSE_AT_ENV: "factors_written:0", rf.PAUSE_FILE_ENV: str(pause)})
    _wait_for(pause, first)
    t = time.monotonic()
    second = run_cli(history.root)
    _, err2 = second.communicate(timeout=60)
    assert second.returncode == 75
    assert err2.strip().splitlines() == [
        f"eventvol: error: lake {history.root} is being written by another process (pid {first.pid}); try again when it finishes"]
    assert time.monotonic() - t < 30  # at once: no waiting on the lock (mostly interpreter start-up)
    with pytest.raises(LakeLockedError):  # the library path too
        rf.refresh(Lake.open(history.root))
    pause.unlink()
    assert first.wait(timeout=60) == 0
    clean = Lake.open(history.root)
    before = factor_values(clean)
    rf.refresh(clean, factors=["gex"], force=True)
    pd.testing.assert_frame_equal(factor_values(clean), before, check_exact=True)


@pytest.fixture(scope="module")
def clean_values(history_path, tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("refresh") / "clean"
    shutil.copytree(history_path, path)
    lake = Lake.open(path)
    rf.refresh(lake, factors=["gex"])
    return factor_values(lake)


# Stages: plan made under the lock (nothing written); January's factors written but not its
# state; January complete; February's factors written; everything written but the run log.
KILL_STAGES = ["planned", "factors_written:0", "state_written:0", "factors_written:1", "done"]


@pytest.mark.parametrize("stage", KILL_STAGES)
def test_sigkill_at_any_stage_then_rerun_equals_a_clean_run(history, tmp_path, clean_values, stage):
    pause = tmp_path / "pause"
    # a budget of one row per batch: each month is a batch of its own, so a kill can fall
    # between two committed batches
    p = run_cli(history.root, env={rf.PAUSE_AT_ENV: stage, rf.PAUSE_FILE_ENV: str(pause), rf.BATCH_ROWS_ENV: "1"})
    _wait_for(pause, p)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    lake = Lake.open(history.root)
    res = rf.refresh(lake, factors=["gex"])
    assert res.failed == [], res.failed[:2]
    pd.testing.assert_frame_equal(factor_values(Lake.open(history.root)), clean_values, check_exact=True)
    assert not any((history.root / "staging").iterdir())
    assert rf.refresh(Lake.open(history.root), factors=["gex"]).computed == []


def test_sigkill_at_random_moments_inside_lake_writes(history, clean_values):
    """Kills not aligned to the runner's stages (inside a lake transaction, mid-write)."""
    rng = np.random.default_rng(1)
    for delay in rng.uniform(1.5, 3.5, size=2):
        p = run_cli(history.root, "--force")
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    rf.refresh(Lake.open(history.root), factors=["gex"])
    pd.testing.assert_frame_equal(factor_values(Lake.open(history.root)), clean_values, check_exact=True)


def _boom(data, start, end):
    if start <= dt.date(2023, 1, 10) <= end:
        raise ValueError("bad chain on 2023-01-10")
    return _bars_ma_compute(data, start, end)


def test_a_failing_unit_is_reported_and_the_others_are_written(history):
    spec = FactorSpec(name="test_boom", inputs=("bars",), outputs=("boom",), load=_bars_ma, compute=_boom,
                      lookback_sessions=4)
    register(spec)
    try:
        res = rf.refresh(history, factors=["test_boom"])
    finally:
        REGISTRY.pop(spec.name, None)
    # the January task (one contiguous run of dates) fails as a whole; February is written
    assert {d.month for _, d, _ in res.failed} == {1} and all(u.trade_date.month == 2 for u in res.computed)
    err = res.error()
    assert isinstance(err, rf.UnitsFailedError) and err.exit_code == rf.EXIT_COMPUTE_FAILED
    assert str(err).startswith("computing factor family 'test_boom' for 2023-01-03 failed: ValueError: bad chain on 2023-01-10")
    state = history.read("refresh_state")
    assert sorted(state["trade_date"]) == sorted(u.trade_date for u in res.computed)  # January stays due


def test_bad_arguments_are_one_sentence_errors(history):
    from eventvol.data_lake import EventvolError
    from eventvol.pipelines.executors import make_executor

    with pytest.raises(EventvolError, match=r"^unknown --engine 'spark'; choose one of local, dask$"):
        make_executor("spark")
    with pytest.raises(EventvolError, match=r"^--scheduler only applies to --engine dask$"):
        make_executor("local", "tcp://127.0.0.1:8786")
    with pytest.raises(EventvolError, match=r"^unknown factor 'nope'"):
        rf.refresh(history, factors=["nope"])
    with pytest.raises(EventvolError, match=r"^--start 2023-02-01 is after --end 2023-01-31$"):
        rf.refresh(history, start=dt.date(2023, 2, 1), end=dt.date(2023, 1, 31))
    assert history.read("runs").empty and history.read("refresh_state").empty  # nothing written
    with pytest.raises(EventvolError, match=r"^unknown --engine 'spark'"):
        rf.refresh(history, engine="spark")
    with pytest.raises(EventvolError, match=r"^--scheduler only applies to --engine dask$"):
        rf.refresh(history, scheduler="tcp://127.0.0.1:8786")
    assert history.read("runs").empty and history.read("refresh_state").empty
