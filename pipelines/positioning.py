"""Dealer positioning of one chain: the numbers behind `eventvol gex`."""

from __future__ import annotations

import datetime as dt

import numpy as np

from data_lake import Lake
from pipelines import gex as gexmod
from pipelines.loaders import chain_for


def positioning_summary(lake: Lake, underlying: str, trade_date: dt.date,
                        sign_model: str = gexmod.DEFAULT_SIGN_MODEL) -> dict:
    """underlying, trade_date, spot, net_gex_per_1pct ($ per 1% move), net_gex_per_point
    ($ per 1 point), contracts_used, sign_model."""
    chain = chain_for(lake, underlying, trade_date)
    arrays = gexmod.ChainArrays.from_arrow(chain, np.zeros(chain.num_rows, np.int64))
    res = gexmod.net_gex(arrays, 1, sign_model)
    return {
        "underlying": underlying,
        "trade_date": trade_date.isoformat(),
        "spot": float(res["spot"][0]),
        "net_gex_per_1pct": float(res["net_gex_per_1pct"][0]),
        "net_gex_per_point": float(res["net_gex_per_point"][0]),
        "contracts_used": int(res["contracts_used"][0]),
        "sign_model": sign_model,
    }
