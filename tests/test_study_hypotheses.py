"""The hypothesis registry on the synthetic market: planted effects recovered (CI covers the
truth table), no rejection inflation with the mechanism off, no look-ahead, clean
"not evaluable" results, user event files with clear errors, BH over --all."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import SMALL

from eventvol.data_lake import EventvolError, NoDataError
from eventvol.research.studies.spec import SpecError
from eventvol.research.studies import data as D
from eventvol.research.studies.kinds.event_study import regime_labels
from eventvol.research.studies.registry import load_hypotheses, run_all, run_hypothesis


@pytest.fixture(scope="module")
def specs():
    return load_hypotheses()


def test_registry_ships_h1_to_h7(specs):
    assert list(specs) == ["H1", "H2", "H3", "H4", "H5", "H6", "H7"]
    for s in specs.values():
        assert s.title and s.claim and s.kind in ("event_study", "regression")


def test_h1_recovers_the_planted_gex_vol_ratio(small_lake, specs):
    r = run_hypothesis(small_lake, specs["H1"]).to_dict()
    assert r["status"] == "ok"
    m = r["mechanism"]
    structural = D.truth_value(small_lake, "gex_feedback", "close_to_close_vol_ratio_negative_over_positive")
    # by hand: vol multiplier ratio x the overnight share of variance continued intraday
    night = 0.3  # data_lake.synthetic.market.NIGHT_SHARE
    cont = lambda k: night * (1 + k) ** 2 + 1 - night  # noqa: E731
    assert structural == pytest.approx(SMALL.vol_mult_negative_gex / SMALL.vol_mult_positive_gex
                                       * np.sqrt(cont(SMALL.gap_continuation_negative_gex)
                                                 / cont(SMALL.gap_continuation_positive_gex)))
    # the interval is compared with the regression's value on the simulator's own conditional
    # variances on this sample: near the structural ratio, moved by the regimes met
    truth = D.truth_value(small_lake, "gex_feedback", "session_vol_ratio_estimand")
    assert m["truth"] == truth and abs(truth / structural - 1) < 0.15
    assert m["ci_low"] <= truth <= m["ci_high"], m
    assert m["p_value"] < 0.05 and m["estimate"] > 1.0  # the effect is detected, with the right sign
    # the event-level ratio (|AR| / implied move) interval also covers it
    ev = r["event_vol_ratio"]
    assert ev["ci_low"] <= truth <= ev["ci_high"], ev
    assert r["n_events"] >= 8 and len(r["caar"]["caar"]) == 11
    # the counted test is the mechanism: its frame holds the stock-sessions it used
    res = run_hypothesis(small_lake, specs["H1"])
    f = res.frame
    assert len(f) == m["n"] and int(f["both_negative"].sum()) == m["n_both_negative"]
    assert int((~f["both_negative"] & ~f["stock_only_negative"] & ~f["index_only_negative"]).sum()) == m["n_both_positive"]
    assert "frame" not in res.details["mechanism"]


def test_h1_estimand_is_exactly_one_without_feedback_or_regimes():
    """Closed form: with the GEX feedback off and no dispersion or rotation regimes every
    stock's conditional variance is constant in time, so the regression on log variances with
    stock fixed effects has a zero coefficient: the published estimand is 1 to rounding."""
    from eventvol.data_lake.synthetic import simulate

    flat = dataclasses.replace(SMALL, vol_mult_negative_gex=1.0, vol_mult_positive_gex=1.0,
                               gap_continuation_negative_gex=0.0, gap_continuation_positive_gex=0.0,
                               dispersion_market_mult=1.0, dispersion_idio_mult=1.0, dispersion_rotation_mult=1.0,
                               wml_vol_daily=0.0, end="2023-04-28")
    truth = simulate(flat)["truth"].set_index(["mechanism", "parameter"])["value"]
    assert truth[("gex_feedback", "session_vol_ratio_estimand")] == pytest.approx(1.0, abs=1e-12)


def _null_config(seed: int):
    """SMALL with every GEX-dependent return mechanism switched off (fields that exist)."""
    off = dict(vol_mult_negative_gex=1.0, vol_mult_positive_gex=1.0, gap_continuation_negative_gex=0.0,
               gap_continuation_positive_gex=0.0, stock_expiries=1, index_monthlies=1, index_weeklies_days=7,
               index_dailies=1, end="2023-06-30")
    names = {f.name for f in dataclasses.fields(SMALL)}
    return dataclasses.replace(SMALL, seed=seed, **{k: v for k, v in off.items() if k in names})


def _mechanism_from_tables(tables) -> dict:
    """The H1 session-level estimator on in-memory tables (no lake): the same pure code path
    the size study uses (research.studies.size.result_of)."""
    from eventvol.research.studies.size import result_of

    return result_of(load_hypotheses()["H1"], tables, null=True)


def test_h1_with_the_mechanism_off_rejects_at_about_five_percent():
    from scipy import stats

    from eventvol.data_lake.synthetic import simulate

    seeds = range(102, 110)
    rejections = sum(_mechanism_from_tables(simulate(_null_config(s)))["p_value"] < 0.05 for s in seeds)
    # P(X >= 3 | n=8, p=0.05) = 0.6%: 3 or more rejections in 8 would mean size inflation
    assert stats.binom.sf(rejections - 1, len(seeds), 0.05) > 0.01, rejections


def test_conditioning_uses_nothing_after_the_pre_event_close(small_lake):
    ev = D.load_events(small_lake, ["earnings"])
    f = D.factor_frame(small_lake, "net_gex_per_1pct")
    decision = D.pre_event_close(ev["reaction_session"])
    before = D.value_as_of(f, ev["symbol"].to_numpy(), decision)
    # poison every factor value dated after each event's decision time
    poisoned = []
    for sym, dec in zip(ev["symbol"], decision):
        g = f[f["entity"] == sym].copy()
        g.loc[g["trade_date"] > dec, "value"] = 1e30 * (-1) ** np.arange((g["trade_date"] > dec).sum())
        after = D.value_as_of(g, np.array([sym]), np.array([dec]))
        poisoned.append(after[0])
    np.testing.assert_array_equal(before, np.array(poisoned))
    # and the decision time is strictly before the reaction session
    assert (decision < ev["reaction_session"].to_numpy()).all()
    # sanity: the lookup is not vacuous (most events have a value, both signs occur)
    assert np.isfinite(before).mean() > 0.8 and (before < 0).any() and (before > 0).any()


def test_regime_labels_sign_and_fixed_threshold():
    v = np.array([-1.0, 0.0, 2.0, np.nan])
    assert regime_labels(v, {"split": "sign"}).tolist() == ["on", "off", "off", ""]
    assert regime_labels(v, {"split": "threshold", "threshold": 0.0}).tolist() == ["off", "on", "on", ""]


def test_missing_factor_is_not_evaluable_not_a_crash(small_lake, specs):
    spec = specs["H4"].with_overrides(regressors=["no_such_factor"], test={"coefficient": "no_such_factor"})
    r = run_hypothesis(small_lake, spec).to_dict()
    assert r["status"] == "not evaluable: factor 'no_such_factor' is not in the lake (materialize its family first)"
    assert r["evaluable"] is False


def test_h6_user_event_file(small_lake, specs, tmp_path):
    r = run_hypothesis(small_lake, specs["H6"]).to_dict()
    assert r["status"].startswith("not evaluable: no event list supplied")
    bars = small_lake.read("bars", columns=["trade_date", "symbol"], where="symbol = 'BOLT'")
    dates = sorted(bars["trade_date"])[100:160:6]
    path = tmp_path / "events.csv"
    path.write_text("date,symbol,name\n" + "".join(f"{d},BOLT,<script>13F {i}\n" for i, d in enumerate(dates)))
    r = run_hypothesis(small_lake, specs["H6"], events_file=path).to_dict()
    assert r["status"] == "ok" and r["n_events"] == len(dates)
    # the CAR t-test equals scipy's on the reported CARs
    from scipy import stats

    cars = np.array(r["outcome"]["values"])
    assert r["tests"]["t"]["stat"] == pytest.approx(stats.ttest_1samp(cars, 0).statistic, rel=1e-10)


@pytest.mark.parametrize("body,msg", [
    ("date,symbol\n2023-05-01,BOLT\n2023-13-01,BOLT\n", "row 3 column 'date'"),
    ("date,symbol\n2023-05-01,\n", "row 2 column 'symbol' is empty"),
    ("day,symbol\n2023-05-01,BOLT\n", "has no column 'date'"),
])
def test_bad_event_file_names_file_row_and_column(tmp_path, body, msg):
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(NoDataError, match=msg) as exc:
        D.read_event_file(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_bad_hypothesis_file_is_one_sentence(tmp_path):
    (tmp_path / "h9.toml").write_text('name = "H9"\ntitle = "x"\nclaim = "y"\nkind = "magic"\n')
    with pytest.raises(SpecError, match="unknown kind 'magic'"):
        load_hypotheses(tmp_path)
    (tmp_path / "h9.toml").write_text('name = "H9\n')
    with pytest.raises(SpecError, match="is not valid TOML"):
        load_hypotheses(tmp_path)


H_HEAD = 'name = "H9"\ntitle = "x"\nclaim = "y"\nkind = "event_study"\n'
H_EVENTS = '[events]\nkinds = ["earnings"]\n'


@pytest.mark.parametrize("extra,msg", [
    ('[outcome]\ncar_windw = [0, 2]\n', "unknown key 'car_windw' in \\[outcome\\]"),
    ('regressors = ["x"]\n', "unknown key 'regressors' for kind 'event_study'"),
    ('[mechanism]\nestimator = "session_vol_ratio"\nk = 3\n', "unknown key 'k' in \\[mechanism\\]"),
    ('[mechanism]\nestimator = "nope"\n', "unknown estimator 'nope'"),
    ('[test]\nexpected = "up"\n', "expected must be one of positive, negative, two-sided"),
    ('[outcome]\ncar_window = [2, 0]\n', "car_window must be two whole numbers"),
])
def test_hypothesis_spec_refuses_unknown_keys_naming_file_and_key(tmp_path, extra, msg):
    path = tmp_path / "h9.toml"
    # top-level keys go before the first table, tables after it
    path.write_text(H_HEAD + H_EVENTS + extra if extra.startswith("[") else H_HEAD + extra + H_EVENTS)
    with pytest.raises(SpecError, match=msg) as exc:
        load_hypotheses(tmp_path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
    # a project error (one sentence at the CLI), not a bare exception
    assert isinstance(exc.value, EventvolError)


def test_h6_takes_direction_and_window_from_the_user(small_lake, specs, tmp_path):
    """H6 is two-sided by default; the user's direction and window change the test run, and
    the CAR over [0, 4] equals the sum of the reaction-day abnormal returns by hand."""
    dates = ["2023-05-01", "2023-06-01", "2023-08-01", "2023-09-01", "2023-10-02"]
    path = tmp_path / "ev.csv"
    path.write_text("date,symbol\n" + "".join(f"{d},BOLT\n" for d in dates))
    base = run_hypothesis(small_lake, specs["H6"], events_file=path)
    assert specs["H6"].expected == "two-sided" and base.expected == "two-sided"
    wide = specs["H6"].with_overrides(test={"expected": "negative"}, outcome={"car_window": [0, 4]})
    r = run_hypothesis(small_lake, wide, events_file=path)
    assert r.expected == "negative" and r.details["car_window"] == [0, 4]
    # estimate: mean of the per-event CARs, which sum relative days 0..4 of each event's ARs
    assert r.estimate == pytest.approx(r.frame["car"].mean(), rel=1e-12)
    assert r.estimate != pytest.approx(base.estimate)
    # the verdict follows the user's direction: held only with a negative estimate
    assert r.held == (r.p_value < 0.05 and r.estimate < 0)
    with pytest.raises(SpecError, match="expected must be one of"):
        specs["H6"].with_overrides(test={"expected": "down"})


def test_run_all_adds_bh_and_is_deterministic(small_lake, specs):
    a = [r.to_dict() for r in run_all(small_lake, specs)]
    b = [r.to_dict() for r in run_all(small_lake, specs)]
    assert json.dumps(a, default=str) == json.dumps(b, default=str)
    ok = [r for r in a if r["evaluable"]]
    assert ok and all(r["p_bh"] >= r["p_value"] for r in ok)
    assert all(r["p_bh"] is None for r in a if not r["evaluable"])


def test_h2_h4_primary_estimates_cover_their_planted_values(lake_copy, specs):
    """Where the synthetic market plants the effect a hypothesis tests, the primary
    estimate's 95% interval covers the truth table's value (skips if a family is absent)."""
    from eventvol.pipelines.factors import materialize
    from eventvol.pipelines.registry import load_families

    if "letf" not in load_families() or not lake_copy.files("letf_funds"):
        pytest.skip("the letf factor family or letf_funds rows are absent")
    materialize(lake_copy, "letf")
    checked = 0
    for name in ("H2", "H4"):
        r = run_hypothesis(lake_copy, specs[name]).to_dict()
        if not r["evaluable"] or "truth" not in r:
            continue
        checked += 1
        assert r["truth"]["covered"], (name, r["primary"], r["truth"])
        assert r["primary"]["ci_low"] < r["primary"]["ci_high"]
    assert checked >= 1
