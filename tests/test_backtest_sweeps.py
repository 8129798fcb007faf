"""Sweeps, walk-forward, metrics, the session strategies and the `eventvol backtest` CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from eventvol.strategies.catalog import run_strategy
from eventvol.strategies.engine import simulate_panel
from eventvol.strategies.metrics import event_metrics, max_drawdown
from eventvol.strategies.sweep import ParamError, param_grid, parse_param_options, parse_split, walk_forward
from eventvol.strategies.option_events import OptionEventParams


def test_max_drawdown_and_sharpe_by_hand():
    assert max_drawdown([100, -50, -70, 30]) == 120.0  # peak 100 -> trough -20
    assert max_drawdown([5, 5]) == 0.0
    m = event_metrics(pd.Series([100.0, -50.0, -70.0, 30.0, np.nan]))
    assert m["trades"] == 4 and m["events"] == 5 and m["hit_rate"] == 0.5
    x = np.array([100.0, -50.0, -70.0, 30.0])
    assert m["sharpe_per_event"] == pytest.approx(x.mean() / x.std(ddof=1))
    assert m["p05_pnl"] == pytest.approx(np.percentile(x, 5))


def test_panel_engine_handles_zero_and_negative_structure_prices():
    # a structure worth 2.0 that expires at 0, and a credit structure at -3 bought back at -1
    mark = np.array([[2.0, -3.0], [0.5, -2.0], [0.0, -1.0]])
    res = simulate_panel(mark, np.array([2.1, -3.2]), np.array([0.0, -0.9]), np.array([2, 2]),
                         np.array([2.0, -1.0]), np.array([1.0, 0.5]))
    assert res.pnl.iloc[0] == pytest.approx(2 * (0.0 - 2.1) - 2.0)
    assert res.pnl.iloc[1] == pytest.approx(-1 * (-0.9 - -3.2) - 1.0)


def test_param_grid_is_a_cartesian_product_with_types():
    grid = parse_param_options(["side=long,short", "fee_per_contract=0,0.65", "hold=0,1,2"])
    ps = param_grid(OptionEventParams, grid)
    assert len(ps) == 12 and ps[0].fee_per_contract == 0.0 and isinstance(ps[-1].hold, int)
    with pytest.raises(ParamError, match="unknown parameter 'sid'"):
        param_grid(OptionEventParams, {"sid": ["long"]})
    with pytest.raises(ParamError, match="hold must be a int"):
        param_grid(OptionEventParams, {"hold": ["x"]})
    with pytest.raises(ParamError, match="side must be one of long, short"):
        param_grid(OptionEventParams, {"side": ["up"]})
    assert parse_split("walk-forward:train=6,test=3") == (6, 3)
    with pytest.raises(ParamError, match="--split"):
        parse_split("kfold:5")


def _synthetic_trades() -> pd.DataFrame:
    days = pd.bdate_range("2023-01-02", periods=12)
    rows = []
    for i, d in enumerate(days):
        for pid in (0, 1):
            good = (pid == 1) == (i < 6)  # param 1 wins early, param 0 late
            rows.append({"param_id": pid, "event_id": f"E{i:02d}", "entry_session": d,
                         "exit_session": d + pd.Timedelta(hours=1), "pnl": (10.0 + i) if good else -5.0})
    return pd.DataFrame(rows)


def test_walk_forward_chooses_in_sample_and_reports_out_of_sample_separately():
    wf = walk_forward(_synthetic_trades(), train=4, test=2)
    chosen = [f["chosen_param_id"] for f in wf["folds"]]
    assert chosen == [1, 1, 0, 0]  # windows [0-3],[2-5],[4-7],[6-9]: the best mean P&L in each
    # out of sample: events 4,5 (param 1: 14, 15), 6,7 (param 1: -5, -5), 8,9 (param 0: 18, 19), 10,11 (param 0: 20, 21)
    assert wf["out_of_sample"]["total_pnl"] == 14 + 15 - 5 - 5 + 18 + 19 + 20 + 21
    assert wf["out_of_sample"]["trades"] == 8
    assert wf["in_sample"]["trades"] == 16


def test_walk_forward_purges_test_events_entered_before_training_exits():
    t = _synthetic_trades()
    t.loc[t["event_id"] == "E03", "exit_session"] = pd.Timestamp("2023-01-20")  # held past E04, E05 entries
    wf = walk_forward(t, train=4, test=2)
    # the two folds whose training window holds E03 lose their whole test window
    assert len(wf["folds"]) == 2
    assert all(f["test_start"] > f["train_end"] for f in wf["folds"])


def test_gamma_regime_pnl_by_hand(small_lake):
    res = run_strategy(small_lake, "gamma-regime", {"negative": ["trend"], "positive": ["reversal"], "cost_bps": ["1"]})
    t = res.trades.set_index("event_id")
    bars = small_lake.df("SELECT trade_date, close FROM bars WHERE symbol = 'SYNX' ORDER BY trade_date")
    gex = small_lake.df("SELECT trade_date, value FROM factors WHERE factor = 'net_gex_per_1pct' AND entity = 'SYNX'")
    gex = dict(zip(gex["trade_date"], gex["value"]))
    for i in (5, 40, 100):
        d, prev, nxt = bars["trade_date"][i], bars["close"][i - 1], bars["close"][i + 1]
        c = bars["close"][i]
        direction = np.sign(c - prev) * (1 if gex[d] < 0 else -1)
        hand = direction * (nxt - c) - 2 * 1e-4 * c
        assert t.loc[f"SYNX-{d:%Y%m%d}", "pnl"] == pytest.approx(hand, abs=1e-9)


def _write_factor(lake, name, entity, dates, values):
    lake.write("factors", pd.DataFrame({"factor": name, "trade_date": dates, "entity": entity,
                                        "value": np.asarray(values, float), "run_id": "test"}))


def test_momentum_crash_variants_by_hand(lake_copy):
    dates = lake_copy.df("SELECT trade_date FROM bars WHERE symbol = 'SYNX' ORDER BY trade_date")["trade_date"]
    n = len(dates)
    rng = np.random.default_rng(3)
    wml = rng.normal(0, 0.01, n)
    vol = np.full(n, 0.30)
    como = np.linspace(0, 1, n)  # rising: its expanding percentile is 1.0 every day
    disp = np.where(np.arange(n) % 2 == 0, 0.9, 0.1)
    with lake_copy.writer():
        for name, v in [("wml_return", wml), ("wml_vol_126d", vol), ("comomentum", como),
                        ("dispersion_ratio_21d_pct3y", disp)]:
            _write_factor(lake_copy, name, "SYNX", dates, v)
    grid = {"variant": ["plain", "vol_scaled", "derisked"], "notional": ["1000000"], "target_vol": ["0.15"]}
    t = run_strategy(lake_copy, "momentum-crash", grid).trades
    p = t.pivot(index="entry_session", columns="param_id", values="pnl")
    expect_plain = 1e6 * wml[1:]  # a position at close D earns the next session's WML return
    np.testing.assert_allclose(p[0].to_numpy(), expect_plain, rtol=1e-9)
    np.testing.assert_allclose(p[1].to_numpy(), 0.5 * expect_plain, rtol=1e-9)  # 0.15 / 0.30
    crowded = disp[:-1] >= 0.8
    np.testing.assert_allclose(p[2].to_numpy(), np.where(crowded, 0.0, 0.5 * expect_plain), atol=1e-6)


def test_squeeze_pnl_by_hand_and_missing_factor_error(lake_copy):
    from eventvol.strategies.option_events import MissingFactorError

    with pytest.raises(MissingFactorError, match="short_interest_float"):
        run_strategy(lake_copy, "squeeze", {})
    d = lake_copy.df("SELECT trade_date FROM bars WHERE symbol = 'ACME' ORDER BY trade_date")["trade_date"]
    with lake_copy.writer():
        _write_factor(lake_copy, "short_interest_float", "ACME", d, np.where(np.arange(len(d)) == 10, 0.3, 0.05))
        _write_factor(lake_copy, "call_gamma_near_spot_share", "ACME", d, np.full(len(d), 0.7))
    t = run_strategy(lake_copy, "squeeze", {"hold": ["3"], "cost_bps": ["0"]}).trades
    assert list(t["event_id"]) == [f"ACME-{d[10]:%Y%m%d}"]
    c = lake_copy.df("SELECT close FROM bars WHERE symbol = 'ACME' ORDER BY trade_date")["close"]
    assert t["pnl"].iloc[0] == pytest.approx(1e5 * (c[13] / c[10] - 1), rel=1e-9)


def test_cli_json_sweep_matches_its_trades(small_lake_path, eventvol_cli):
    code, out, _ = eventvol_cli("backtest", "earnings-straddle", "--lake", str(small_lake_path),
                        "--param", "side=long,short", "--param", "fill=mid,worst", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["parameter_sets"] == 4 and len(doc["metrics"]) == 4
    trades = pd.DataFrame(doc["trades"])
    assert len(trades) == 4 * trades["event_id"].nunique()
    for m in doc["metrics"]:
        pnl = trades.loc[trades["param_id"] == m["param_id"], "pnl"].dropna()
        assert m["mean_pnl"] == pytest.approx(pnl.mean()) and m["trades"] == len(pnl)


def test_cli_walk_forward_and_errors(small_lake_path, eventvol_cli):
    code, out, _ = eventvol_cli("backtest", "earnings-straddle", "--lake", str(small_lake_path),
                        "--param", "side=long,short", "--split", "walk-forward:train=6,test=3", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["walk_forward"]["out_of_sample"]["trades"] > 0
    assert {"in_sample", "out_of_sample", "folds"} <= set(doc["walk_forward"])
    code, _, err = eventvol_cli("backtest", "no-such", "--lake", str(small_lake_path))
    assert code == 2 and "unknown strategy 'no-such'" in err and "Traceback" not in err
    code, _, err = eventvol_cli("backtest", "momentum-crash", "--lake", str(small_lake_path))
    assert code == 2 and "needs factor" in err and err.count("\n") == 1
    code, _, err = eventvol_cli("backtest", "earnings-straddle", "--lake", str(small_lake_path),
                        "--param", "side")
    assert code == 2 and "key=v1,v2" in err


def test_vectorized_metrics_equal_the_per_stream_metrics():
    from eventvol.strategies.metrics import METRIC_COLUMNS, metrics_by_param

    rng = np.random.default_rng(5)
    n = 60
    t = pd.DataFrame({"param_id": np.repeat([0, 1, 2], n), "pnl": rng.normal(5, 100, 3 * n),
                      "exit_session": np.tile(pd.date_range("2023-01-02", periods=n, freq="3D"), 3)})
    t.loc[rng.choice(3 * n, 40, replace=False), "pnl"] = np.nan
    t = t.sample(frac=1, random_state=1)  # order must not matter
    got = metrics_by_param(t).set_index("param_id")
    for pid, grp in t.groupby("param_id"):
        want = event_metrics(grp["pnl"], grp["exit_session"])
        for c in METRIC_COLUMNS:
            assert got.loc[pid, c] == pytest.approx(want[c], rel=1e-12), c


def test_macro_strangle_filters_on_net_gex_and_vex_at_entry(lake_copy):
    d = lake_copy.df("SELECT trade_date FROM bars WHERE symbol = 'SYNX' ORDER BY trade_date")["trade_date"]
    vex = np.where(np.arange(len(d)) % 3 == 0, -1e6, 1e6)
    with lake_copy.writer():
        _write_factor(lake_copy, "net_vex_per_volpt", "SYNX", d, vex)
    res = run_strategy(lake_copy, "macro-strangle", {"vex_filter": ["none", "negative"], "gex_filter": ["none", "positive"]})
    t = res.trades
    assert set(t["underlying"]) == {"SYNX"} and set(t["kind"]) == {"FOMC", "CPI", "NFP"}
    by_day = dict(zip(d, vex))
    expect_vex = t["entry_session"].dt.date.map(by_day)
    np.testing.assert_array_equal(t["net_vex_per_volpt_at_entry"].to_numpy(), expect_vex.to_numpy())
    p = res.params.set_index("param_id")
    for pid, grp in t.groupby("param_id"):
        want = grp["skip_reason"].str.startswith("no ").eq(False)
        if p.loc[pid, "vex_filter"] == "negative":
            want &= grp["net_vex_per_volpt_at_entry"] < 0
        if p.loc[pid, "gex_filter"] == "positive":
            want &= grp["net_gex_per_1pct_at_entry"] > 0
        assert (grp["traded"] == want).all()
    assert 0 < t.loc[t["param_id"] == 3, "traded"].sum() < t.loc[t["param_id"] == 0, "traded"].sum()


def test_gamma_regime_decisions_ignore_the_future(lake_copy):
    grid = {"negative": ["trend", "reversal"]}
    before = run_strategy(lake_copy, "gamma-regime", grid).trades
    cutoff = pd.Timestamp("2023-05-15")
    with lake_copy.writer():
        b = lake_copy.df("SELECT * FROM bars WHERE trade_date > ?", [cutoff.date()])
        b[["open", "high", "low", "close"]] *= np.linspace(0.7, 1.3, len(b))[:, None]
        lake_copy.write("bars", b)
        f = lake_copy.df("SELECT * FROM factors WHERE trade_date > ?", [cutoff.date()])
        f["value"] = -f["value"]
        lake_copy.write("factors", f)
    after = run_strategy(lake_copy, "gamma-regime", grid).trades
    known = before["entry_session"] <= cutoff
    cols = ["event_id", "regime", "action", "units", "traded"]
    pd.testing.assert_frame_equal(before.loc[known, cols], after.loc[known, cols])
    done = before["exit_session"] <= cutoff
    pd.testing.assert_series_equal(before.loc[done, "pnl"], after.loc[done, "pnl"])
    assert not before.loc[~known, "units"].equals(after.loc[~known, "units"])  # the poison landed
