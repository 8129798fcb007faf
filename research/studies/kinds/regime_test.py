"""Study kind `regime_test`: the Daniel-Moskowitz (2016) momentum regimes on monthly factor
returns (research/studies/regimes.py). The primary test is the DM regression's coefficient
named by `[test] coefficient` (default `bear_x_up_x_mkt`, the option-like crash exposure of
momentum in bear markets that rebound), with Newey-West errors.

TOML table [regimes]: lookback_months (default 24).
"""

from __future__ import annotations

import pandas as pd

from eventvol.research.studies import data as D
from eventvol.research.studies.kinds import register_kind
from eventvol.research.studies.regimes import LOOKBACK_MONTHS, momentum_regimes
from eventvol.research.studies.spec import HypothesisSpec, NotEvaluable

COEFFICIENTS = ("alpha", "bear", "mkt", "bear_x_mkt", "bear_x_up_x_mkt")


def run(data: D.StudyData, spec: HypothesisSpec, options: dict | None = None) -> dict:
    fr = data.table("factor_returns")
    if fr is None or len(fr) == 0:
        raise NotEvaluable("the lake has no factor_returns rows (load them with `eventvol ingest ff-monthly FILE`)")
    fr = fr.assign(period=pd.to_datetime(fr["period"]))
    wide = fr.pivot(index="period", columns="factor", values="value").sort_index()
    if not {"MktRF", "RF", "Mom"} <= set(wide.columns):
        raise NotEvaluable("factor_returns lacks one of MktRF, RF and Mom")
    lookback = int(spec.section("regimes").get("lookback_months", LOOKBACK_MONTHS))
    res = momentum_regimes(wide, lookback)
    if res["months_evaluated"] < 36:
        raise NotEvaluable(f"only {res['months_evaluated']} months with a {lookback}-month past (need 36)")
    key = spec.section("test").get("coefficient", "bear_x_up_x_mkt")
    if key not in COEFFICIENTS:
        raise NotEvaluable(f"the DM regression has no coefficient {key!r}; use one of {', '.join(COEFFICIENTS)}")
    c = res["dm_regression"]["coefficients"][key]
    primary = {"name": f"DM coefficient on {key} (HAC)", "estimate": c["coef"], "stat": c["t"], "p_value": c["p_value"],
               "ci_low": c["ci_low"], "ci_high": c["ci_high"], "n": res["dm_regression"]["n"]}
    return {"momentum_regimes": res, "primary": primary}


register_kind("regime_test", run, tables={"regimes": {"lookback_months"}},
              description="Daniel-Moskowitz momentum regimes on monthly factor returns")
