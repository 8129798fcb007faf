"""Dealer positioning factor family (`gex`): net GEX per (underlying, trade date), and the
single-chain summary behind `eventvol gex`."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa

from eventvol.data_lake import Lake
from eventvol.pipelines import gex as gexmod
from eventvol.pipelines import ivsource
from eventvol.pipelines.loaders import (GEX_COLUMNS, GEX_SOLVED_COLUMNS, GroupedChains, gex_chain_for,
                                        load_gex_grouped, load_rates)
from eventvol.pipelines.registry import FACTOR_ROW_COLUMNS, FactorSpec, register

# the IV source of the stored `gex` factors (see docs/gex.md, "Implied volatility source"): it
# is part of the family's version, so it enters every unit's fingerprint and a change of it
# recomputes every stored unit
GEX_IV_SOURCE = ivsource.DEFAULT_IV_SOURCE
LOG = logging.getLogger(__name__)


class PositioningWarning(UserWarning):
    """A chain gave no usable contract (the numbers are 0 / NaN for a reason worth saying)."""


def unusable_reason(arrays: gexmod.ChainArrays) -> str:
    """Why no contract of a chain is usable, in words (rows, expired, without open interest,
    without an IV under the chain's IV source)."""
    n = len(arrays.strike)
    if n == 0:
        return "the chain has no rows"
    t = arrays.years()
    iv = np.asarray(arrays.iv, float)
    oi = np.nan_to_num(np.asarray(arrays.open_interest, float), nan=0.0)
    live = t > 0
    with_oi = live & (oi > 0)
    with_iv = with_oi & np.isfinite(iv) & (iv > 0)
    source = arrays.iv_source or "given"
    if not live.any():
        return f"all {n} contracts are expired (T <= 0)"
    if not with_oi.any():
        # vendors publish a session's open interest the next morning (ARCHITECTURE "point in
        # time"), so the first session of a lake has none: say so rather than look broken
        return f"none of the {int(live.sum())} unexpired contracts has open interest > 0 " \
               "(open interest is the previous session's, so a lake's first session has none)"
    if not with_iv.any():
        hint = {"vendor": " (try --iv-source solved to solve IVs from the mid quotes)",
                "otm": " (try --iv-source solved to solve IVs from the mid quotes)",
                "solved": " (no two-sided quote with bid > 0 gave a solvable mid price either)"}.get(source, "")
        return f"none of the {int(with_oi.sum())} unexpired contracts with open interest has an implied vol " \
               f"under IV source {source!r}{hint}"
    return f"{int(with_iv.sum())} contracts are usable"

GEX_OUTPUTS = ("net_gex_per_1pct", "net_gex_per_point", "contracts_used", "spot", "zero_gamma", "call_wall",
               "put_wall", "net_vex_per_volpt", "net_cex_per_day", "gex_0dte", "gex_le7d", "gex_gt7d",
               "zero_dte_volume_share")


def gex_factor_rows(chains: pa.Table | GroupedChains, sign_model: str = gexmod.DEFAULT_SIGN_MODEL,
                    rates: pa.Table | None = None, iv_source: str = GEX_IV_SOURCE) -> pd.DataFrame:
    """Long rows (factor, trade_date, entity, value) of net GEX per (underlying, trade_date)
    from chain rows: one table holding each chain's rows contiguously (canonical columns or
    `loaders.load_gex_chains` output, strings plain or dictionary-encoded; rows per output in
    the order of its chains), or `loaders.GroupedChains` (`load_gex_grouped`; rows per output
    in (underlying, trade_date) order, as of its `table()`). r from `rates` rows (None: r = 0);
    IVs per `iv_source` (`pipelines.ivsource`). Logs a warning naming the chains without a
    usable contract."""
    grouped = chains if isinstance(chains, GroupedChains) else GroupedChains.of_table(chains)
    names, days = grouped.keys()
    if not len(names):
        return pd.DataFrame(columns=FACTOR_ROW_COLUMNS)
    res = gexmod.positioning_of_tables(grouped.tables, grouped.starts, rates, sign_model, iv_source)
    distinct, code = np.unique(names, return_inverse=True)  # names in string order, a code per chain
    if len(grouped.tables) > 1:  # the chains in key order (each table is sorted, no chain in two)
        order = np.lexsort((days, code))
        names, days, code = names[order], days[order], code[order]
        res = {name: res[name][order] for name in GEX_OUTPUTS}
    trade_dates = days.astype("datetime64[D]") if days.dtype.kind in "iu" else days
    empty = np.flatnonzero(res["contracts_used"] == 0)
    if empty.size:
        listed = ", ".join(f"{names[g]} {pd.Timestamp(trade_dates[g]).date()}" for g in empty[:5])
        more = f" and {empty.size - 5} more" if empty.size > 5 else ""
        # a log line, not a Python warning: the refresh runs this per batch and prints one line
        LOG.warning("gex: no usable contract (T > 0, open interest > 0, an implied vol under IV source %r) in "
                    "%d chain(s): %s%s (expected on a lake's first session: open interest is the previous "
                    "session's)", iv_source, empty.size, listed, more)
    # NaN (no zero crossing, no wall, no volume) is a real answer: it is stored as a row with a
    # NaN value so that the unit counts as computed.
    return long_rows(res, distinct, code, trade_dates)


# pandas' default dtype for a column of str (the Arrow-backed `str` of pandas >= 3, else object)
_STR_DTYPE = pd.Series(np.array(["x"], dtype=object)).dtype


def string_column(codes: np.ndarray, values: np.ndarray) -> pd.api.extensions.ExtensionArray | np.ndarray:
    """values[codes] as the column pandas would build from those strings, without a Python
    string per row where pandas stores strings in Arrow (a dictionary cast, in C)."""
    if isinstance(_STR_DTYPE, pd.StringDtype) and _STR_DTYPE.storage == "pyarrow":
        arr = pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, np.int32)), pa.array(list(values), pa.string()))
        return pd.array(arr.cast(pa.large_string()), dtype=_STR_DTYPE)
    return np.asarray(values, dtype=object)[codes]


