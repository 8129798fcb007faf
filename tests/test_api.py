"""The notebook API (`import eventvol`): dates as strings or dates, single values or lists,
pandas out, cross-checked against the layer functions and hand computations; and one
straddle implementation: the demo report's trades equal `eventvol backtest earnings-straddle`
to the cent."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import eventvol as ev
from eventvol.data_lake import EventvolError
from eventvol.pipelines.factors import read_factor


def _tree_digest(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and "locks" not in p.parts:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------- lake
def test_open_lake_info_counts_rows_and_dates(small_lake_path):
    lake = ev.open_lake(str(small_lake_path))
    info = lake.info().set_index("table")
    assert list(lake.info().columns[:4]) == ["table", "rows", "first", "last"]
    bars = lake.df("SELECT count(*) AS n, min(trade_date) AS lo, max(trade_date) AS hi FROM bars")
    assert info.loc["bars", "rows"] == bars["n"].item() > 1000
    assert info.loc["bars", "first"] == pd.Timestamp(bars["lo"].item())
    assert info.loc["bars", "last"] == pd.Timestamp("2023-08-31")
    assert info.loc["corporate_actions", "rows"] == 0 and pd.isna(info.loc["corporate_actions", "first"])
    assert info.loc["option_quotes", "files"] == 8  # Jan..Aug 2023, one part per month


def test_lake_sql_is_read_only(lake_copy):
    before = _tree_digest(lake_copy.root)
    n = lake_copy.sql("SELECT count(*) AS n FROM bars WHERE symbol = ?", ["SYNX"])["n"].item()
    assert n == len(lake_copy.read("bars", where="symbol = 'SYNX'"))
    for query, words in [(f"COPY bars TO '{lake_copy.root}/tables/bars/x.parquet'", "not a COPY statement"),
                         ("CREATE TABLE t AS SELECT 1", "not a CREATE statement"),
                         ("SELECT 1; DROP VIEW bars", "not 2 statements"),
                         ("SELEC 1", "does not parse"),
                         ("SELECT * FROM no_such_table", "the query failed")]:
        with pytest.raises(EventvolError, match=words) as info:
            lake_copy.sql(query)
        assert "\n" not in str(info.value)
    assert _tree_digest(lake_copy.root) == before


# ----------------------------------------------------------------------------- gex
def test_gex_takes_date_strings_and_dates_and_matches_an_independent_sum(small_lake):
    from test_skeleton import _independent_gex

    a = ev.gex(small_lake, "SYNX", "2023-03-17")
    b = ev.gex(small_lake, "SYNX", dt.date(2023, 3, 17))
    c = ev.gex(small_lake, "SYNX", pd.Timestamp("2023-03-17 16:00"))
    assert isinstance(a, pd.Series)
    pd.testing.assert_series_equal(a, b)
    pd.testing.assert_series_equal(a, c)
    rows = small_lake.read("option_quotes", where="underlying = 'SYNX' AND trade_date = DATE '2023-03-17'")
    assert a["net_gex_per_1pct"] == pytest.approx(_independent_gex(rows), rel=1e-10)
    assert a["net_gex_per_point"] == pytest.approx(a["net_gex_per_1pct"] / (0.01 * a["spot"]), rel=1e-12)


def test_positioning_summary_takes_a_date_string(small_lake):
    """The layer function behind `ev.gex` (it failed on '2023-03-17': str has no isoformat)."""
    from eventvol.pipelines.positioning import positioning_summary

    s = positioning_summary(small_lake, "SYNX", "2023-03-17")
    assert s["trade_date"] == "2023-03-17"
    assert s["net_gex_per_1pct"] == ev.gex(small_lake, "SYNX", "2023-03-17")["net_gex_per_1pct"]


def test_gex_with_lists_gives_one_row_per_chain_and_skips_missing_ones(small_lake):
    with pytest.warns(UserWarning, match="skipped 2 chain"):
        f = ev.gex(small_lake, ["SYNX", "ACME"], ["2023-03-17", "2023-03-18", "2023-04-20"])
    assert list(f.index) == [("SYNX", dt.date(2023, 3, 17)), ("SYNX", dt.date(2023, 4, 20)),
                             ("ACME", dt.date(2023, 3, 17)), ("ACME", dt.date(2023, 4, 20))]
    one = ev.gex(small_lake, "ACME", "2023-04-20")
    assert f.loc[("ACME", dt.date(2023, 4, 20)), "net_gex_per_1pct"] == one["net_gex_per_1pct"]


@pytest.mark.parametrize("bad", ["2023-02-29", "17/03/2023", "yesterday"])
def test_impossible_or_unparsable_dates_are_refused_in_one_sentence(small_lake, bad):
    with pytest.raises(ev.ApiError, match=re.escape(repr(bad))) as info:
        ev.gex(small_lake, "SYNX", bad)
    assert "\n" not in str(info.value)


def test_gex_profile_crosses_zero_where_zero_gamma_is(small_lake):
    s = ev.gex(small_lake, "ACME", "2023-03-17")
    p = ev.gex_profile(small_lake, "ACME", "2023-03-17", n_grid=201)
    assert list(p.columns) == ["spot", "net_gex_per_1pct"] and len(p) == 201
    assert p["spot"].iloc[0] == pytest.approx(0.5 * s["spot"]) and p["spot"].iloc[-1] == pytest.approx(1.5 * s["spot"])
    assert np.isfinite(s["zero_gamma"])
    i = np.searchsorted(p["spot"].to_numpy(), s["zero_gamma"])
    lo, hi = p["net_gex_per_1pct"].iloc[i - 1], p["net_gex_per_1pct"].iloc[i]
    assert lo * hi <= 0  # the grid cell holding zero gamma brackets the sign change
    # at the grid point nearest the current spot the profile is net GEX re-priced there
    j = int(np.argmin(np.abs(p["spot"].to_numpy() - s["spot"])))
    assert p["spot"].iloc[j] == pytest.approx(s["spot"])
    assert p["net_gex_per_1pct"].iloc[j] == pytest.approx(s["net_gex_per_1pct"], rel=1e-9)


@pytest.mark.parametrize("func", ["gex", "gex_profile"])
@pytest.mark.parametrize("opts, msg", [
    ({"iv_source": "mid"}, "unknown iv_source 'mid'; choose one of otm, vendor, solved"),
    ({"sign_model": "nope"}, "unknown sign_model 'nope'"),
    ({"n_grid": 2}, "n_grid must be at least 3 spots, not 2"),
])
def test_gex_and_profile_refuse_bad_options_in_one_sentence(small_lake, func, opts, msg):
    with pytest.raises(ev.ApiError, match=re.escape(msg)):
        getattr(ev, func)(small_lake, "ACME", "2023-03-17", **opts)


# ----------------------------------------------------------------------------- factors
def test_factor_series_and_frames_equal_the_stored_rows(small_lake):
    rows = read_factor(small_lake, "net_gex_per_1pct", start="2023-03-01", end="2023-03-31")
    s = ev.factor(small_lake, "net_gex_per_1pct", "SYNX", start="2023-03-01", end=dt.date(2023, 3, 31))
    want = rows[rows["entity"] == "SYNX"]
    assert isinstance(s, pd.Series) and s.name == "net_gex_per_1pct"
    assert isinstance(s.index, pd.DatetimeIndex) and s.index.is_monotonic_increasing
    np.testing.assert_array_equal(s.to_numpy(), want["value"].to_numpy())
    wide = ev.factor(small_lake, "net_gex_per_1pct", start="2023-03-01", end="2023-03-31")
    assert sorted(wide.columns) == sorted(rows["entity"].unique()) and len(wide.columns) == 7
    pd.testing.assert_series_equal(wide["SYNX"].rename("net_gex_per_1pct"), s, check_names=False)
    two = ev.factor(small_lake, "net_gex_per_1pct", ["SYNX", "ACME"], "2023-03-01", "2023-03-31")
    assert list(two.columns) == ["ACME", "SYNX"]
    with pytest.raises(ev.ApiError, match="start 2023-04-01 is after end 2023-03-01"):
        ev.factor(small_lake, "net_gex_per_1pct", "SYNX", "2023-04-01", "2023-03-01")


# ----------------------------------------------------------------------------- backtests
def test_backtest_string_is_one_value_and_a_list_sweeps(small_lake):
    one = ev.backtest(small_lake, "earnings-straddle", side="long")
    assert len(one.params) == 1 and one.params["side"].item() == "long"
    both = ev.backtest(small_lake, "earnings-straddle", side=["long", "short"], fill="mid")
    assert list(both.params["side"]) == ["long", "short"] and len(both.metrics) == 2
    t = both.trades.pivot(index="event_id", columns="param_id", values="pnl")
    contracts = both.trades[both.trades["param_id"] == 0].set_index("event_id")["contracts"]
    # at the mid, long and short move the same dollars the opposite way; each pays 2 fees
    np.testing.assert_allclose(t[0] + t[1], -2 * 2 * 0.65 * contracts.reindex(t.index), atol=1e-6)
    with pytest.raises(EventvolError, match="parameter fee_per_contract must be a finite number, not nan"):
        ev.backtest(small_lake, "earnings-straddle", fee_per_contract=float("nan"))
    with pytest.raises(EventvolError, match="side must be one of long, short, not 'l'"):
        ev.backtest(small_lake, "earnings-straddle", side=list("long"))

    from eventvol.strategies.catalog import run_strategy

    layer = run_strategy(small_lake, "earnings-straddle", {"side": "long", "symbols": "CRUX"})
    assert list(layer.params["side"]) == ["long"]  # the layer too: one value, not four letters
    assert set(layer.trades["underlying"]) == {"CRUX"} and len(layer.trades) >= 2


def test_backtest_returns_are_daily_pnl_over_capital_on_session_dates(small_lake):
    r = ev.backtest(small_lake, "earnings-straddle", side=["long", "short"], capital=50_000)
    traded = r.trades[r.trades["traded"]]
    assert isinstance(r.returns, pd.DataFrame) and list(r.returns.columns) == [0, 1]
    idx = r.returns.index
    assert isinstance(idx, pd.DatetimeIndex) and idx.tz is None and idx.is_unique and idx.is_monotonic_increasing
    assert not r.returns.isna().any().any()
    assert idx[0] == traded["entry_session"].min() and idx[-1] == traded["exit_session"].max()
    for pid in (0, 1):
        mine = traded[traded["param_id"] == pid]
        assert (r.returns[pid] * 50_000).sum() == pytest.approx(mine["pnl"].sum(), abs=1e-6)
        day = mine["exit_session"].iloc[0]
        assert r.pnl.loc[day, pid] == pytest.approx(mine.loc[mine["exit_session"] == day, "pnl"].sum())
        assert r.metrics.loc[pid, "total_pnl"] == pytest.approx(mine["pnl"].sum())
    single = ev.backtest(small_lake, "earnings-straddle").returns
    assert isinstance(single, pd.Series) and single.name == "earnings-straddle"
    with pytest.raises(ev.ApiError, match="capital must be a positive number"):
        ev.backtest(small_lake, "earnings-straddle", capital=0)


def test_quantstats_reads_the_returns_with_real_dates(small_lake):
    """What the removed vectorbt `portfolio` got wrong (Start 0 / End 1, a $1bn start, Sharpe
    inf): quantstats on `.returns` reports the real first and last session and the Sharpe ratio
    of the daily returns, computed here by hand."""
    qs = pytest.importorskip("quantstats")
    r = ev.backtest(small_lake, "earnings-straddle").returns
    m = qs.reports.metrics(r, mode="basic", display=False)
    assert str(m.loc["Start Period"].iloc[0]) == str(r.index[0].date()) == "2023-01-17"
    assert str(m.loc["End Period"].iloc[0]) == str(r.index[-1].date())
    x = r.to_numpy()
    assert qs.stats.sharpe(r) == pytest.approx(x.mean() / x.std(ddof=1) * np.sqrt(252), rel=1e-12)
    assert np.isfinite(qs.stats.sharpe(r)) and abs(qs.stats.sharpe(r)) < 5
    assert qs.stats.comp(r) == pytest.approx(np.prod(1 + x) - 1, rel=1e-12)


def test_backtest_has_no_misleading_portfolio(small_lake):
    r = ev.backtest(small_lake, "earnings-straddle")
    assert not hasattr(r, "portfolio")
    from eventvol.strategies.catalog import run_strategy

    assert not hasattr(run_strategy(small_lake, "earnings-straddle", {}), "portfolio")


# ----------------------------------------------------------------------------- studies
def test_hypotheses_and_study(small_lake):
    from eventvol.research.studies.registry import load_hypotheses, run_hypothesis

    h = ev.hypotheses()
    assert {"H1", "H2", "H3"} <= set(h["name"]) and list(h.columns[:2]) == ["name", "title"]
    res = ev.study(small_lake, "H1")
    raw = run_hypothesis(small_lake, load_hypotheses()["H1"])
    raw = raw if isinstance(raw, dict) else raw.to_dict()
    assert res.verdict in ("held", "not held")  # the small synthetic lake has what H1 needs
    assert res.ci_low <= res.estimate <= res.ci_high and 0 <= res.p_value <= 1
    assert res.estimate == pytest.approx(raw.get("estimate", (raw.get("primary") or {}).get("estimate")))
    assert res.verdict == ("held" if res.p_value < 0.05 and res.estimate > 0 else "not held")
    with pytest.raises(ev.ApiError, match="unknown hypothesis 'H99'"):
        ev.study(small_lake, "H99")


# ----------------------------------------------------------------------------- one straddle
@pytest.fixture(scope="module")
def demo_run(small_lake_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    shutil.copytree(small_lake_path, root / "lake")
    res = ev.demo(root / "lake", root / "out", pdf=False)
    return root, res


def test_demo_report_and_cli_backtest_give_the_same_trades_to_the_cent(demo_run, eventvol_cli):
    root, res = demo_run
    assert res.warnings == [] and res.straddle is not None
    code, out, err = eventvol_cli("backtest", "earnings-straddle", "--lake", str(root / "lake"), "--json")
    assert code == 0, err
    cli = pd.DataFrame(json.loads(out)["trades"])
    shown = pd.read_csv(root / "out" / "trades_earnings-straddle.csv")  # what the demo's report used
    cols = ["event_id", "underlying", "entry_session", "exit_session", "strikes", "traded"]
    key = shown[cols].assign(entry_session=shown["entry_session"].str[:10], exit_session=shown["exit_session"].str[:10])
    pd.testing.assert_frame_equal(key.reset_index(drop=True), cli[cols].reset_index(drop=True), check_dtype=False)
    cents = lambda s: pd.to_numeric(s).round(2).fillna(-1e18).to_numpy()
    for c in ("entry_fill", "exit_fill", "pnl"):
        np.testing.assert_array_equal(cents(shown[c]), cents(cli[c]))
    assert shown["traded"].sum() >= 10
    # the report's tear sheet: total P&L per dealer-gamma regime at entry, to the cent (-$1,234.56)
    html = (root / "out" / "report.html").read_text()
    rows = re.findall(r'<td class="l">(dealers short gamma|dealers long gamma)</td><td>\d+</td><td>[^<]*</td>'
                      r'<td>[^<]*</td><td>(-?)\$([\d,.]+)</td>', html)
    table = {k: float(sign + v.replace(",", "")) for k, sign, v in rows}
    t = cli[cli["traded"]]
    g = t["net_gex_per_1pct_at_entry"]
    for regime, mask in (("dealers short gamma", g < 0), ("dealers long gamma", g >= 0)):
        if mask.any():
            assert table[regime] == round(t.loc[mask, "pnl"].sum(), 2)


def test_refresh_computes_due_units_once_and_takes_date_strings(lake_copy):
    first = ev.refresh(lake_copy, "gex", start="2023-03-01", end=dt.date(2023, 3, 31))
    assert isinstance(first, pd.Series)
    sessions = lake_copy.df("SELECT count(DISTINCT trade_date) AS n FROM option_quotes "
                            "WHERE trade_date BETWEEN DATE '2023-03-01' AND DATE '2023-03-31'")["n"].item()
    assert first["units_computed"] == sessions == 23 and first["units_failed"] == 0
    again = ev.refresh(lake_copy, ["gex"], "2023-03-01", "2023-03-31")
    assert again["units_computed"] == 0 and again["units_skipped"] == sessions
    with pytest.raises(ev.ApiError, match="end must be a date as YYYY-MM-DD, not '2023-03-32'"):
        ev.refresh(lake_copy, "gex", "2023-03-01", "2023-03-32")
