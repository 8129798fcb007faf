"""H3 and H5 mechanism estimators (research/studies/mechanisms.py): on the synthetic market
each interval covers the truth table's planted value, the detectors find the simulator's own
events, the intervals agree with statsmodels, nothing after t enters t's state, and the lake
runner reports them (even when the primary test's factors are missing)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from eventvol.data_lake.synthetic import SyntheticConfig, simulate
from eventvol.research.studies import mechanisms as MX
from eventvol.research.studies.registry import load_hypotheses, run_hypothesis

# the default two-year market (bear phase and rebound inside), with thin option chains: the
# estimators read bars, events and short interest only
LEAN = {"stock_expiries": 1, "index_monthlies": 1, "index_weeklies_days": 7, "index_dailies": 1}


@pytest.fixture(scope="module")
def seed8():
    tables = simulate(SyntheticConfig(seed=8, **LEAN))
    truth = tables["truth"].set_index(["mechanism", "parameter"])
    # the registered estimators over in-memory tables: the path of the size study
    from eventvol.research.studies.size import synthetic_data

    specs = load_hypotheses()
    data = synthetic_data(tables)
    return tables, truth, {n: run_hypothesis(data, specs[n]).details["mechanism"] for n in ("H3", "H5")}


def test_h3_interval_covers_the_planted_rebound_hazard_difference(seed8):
    _, truth, m = seed8
    h3 = m["H3"]
    planted = truth.loc[("momentum", "crash_hazard_mean_rebound"), "value"] - truth.loc[("momentum", "crash_hazard_mean_other"), "value"]
    # outside rebounds the hazard is the base rate exactly; inside it adds 12% x crowding x (1 + dispersion)
    assert truth.loc[("momentum", "crash_hazard_mean_other"), "value"] == pytest.approx(0.002, abs=1e-15)
    assert 0.002 < truth.loc[("momentum", "crash_hazard_mean_rebound"), "value"] < 0.002 + 2 * 0.12
    assert h3["ci_low"] <= planted <= h3["ci_high"], (h3, planted)
    assert h3["estimate"] > 0 and h3["p_value"] < 0.05
    # most detected crashes are the simulator's own (dates from the truth table, used only here)
    true_dates = set(json.loads(truth.loc[("momentum", "crashes"), "description"]))
    hits = true_dates & set(h3["crash_dates"])
    assert len(hits) >= 0.6 * len(h3["crash_dates"]) and len(hits) >= 3, (h3["crash_dates"], true_dates)


def test_h5_detects_the_squeezes_and_covers_the_planted_jump(seed8):
    _, truth, m = seed8
    h5 = m["H5"]
    planted = truth.loc[("squeeze", "jump_mean_per_session"), "value"]
    assert planted == pytest.approx((0.08 + 0.15) / 2)
    squeezes = [tuple(x) for x in json.loads(truth.loc[("squeeze", "squeezes"), "description"])]
    assert [tuple(e) for e in h5["events"]] == squeezes  # exactly the planted ones, nothing else
    assert h5["ci_low"] <= planted <= h5["ci_high"], h5
    assert h5["estimate"] > 0.05 and h5["p_value"] < 0.05


def test_h5_mean_and_interval_equal_scipy_on_the_selected_returns(seed8):
    from scipy import stats

    tables, _, m = seed8
    close = MX.close_panel(tables["bars"][["trade_date", "symbol", "close"]])
    y = []
    for sym, day in m["H5"]["events"]:
        t = close.index.get_loc(pd.Timestamp(day))
        y.append(np.log(close[sym].iloc[t + 1] / close[sym].iloc[t]) - np.log(close["SYNX"].iloc[t + 1] / close["SYNX"].iloc[t]))
    res = stats.ttest_1samp(y, 0.0)
    ci = res.confidence_interval(0.95)
    assert m["H5"]["estimate"] == pytest.approx(np.mean(y), rel=1e-12)
    assert m["H5"]["p_value"] == pytest.approx(res.pvalue, rel=1e-9)
    assert (m["H5"]["ci_low"], m["H5"]["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)


@pytest.mark.parametrize("k1,n1,k2,n2", [(3, 47, 5, 300), (0, 20, 0, 400), (5, 95, 2, 305), (1, 10, 9, 10)])
def test_newcombe_interval_and_fisher_match_statsmodels(k1, n1, k2, n2):
    from statsmodels.stats.proportion import confint_proportions_2indep

    d, lo, hi = MX.newcombe_difference(k1, n1, k2, n2)
    slo, shi = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
    assert d == pytest.approx(k1 / n1 - k2 / n2)
    assert (lo, hi) == pytest.approx((slo, shi), abs=1e-12)


def test_rebound_and_rotation_use_nothing_after_t(seed8):
    tables, _, _ = seed8
    close = MX.close_panel(tables["bars"][["trade_date", "symbol", "close"]])
    stocks = close.drop(columns=["SYNX"])
    cut = 300
    reb = MX.rebound_states(close["SYNX"])
    rot = MX.rotation_returns(stocks)
    poisoned = close.copy()
    poisoned.iloc[cut:] = poisoned.iloc[cut:].to_numpy()[::-1] * 7.0  # every close from `cut` on changes
    reb_p = MX.rebound_states(poisoned["SYNX"])
    rot_p = MX.rotation_returns(poisoned.drop(columns=["SYNX"]))
    # the rebound state of session t uses closes through t-1: unchanged up to and including `cut`
    pd.testing.assert_series_equal(reb.iloc[: cut + 1], reb_p.iloc[: cut + 1])
    # session t's rotation return uses ranks from closes before t and t's own return
    pd.testing.assert_series_equal(rot.iloc[:cut], rot_p.iloc[:cut])
    assert not reb.iloc[cut + 1:].equals(reb_p.iloc[cut + 1:]) or not rot.iloc[cut:].equals(rot_p.iloc[cut:])
    assert reb.iloc[127:].isin([0.0, 1.0]).all() and reb.iloc[127:].sum() > 10


def test_lake_runner_reports_the_mechanisms(small_lake):
    specs = load_hypotheses()
    r5 = run_hypothesis(small_lake, specs["H5"]).to_dict()
    m = r5["mechanism"]
    # the primary regression's factors are not materialized in this lake; the mechanism, the
    # counted test, still runs and gives the verdict
    assert r5["primary_status"].startswith("not evaluable") and r5["status"] == "ok" and m["n"] >= 2
    assert (r5["estimate"], r5["p_value"], r5["counted_test"]) == (m["estimate"], m["p_value"], m["name"])
    assert m["truth"] == pytest.approx(0.115) and m["truth_covered"] == (m["ci_low"] <= 0.115 <= m["ci_high"])
    r3 = run_hypothesis(small_lake, specs["H3"]).to_dict()
    m3 = r3["mechanism"]
    assert m3["n_rebound"] >= 5 and "truth" in m3
