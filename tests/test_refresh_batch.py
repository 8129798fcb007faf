"""Batched refresh: one load, one compute and one write per family range give the same factor
values and the same fingerprints as computing every unit on its own; the family `version`
enters the fingerprint; `register` refuses duplicate names and outputs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_lake, factor_values

from eventvol.data_lake import Lake
from eventvol.data_lake.synthetic import SyntheticConfig, build
from eventvol.pipelines import refresh as rf
from eventvol.pipelines.factors import month_rows, row_blocks
from eventvol.pipelines.registry import REGISTRY, FactorSpec, RegistryError, load_families, register

# 19 months, so that 12-1 momentum (252 sessions of history) has values; thin chains
TINY = SyntheticConfig(seed=5, start="2021-09-01", end="2023-03-31", n_stocks=3, n_members=3, stock_expiries=2,
                       index_monthlies=2, index_weeklies_days=14, index_dailies=2)
UNITS_FROM = dt.date(2023, 3, 22)  # unit by unit from here: 8 sessions x 6 families


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("batch") / "tiny"
    build(Lake.open(path, create=True), TINY)
    return path




def state(lake: Lake) -> pd.DataFrame:
    return lake.read("refresh_state", columns=["family", "trade_date", "input_fingerprint", "rows_written"]).sort_values(
        ["family", "trade_date"]).reset_index(drop=True)


def test_batched_equals_unit_by_unit_bit_for_bit(tiny_path, tmp_path):
    batched = copy_lake(tiny_path, tmp_path / "batched")
    one_by_one = copy_lake(tiny_path, tmp_path / "units")
    rb = rf.refresh(batched)
    ru = rf.refresh(one_by_one, start=UNITS_FROM, unit_by_unit=True)
    assert rb.failed == [] and ru.failed == [] and rb.absent == {} and ru.absent == {}
    families = load_families()
    assert {u.family for u in rb.computed} == set(families)  # the synthetic lake feeds every family
    assert len(ru.computed) == ru.tasks == 8 * len(families)
    # whole-range families are one task each; the others one per batch block of months
    months = {f: sorted({(u.trade_date.year, u.trade_date.month) for u in rb.computed if u.family == f})
              for f in families}
    # gex batches by rows: the tiny lake's 19 months of chains are far below its budget
    expect_tasks = sum(1 if s.batch_months == 0 or s.batch_rows else
                       len({(y * 12 + m - 1) // s.batch_months for y, m in months[f]})
                       for f, s in families.items())
    assert rb.tasks == expect_tasks == 3 + 1 + 1 + 7  # dispersion, letf, momentum; implied_corr; gex; squeeze
    assert len(months["gex"]) == 19 and batched.read_arrow("option_quotes", columns=["strike"]).num_rows \
        <= families["gex"].batch_rows
    got, ref = factor_values(batched), factor_values(one_by_one)
    got = got[got.trade_date >= UNITS_FROM].reset_index(drop=True)
    writers = {f for f, s in families.items() if set(s.outputs) & set(got["factor"])}
    # implied correlation needs two members with chains: the synthetic index keeps one after
    # 2022-06-15, so its values (checked below over the whole range) end there
    assert writers == set(families) - {"implied_corr"}
    assert {"dispersion_ratio_21d", "momentum_12_1", "net_gex_per_1pct"} <= set(got["factor"])
    assert (factor_values(batched)["factor"] == "implied_corr_30d").sum() > 100
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    sb = state(batched)
    pd.testing.assert_frame_equal(sb[sb.trade_date >= UNITS_FROM].reset_index(drop=True), state(one_by_one),
                                  check_exact=True)
    assert sb["rows_written"].sum() == rb.rows_written == len(factor_values(batched))


def test_a_revision_inside_a_batched_range_recomputes_only_its_window(tiny_path, tmp_path):
    lake = copy_lake(tiny_path, tmp_path / "lake")
    rf.refresh(lake, factors=["dispersion"])
    before = factor_values(lake)
    bars = lake.read("bars")
    feb = bars[pd.to_datetime(bars.trade_date).dt.month == 2]
    row = feb[feb.trade_date == feb.trade_date.max()].iloc[[0]].copy()
    row["close"] *= 1.01
    lake.write("bars", row)
    res = rf.refresh(lake, factors=["dispersion"])
    # dispersion's lookback reaches every later session, not earlier months
    assert min(u.trade_date for u in res.computed) == dt.date(2023, 2, 1)
    assert max(u.trade_date for u in res.skipped) == dt.date(2023, 1, 31)
    assert res.tasks == 1  # one contiguous run, one task
    after = factor_values(lake)
    early = lambda v: v[v.trade_date < dt.date(2023, 2, 1)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(early(after), early(before), check_exact=True)
    fresh = copy_lake(tiny_path, tmp_path / "fresh")
    fresh.write("bars", row)
    rf.refresh(fresh, factors=["dispersion"], start=dt.date(2023, 3, 28), unit_by_unit=True)
    late = lambda v: v[v.trade_date >= dt.date(2023, 3, 28)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(late(after), factor_values(fresh), check_exact=True)
    assert not late(after)["value"].equals(late(before)["value"])  # the revision moved them


def test_family_version_enters_the_fingerprint(tiny_path, tmp_path):
    lake = copy_lake(tiny_path, tmp_path / "lake")
    first = rf.refresh(lake, factors=["letf"])
    assert rf.refresh(lake, factors=["letf"]).computed == []
    spec = REGISTRY["letf"]
    try:
        REGISTRY["letf"] = dataclasses.replace(spec, version="2")
        res = rf.refresh(lake, factors=["letf"])
        assert len(res.computed) == len(first.computed) and {u.reason for u in res.computed} == {"changed"}
        assert {u.fingerprint for u in res.computed}.isdisjoint({u.fingerprint for u in first.computed})
    finally:
        REGISTRY["letf"] = spec
    again = rf.refresh(lake, factors=["letf"])  # back to version 1: due again, same fingerprints as the first run
    assert [u.fingerprint for u in again.computed] == [u.fingerprint for u in first.computed]


def _noop(data, start, end):
    return pd.DataFrame(columns=["factor", "trade_date", "entity", "value"])


def test_register_refuses_duplicate_names_and_overlapping_outputs():
    load_families()
    base = dict(inputs=("bars",), load=lambda lake, s, e: None, compute=_noop)
    with pytest.raises(RegistryError, match=r"^factor family 'gex' is already registered$"):
        register(FactorSpec(name="gex", outputs=("x_new",), **base))
    with pytest.raises(RegistryError, match=r"^factor family 'test_dup' would write 'zero_gamma', which family 'gex' already writes$"):
        register(FactorSpec(name="test_dup", outputs=("a_new", "zero_gamma"), **base))
    with pytest.raises(RegistryError, match=r"would write 'momentum', which family 'momentum' already writes"):
        register(FactorSpec(name="test_dup", outputs=("momentum",), **base))
    with pytest.raises(RegistryError, match=r"lists output 'b' twice"):
        register(FactorSpec(name="test_dup", outputs=("b", "b"), **base))
    with pytest.raises(RegistryError, match=r"requires \['rates'\] outside its inputs"):
        register(FactorSpec(name="test_dup", outputs=("c_new",), requires=(("rates",),), **base))
    assert "test_dup" not in REGISTRY
    ok = register(FactorSpec(name="test_dup", outputs=("d_new",), **base))
    try:
        assert REGISTRY["test_dup"] is ok
    finally:
        REGISTRY.pop("test_dup")


def test_make_tasks_cuts_runs_at_skipped_days_and_batch_blocks():
    days = [dt.date(2023, 1, d) for d in (3, 4, 5, 6, 9)] + [dt.date(2023, 2, 1), dt.date(2023, 2, 2)]
    due = [rf.Unit("f", d, "x") for d in days if d != dt.date(2023, 1, 5)] + [rf.Unit("g", d, "x") for d in days]
    tasks = rf.make_tasks(due, {"f": days, "g": days}, {"f": 0, "g": 1})
    assert [(t.family, t.dates) for t in tasks] == [
        ("f", tuple(days[:2])), ("f", tuple(days[3:])),  # the up-to-date 5 January splits f's run
        ("g", tuple(days[:5])), ("g", tuple(days[5:])),  # g writes month by month
    ]
    assert len(rf.make_tasks(due, {"f": days, "g": days}, {"f": 0, "g": 0}, unit_by_unit=True)) == len(due)


@pytest.mark.parametrize("stage", ["factors_written:0", "state_written:0"])
def test_sigkill_inside_a_whole_range_batch_then_rerun_equals_a_clean_run(tiny_path, tmp_path, stage):
    """The whole-range families share one factors write and one state write: a kill between
    (or after) them leaves units due or done, never half-written."""
    import os
    import signal
    import subprocess
    import sys
    import time

    clean = copy_lake(tiny_path, tmp_path / "clean")
    rf.refresh(clean, factors=["dispersion", "momentum"])
    lake = copy_lake(tiny_path, tmp_path / "lake")
    pause = tmp_path / "pause"
    exe = str(Path(sys.executable).with_name("eventvol"))
    env = {**os.environ, "CI": "1", rf.PAUSE_AT_ENV: stage, rf.PAUSE_FILE_ENV: str(pause)}
    p = subprocess.Popen([exe, "refresh", "--lake", str(lake.root), "--factors", "dispersion,momentum"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t = time.monotonic()
    while not pause.exists():
        assert p.poll() is None, p.communicate()
        assert time.monotonic() - t < 120, "refresh never reached its pause point"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    again = rf.refresh(Lake.open(lake.root), factors=["dispersion", "momentum"])
    # killed before the state write: every unit is still due; after it: none is
    assert len(again.computed) == (len(state(clean)) if stage == "factors_written:0" else 0)
    pd.testing.assert_frame_equal(factor_values(Lake.open(lake.root)), factor_values(clean), check_exact=True)
    pd.testing.assert_frame_equal(state(Lake.open(lake.root)), state(clean), check_exact=True)


def test_row_blocks_pack_consecutive_months_up_to_the_budget():
    rows = {100: 40, 101: 50, 102: 5, 103: 200, 104: 1, 105: 99}
    assert row_blocks(rows, 100) == {100: 0, 101: 0, 102: 0, 103: 1, 104: 2, 105: 2}
    assert row_blocks(rows, 10**9) == dict.fromkeys(rows, 0)
    assert row_blocks(rows, 1) == {m: i for i, m in enumerate(sorted(rows))}  # a month never splits


def test_gex_row_budget_splits_batches_without_changing_a_value(tiny_path, tmp_path, monkeypatch):
    whole = copy_lake(tiny_path, tmp_path / "whole")
    split = copy_lake(tiny_path, tmp_path / "split")
    rw = rf.refresh(whole, factors=["gex"])
    per_month = month_rows(split, "option_quotes")
    assert sum(per_month.values()) == split.read_arrow("option_quotes", columns=["strike"]).num_rows
    budget = max(per_month.values()) * 2  # about two to four months a batch
    monkeypatch.setenv(rf.BATCH_ROWS_ENV, str(budget))
    rs = rf.refresh(split, factors=["gex"])
    assert rw.tasks == 1 and rs.tasks == len(set(row_blocks(per_month, budget).values())) >= 6
    pd.testing.assert_frame_equal(factor_values(split), factor_values(whole), check_exact=True)
    pd.testing.assert_frame_equal(state(split), state(whole), check_exact=True)
