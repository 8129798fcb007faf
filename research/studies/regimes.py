"""Daniel-Moskowitz (2016) momentum regimes on monthly factor returns (Fama-French file).

bear_t: the log-summed total market return (MktRF + RF) over months t-24..t-1 is below zero
(known at the start of month t); rebound (up_t): the month's own total market return is
positive. The DM regression: Mom_t = a0 + aB I_B + b0 R^e_m + bB I_B R^e_m + bBU I_B I_U R^e_m,
with Newey-West HAC errors; bBU < 0 is the option-like crash exposure of momentum in bear
markets that rebound.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake
from eventvol.research.studies import stats as S

LOOKBACK_MONTHS = 24


def factor_returns_wide(lake: Lake) -> pd.DataFrame:
    """factor_returns as rows = period (month start), columns = factor, decimals."""
    fr = lake.read("factor_returns")
    if fr.empty:
        return pd.DataFrame()
    fr["period"] = pd.to_datetime(fr["period"])
    return fr.pivot(index="period", columns="factor", values="value").sort_index()


def momentum_regimes(wide: pd.DataFrame, lookback: int = LOOKBACK_MONTHS) -> dict:
    """Bear/rebound summary and the DM regression from monthly MktRF, RF and Mom (decimals).
    Months without a full 24-month past are not evaluated."""
    need = ["MktRF", "RF", "Mom"]
    df = wide[need].dropna().copy()
    total = df["MktRF"] + df["RF"]
    past = np.log1p(total).rolling(lookback).sum().shift(1)  # months t-24 .. t-1
    ok = past.notna()
    bear = (past < 0) & ok
    up = total > 0
    ev = df[ok]
    b, u = bear[ok].to_numpy(), up[ok].to_numpy()
    mom = ev["Mom"].to_numpy()
    rm = ev["MktRF"].to_numpy()
    X = np.column_stack([np.ones(len(ev)), b, rm, b * rm, b * u * rm]).astype(float)
    reg = S.ols(mom, X, ["alpha", "bear", "mkt", "bear_x_mkt", "bear_x_up_x_mkt"], cov="HAC")
    return {
        "months_evaluated": int(ok.sum()),
        "first_month": ev.index[0].strftime("%Y-%m") if len(ev) else None,
        "last_month": ev.index[-1].strftime("%Y-%m") if len(ev) else None,
        "bear_months": int(b.sum()),
        "mom_mean_bear": float(mom[b].mean()) if b.any() else float("nan"),
        "mom_mean_not_bear": float(mom[~b].mean()) if (~b).any() else float("nan"),
        "mom_mean_bear_rebound": float(mom[b & u].mean()) if (b & u).any() else float("nan"),
        "n_bear_rebound": int((b & u).sum()),
        "bear_vs_not_bear": S.welch_difference(mom[b], mom[~b], "bear minus not bear (Welch)").to_dict(),
        "dm_regression": reg.to_dict(),
    }
