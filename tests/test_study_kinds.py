"""The `regime_test` kind: a Daniel-Moskowitz hypothesis declared in TOML, its primary test
checked against statsmodels' Newey-West regression built by hand on the French file."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

FF = "factors/ff_monthly_factors_1949_2017.csv"

TOML = '''
name = "H10"
title = "Momentum crashes in bear-market rebounds"
claim = "In bear markets that rebound, momentum's market beta falls: the DM bear x up x market coefficient is negative."
kind = "regime_test"

[regimes]
lookback_months = 24

[test]
expected = "negative"
coefficient = "bear_x_up_x_mkt"
'''


def test_regime_test_kind_matches_statsmodels_hac(real_data, tmp_path):
    import statsmodels.api as sm

    from eventvol.research.studies.data import MemoryData
    from eventvol.research.studies.registry import load_hypotheses, run_hypothesis
    from eventvol.research.studies.stats import default_lags

    raw = pd.read_csv(real_data / FF)
    long = raw.melt(id_vars="month", value_vars=["MktRF", "RF", "Mom"], var_name="factor")
    long["period"] = pd.to_datetime(long.pop("month") + "-01")
    (tmp_path / "h10.toml").write_text(TOML)
    spec = load_hypotheses(tmp_path)["H10"]
    r = run_hypothesis(MemoryData({"factor_returns": long}, market="none"), spec)
    # by hand: the DM design and statsmodels' HAC with the same lag count, no small-sample factor
    total = (raw["MktRF"] + raw["RF"]).tolist()
    t = np.arange(24, len(raw))
    b = np.array([sum(math.log1p(x) for x in total[i - 24:i]) < 0 for i in t], float)
    u = (np.array(total)[t] > 0).astype(float)
    rm = raw["MktRF"].to_numpy()[t]
    X = np.column_stack([np.ones(len(t)), b, rm, b * rm, b * u * rm])
    fit = sm.OLS(raw["Mom"].to_numpy()[t], X).fit(cov_type="HAC", cov_kwds={"maxlags": default_lags(len(t)),
                                                                           "use_correction": False})
    assert r.evaluable and r.estimate == pytest.approx(fit.params[4], rel=1e-10)
    assert r.p_value == pytest.approx(fit.pvalues[4], rel=1e-6)
    assert r.verdict == ("held" if fit.pvalues[4] < 0.05 and fit.params[4] < 0 else "not held")
    # no factor returns: not evaluable, with the reason
    empty = run_hypothesis(MemoryData({}, market="none"), spec)
    assert empty.status.startswith("not evaluable: the lake has no factor_returns rows")
