"""Dealer positioning factor family (`gex`): net GEX per (underlying, trade date), and the
single-chain summary behind `eventvol gex`."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from eventvol.data_lake import Lake
from eventvol.pipelines import gex as gexmod
from eventvol.pipelines.loaders import chain_for, group_ids, load_gex_chains, load_rates
from eventvol.pipelines.registry import FACTOR_ROW_COLUMNS, FactorSpec, register

GEX_OUTPUTS = ("net_gex_per_1pct", "net_gex_per_point", "contracts_used", "spot", "zero_gamma", "call_wall",
               "put_wall", "net_vex_per_volpt", "net_cex_per_day", "gex_0dte", "gex_le7d", "gex_gt7d",
               "zero_dte_volume_share")


def gex_factor_rows(chains: pa.Table, sign_model: str = gexmod.DEFAULT_SIGN_MODEL,
                    rates: pa.Table | None = None) -> pd.DataFrame:
    """Long rows (factor, trade_date, entity, value) of net GEX per (underlying, trade_date)
    from chain rows grouped by (underlying, trade_date) (canonical columns or
    `loaders.load_gex_chains` output, strings dictionary-encoded); r from `rates` rows (None: r = 0)."""
    gid, keys = group_ids(chains)
    if keys.empty:
        return pd.DataFrame(columns=FACTOR_ROW_COLUMNS)
    res = gexmod.positioning(gexmod.ChainArrays.from_arrow(chains, gid, rates), len(keys), sign_model)
    # NaN (no zero crossing, no wall, no volume) is a real answer: it is stored as a row with a
    # NaN value so that the unit counts as computed.
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
    # only the columns the family needs, flags and numbers converted in the DuckDB scan; the
    # rates curves of the same trade dates give r
    load=lambda lake, start, end: (load_gex_chains(lake, start=start, end=end),
                                   load_rates(lake, start=start, end=end)),
    compute=lambda data, start, end: gex_factor_rows(data[0], rates=data[1]),
    description="dealer gamma/vanna/charm positioning per underlying and session: net GEX, zero gamma, walls, "
                "expiry buckets, 0DTE volume share",
))


def positioning_summary(lake: Lake, underlying: str, trade_date: dt.date,
                        sign_model: str = gexmod.DEFAULT_SIGN_MODEL, *, profile: bool = False,
                        all_roots: bool = False, n_grid: int = gexmod.DEFAULT_GRID) -> dict:
    """underlying, trade_date, sign_model and every `gexmod.POSITIONING_FIELDS` value of one
    chain (dollars as documented there; NaN where undefined). `all_roots` adds
    zero_gamma_roots (every crossing in [0.5 S, 1.5 S]); `profile` adds profile = {spots,
    net_gex_per_1pct} on the bracketing grid."""
    chain = chain_for(lake, underlying, trade_date)
    d = pd.Timestamp(trade_date).date()
    rates = load_rates(lake, start=d, end=d)
    return chain_summary(gexmod.ChainArrays.from_arrow(chain, np.zeros(chain.num_rows, np.int64), rates), underlying,
                         trade_date, sign_model, profile=profile, all_roots=all_roots, n_grid=n_grid)


def chain_summary(arrays: gexmod.ChainArrays, underlying: str, trade_date: dt.date,
                  sign_model: str = gexmod.DEFAULT_SIGN_MODEL, *, profile: bool = False,
                  all_roots: bool = False, n_grid: int = gexmod.DEFAULT_GRID) -> dict:
    """`positioning_summary` of chain arrays already in memory (one group)."""
    res = gexmod.positioning(arrays, 1, sign_model, n_grid=n_grid)
    out: dict = {"underlying": underlying, "trade_date": trade_date.isoformat(), "sign_model": sign_model}
    for name in gexmod.POSITIONING_FIELDS:
        v = float(res[name][0])
        out[name] = int(v) if name in ("contracts_used", "zero_gamma_roots_found") else v
    spot = out["spot"]
    if all_roots:
        out["zero_gamma_roots"] = [float(x) for x in gexmod.zero_gamma_roots(arrays, sign_model, n_grid=n_grid)]
    if profile:
        spots = np.linspace(gexmod.ROOT_RANGE[0] * spot, gexmod.ROOT_RANGE[1] * spot, n_grid)
        out["profile"] = {"spots": spots.tolist(),
                          "net_gex_per_1pct": gexmod.gex_profile(arrays, spots, sign_model).tolist()}
    return out
