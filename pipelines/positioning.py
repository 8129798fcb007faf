"""Dealer positioning factor family (`gex`): net GEX per (underlying, trade date), and the
single-chain summary behind `eventvol gex`."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from data_lake import Lake
from pipelines import gex as gexmod
from pipelines.loaders import chain_for, group_ids, load_chains
from pipelines.registry import FACTOR_ROW_COLUMNS, FactorSpec, register

GEX_OUTPUTS = ("net_gex_per_1pct", "net_gex_per_point", "contracts_used", "spot")


def gex_factor_rows(chains: pa.Table, sign_model: str = gexmod.DEFAULT_SIGN_MODEL) -> pd.DataFrame:
    """Long rows (factor, trade_date, entity, value) of net GEX per (underlying, trade_date)
    from chain rows sorted by (underlying, trade_date)."""
    gid, keys = group_ids(chains)
    if keys.empty:
        return pd.DataFrame(columns=FACTOR_ROW_COLUMNS)
    res = gexmod.net_gex(gexmod.ChainArrays.from_arrow(chains, gid), len(keys), sign_model)
    parts = [
        pd.DataFrame({"factor": name, "trade_date": keys["trade_date"].to_numpy(),
                      "entity": keys["underlying"].to_numpy(), "value": np.asarray(res[name], float)})
        for name in GEX_OUTPUTS
    ]
    return pd.concat(parts, ignore_index=True)


GEX = register(FactorSpec(
    name="gex",
    inputs=("option_quotes",),
    outputs=GEX_OUTPUTS,
    load=lambda lake, start, end: load_chains(lake, start=start, end=end),
    compute=lambda chains, start, end: gex_factor_rows(chains),
    description="net dealer gamma exposure per underlying and session",
))


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
