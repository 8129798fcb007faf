"""Implied-correlation family (`implied_corr`), per index (entity = index symbol).

- atm_iv_30d is interpolated per underlying and session: at each expiry, the ATM implied vol
  is the mean of call and put IV at the strike nearest spot; total variance sigma^2*T is then
  interpolated linearly in T to 30 calendar days (flat vol beyond the listed expiries).
- implied_corr_30d: the CBOE formula on ATM 30-day vols of the index and its members that have
  chains, weighted by the index's cap weights known at the close (equal weights if none).
- implied_corr_30d_pct3y: its percentile rank over the trailing 3 years.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake
from eventvol.data_lake.vendors import picked_vendors_sql
from eventvol.pipelines import gex as gexmod
from eventvol.pipelines.crosssection import common as cx
from eventvol.pipelines.crosssection.dispersion import implied_correlation
from eventvol.pipelines.registry import FactorSpec, register

TARGET_DAYS = 30
MIN_DAYS = 2  # expiries this close carry pin and event noise, not a 30-day vol
OUTPUTS = ("implied_corr_30d", "implied_corr_30d_pct3y")
LOOKBACK_SESSIONS = cx.PCT_WINDOW_SESSIONS

# {picked}: one vendor per (underlying, trade_date) (data_lake.vendors.picked_vendors_sql)
ATM_SQL = """
WITH by_strike AS (
    SELECT underlying, trade_date, expiration, settlement, strike,
           avg(iv) AS iv, any_value(underlying_price) AS spot
    FROM option_quotes SEMI JOIN {picked} USING (underlying, trade_date, vendor)
    WHERE trade_date >= ? AND trade_date <= ? AND iv > 0 AND expiration > trade_date
    GROUP BY ALL
)
SELECT underlying, trade_date, expiration, settlement,
       arg_min(iv, abs(strike - spot)) AS atm_iv
FROM by_strike GROUP BY ALL
ORDER BY underlying, trade_date, expiration, settlement
"""


def atm_iv_30d(atm: pd.DataFrame) -> pd.DataFrame:
    """Pure: per-expiry ATM IVs (underlying, trade_date, expiration, settlement, atm_iv) ->
    (underlying, trade_date, iv30)."""
    if atm.empty:
        return pd.DataFrame(columns=["underlying", "trade_date", "iv30"])
    t = gexmod.years_to_expiry(atm["trade_date"].to_numpy(dtype="datetime64[D]"),
                               atm["expiration"].to_numpy(dtype="datetime64[D]"),
                               atm["settlement"].to_numpy(dtype=object))
    a = atm.assign(t=t, var=atm["atm_iv"].to_numpy(float) ** 2 * t)
    a = a[a["t"] >= MIN_DAYS / 365.0]
    target = TARGET_DAYS / 365.0
    out = []
    for (u, d), g in a.groupby(["underlying", "trade_date"], sort=True):
        g = g.sort_values("t", kind="stable")
        tt, vv = g["t"].to_numpy(), g["var"].to_numpy()
        if target <= tt[0]:
            iv = np.sqrt(vv[0] / tt[0])
        elif target >= tt[-1]:
            iv = np.sqrt(vv[-1] / tt[-1])
        else:
            iv = np.sqrt(np.interp(target, tt, vv) / target)
        out.append((u, d, iv))
    return pd.DataFrame(out, columns=["underlying", "trade_date", "iv30"])


def compute(data: dict, start: dt.date, end: dt.date) -> pd.DataFrame:
    iv = atm_iv_30d(data["atm"])
    parts = []
    if iv.empty:
        return cx.concat_rows(parts)
    panel = cx.pivot(iv["trade_date"].to_numpy(dtype="datetime64[D]"), iv["underlying"].to_numpy(dtype=object),
                     iv["iv30"].to_numpy(float))
    close_ns = cx.session_closes_utc_ns(panel.dates)
    for index in data["indexes"]:
        if index not in set(panel.symbols):
            continue
        is_index = panel.symbols == index
        mask = cx.member_mask(data["members"], index, panel.dates, panel.symbols) & ~is_index[None, :]
        mvol = np.where(mask, panel.values, np.nan)
        cap = np.where(mask, cx.weight_panel(data["weights"], index, panel.dates, panel.symbols, close_ns), np.nan)
        has_cap = np.isfinite(np.where(np.isfinite(mvol), cap, np.nan)).any(axis=1)
        wts = np.where(has_cap[:, None], cap, np.where(mask, 1.0, np.nan))
        rho = implied_correlation(panel.col(index), mvol, wts)
        parts.append(cx.long_rows("implied_corr_30d", panel.dates, index, rho, start, end))
        parts.append(cx.long_rows("implied_corr_30d_pct3y", panel.dates, index, cx.trailing_percentile(rho), start, end))
    return cx.concat_rows(parts)


def load(lake: Lake, start, end) -> dict:
    start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    lo = cx.lookback_start(start, LOOKBACK_SESSIONS)
    picked = picked_vendors_sql(lake=lake, source="(SELECT underlying, trade_date, vendor FROM option_quotes "
                                                   "WHERE trade_date >= ? AND trade_date <= ?)")
    atm = lake.df(ATM_SQL.format(picked=picked), [lo, end, lo, end])
    members = cx.load_members(lake)
    indexes = sorted(members["index"].unique().tolist()) if not members.empty else []
    return {"atm": atm, "members": members, "weights": cx.load_weights(lake, end), "indexes": indexes}


IMPLIED_CORR = register(FactorSpec(
    name="implied_corr",
    inputs=("option_quotes", "index_members", "index_weights"),
    outputs=OUTPUTS,
    load=load,
    compute=compute,
    lookback_sessions=LOOKBACK_SESSIONS,
    requires=(("option_quotes",), ("index_members",)),  # cap weights are optional
    batch_months=0,  # DuckDB reduces the chains to ATM vols before they reach Python
    description="CBOE-formula implied correlation from 30-day ATM vols of an index and its members",
))