def long_rows(res: dict[str, np.ndarray], names: np.ndarray, code: np.ndarray, trade_dates: np.ndarray) -> pd.DataFrame:
    """The long frame (factor, trade_date, entity, value), output-major: every chain's value of
    the first output, then of the next, from whole arrays (chain g is underlying names[code[g]])."""
    n, k = len(code), len(GEX_OUTPUTS)
    return pd.DataFrame({
        "factor": string_column(np.repeat(np.arange(k), n), np.array(GEX_OUTPUTS, dtype=object)),
        "trade_date": np.tile(trade_dates, k),
        "entity": string_column(np.tile(code, k), names),
        "value": np.concatenate([np.asarray(res[name], float) for name in GEX_OUTPUTS]),
    })


_VERSIONED = {"version": f"2;iv_source={GEX_IV_SOURCE}"} \
    if "version" in {f.name for f in dataclasses.fields(FactorSpec)} else {}

GEX = register(FactorSpec(
    name="gex",
    inputs=("option_quotes",),
    outputs=GEX_OUTPUTS,
    # only the columns the family needs, month partitions read on threads and kept apart
    # (`loaders.GroupedChains`); the rates curves of the same trade dates give r
    load=lambda lake, start, end: (load_gex_grouped(lake, start=start, end=end),
                                   load_rates(lake, start=start, end=end)),
    compute=lambda data, start, end: gex_factor_rows(data[0], rates=data[1], iv_source=GEX_IV_SOURCE),
    description="dealer gamma/vanna/charm positioning per underlying and session: net GEX, zero gamma, walls, "
                f"expiry buckets, 0DTE volume share; implied vols: {GEX_IV_SOURCE!r} source",
    # months of chains batched up to ~6M rows per task (~1 GB at peak): the demo lake's 3M rows
    # are one load, one compute and one write
    batch_rows=6_000_000,
    **_VERSIONED,
))


def positioning_summary(lake: Lake, underlying: str, trade_date: dt.date,
                        sign_model: str = gexmod.DEFAULT_SIGN_MODEL, *, profile: bool = False,
                        all_roots: bool = False, n_grid: int = gexmod.DEFAULT_GRID,
                        iv_source: str = ivsource.DEFAULT_IV_SOURCE) -> dict:
    """underlying, trade_date, sign_model, iv_source and every `gexmod.POSITIONING_FIELDS`
    value of one chain (dollars as documented there; NaN where undefined), with IVs per
    `iv_source` (otm, vendor, solved: `pipelines.ivsource`). `all_roots` adds
    zero_gamma_roots (every crossing in [0.5 S, 1.5 S]); `profile` adds profile = {spots,
    net_gex_per_1pct} on the bracketing grid. No usable contract: a `warning` entry saying
    why, also issued as a PositioningWarning."""
    ivsource.check_source(iv_source)
    d = pd.Timestamp(trade_date).date()
    chain = gex_chain_for(lake, underlying, d, GEX_SOLVED_COLUMNS if iv_source == "solved" else GEX_COLUMNS)
    rates = load_rates(lake, start=d, end=d)
    arrays = gexmod.ChainArrays.from_arrow(chain, np.zeros(chain.num_rows, np.int64), rates, iv_source)
    return chain_summary(arrays, underlying, d, sign_model, profile=profile, all_roots=all_roots,
                         n_grid=n_grid)


def chain_summary(arrays: gexmod.ChainArrays, underlying: str, trade_date: dt.date,
                  sign_model: str = gexmod.DEFAULT_SIGN_MODEL, *, profile: bool = False,
                  all_roots: bool = False, n_grid: int = gexmod.DEFAULT_GRID) -> dict:
    """`positioning_summary` of chain arrays already in memory (one group)."""
    res = gexmod.positioning(arrays, 1, sign_model, n_grid=n_grid)
    out: dict = {"underlying": underlying, "trade_date": trade_date.isoformat(), "sign_model": sign_model,
                 "iv_source": arrays.iv_source or "given"}
    for name in gexmod.POSITIONING_FIELDS:
        v = float(res[name][0])
        out[name] = int(v) if name in ("contracts_used", "zero_gamma_roots_found") else v
    if out["contracts_used"] == 0:
        out["warning"] = f"no usable contract for {underlying} on {trade_date.isoformat()}: {unusable_reason(arrays)}"
        warnings.warn(out["warning"], PositioningWarning, stacklevel=2)
    spot = out["spot"]
    if all_roots:
        out["zero_gamma_roots"] = [float(x) for x in gexmod.zero_gamma_roots(arrays, sign_model, n_grid=n_grid)]
    if profile:
        spots = np.linspace(gexmod.ROOT_RANGE[0] * spot, gexmod.ROOT_RANGE[1] * spot, n_grid)
        out["profile"] = {"spots": spots.tolist(),
                          "net_gex_per_1pct": gexmod.gex_profile(arrays, spots, sign_model).tolist()}
    return out
