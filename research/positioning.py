"""Dealer positioning of one chain as a PM reads it: the `gex` summary with its re-priced
profile, plus GEX by strike for calls and puts, all from ONE set of chain arrays (so the
bars, the walls and the zero gamma of a chart come from the same IVs)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake
from eventvol.pipelines import gex as gexmod


def strike_gex(arrays: gexmod.ChainArrays, sign_model: str = gexmod.DEFAULT_SIGN_MODEL) -> pd.DataFrame:
    """Dealer GEX per strike, summed over expiries: columns strike ($), call_gex_per_1pct and
    put_gex_per_1pct ($ per 1% move, signed by the sign model), net_gex_per_1pct; one row per
    strike with any usable contract, ascending."""
    r, q = arrays.rates()
    g = gexmod.contract_gex_per_1pct(arrays.spot, arrays.strike, arrays.years(), arrays.iv, arrays.open_interest,
                                     arrays.multiplier, arrays.is_call, r, q, sign_model=sign_model)
    is_call = np.asarray(arrays.is_call, bool)
    frame = pd.DataFrame({"strike": np.asarray(arrays.strike, float),
                          "call_gex_per_1pct": np.where(is_call, g, 0.0),
                          "put_gex_per_1pct": np.where(is_call, 0.0, g)})
    out = frame.groupby("strike", sort=True).sum()
    out = out[(out["call_gex_per_1pct"] != 0) | (out["put_gex_per_1pct"] != 0)].reset_index()
    out["net_gex_per_1pct"] = out["call_gex_per_1pct"] + out["put_gex_per_1pct"]
    return out


def chain_arrays(lake: Lake, underlying: str, trade_date: dt.date, **iv_options) -> gexmod.ChainArrays:
    """The chain of one (underlying, trade_date) as the positioning kernels read it, rates
    from the lake; `iv_options` (e.g. iv_source) are passed to `ChainArrays.from_arrow`."""
    from eventvol.pipelines.loaders import chain_for, load_rates

    chain = chain_for(lake, underlying, trade_date)
    d = pd.Timestamp(trade_date).date()
    rates = load_rates(lake, start=d, end=d)
    return gexmod.ChainArrays.from_arrow(chain, np.zeros(chain.num_rows, np.int64), rates, **iv_options)


def positioning_view(lake: Lake, underlying: str, trade_date: dt.date,
                     sign_model: str = gexmod.DEFAULT_SIGN_MODEL, *, n_grid: int = gexmod.DEFAULT_GRID,
                     all_roots: bool = False, **iv_options) -> dict:
    """{"summary": the `eventvol gex --profile` summary (dollars per 1% move, spot $),
    "by_strike": `strike_gex` frame} of one chain."""
    from eventvol.pipelines.positioning import chain_summary

    arrays = chain_arrays(lake, underlying, trade_date, **iv_options)
    summary = chain_summary(arrays, underlying, pd.Timestamp(trade_date).date(), sign_model, profile=True,
                            all_roots=all_roots, n_grid=n_grid)
    return {"summary": summary, "by_strike": strike_gex(arrays, sign_model)}


def latest_sessions(lake: Lake) -> pd.DataFrame:
    """The last trade date with option quotes of each underlying: columns underlying,
    trade_date, ordered by underlying."""
    if not lake.files("option_quotes"):
        return pd.DataFrame(columns=["underlying", "trade_date"])
    return lake.df("SELECT underlying, max(trade_date) AS trade_date FROM option_quotes GROUP BY 1 ORDER BY 1")


def positioning_history(lake: Lake, underlying: str) -> pd.DataFrame:
    """The stored `gex` factor rows of one underlying as columns trade_date, spot, zero_gamma,
    net_gex_per_1pct (empty when the factors are not in the lake)."""
    cols = ["trade_date", "spot", "zero_gamma", "net_gex_per_1pct"]
    if not lake.files("factors"):
        return pd.DataFrame(columns=cols)
    f = lake.df("SELECT trade_date, factor, value FROM factors WHERE entity = ? "
                "AND factor IN ('spot', 'zero_gamma', 'net_gex_per_1pct')", [underlying])
    if f.empty:
        return pd.DataFrame(columns=cols)
    wide = f.pivot_table(index="trade_date", columns="factor", values="value", aggfunc="last", dropna=False)
    return wide.reindex(columns=cols[1:]).reset_index().sort_values("trade_date", kind="stable")
