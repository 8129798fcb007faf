"""Squeeze-pressure family (`squeeze`), per stock (entity = symbol).

- short_interest_float: shares short / float shares of the latest short-interest report
  published on or before the date (reports settle ~2 weeks before they are published).
- days_to_cover: that report's shares short / mean daily volume over the last 21 sessions.
- call_gamma_near_spot_usd: dollar gamma of the stock's listed calls with strikes within 5% of
  spot, |gamma| * OI * multiplier * S^2 * 0.01 (dollars of hedge per 1% move; if dealers are
  short these calls, as in a retail call-buying squeeze, they must buy this much per +1%).
- call_gamma_near_spot_share: that near-spot call gamma over all of the stock's call gamma.
- call_gamma_to_adv: call_gamma_near_spot_usd over 21-session mean dollar volume.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

from eventvol.data_lake import Lake
from eventvol.data_lake.vendors import pick_vendor
from eventvol.pipelines import bsm, gex as gexmod
from eventvol.pipelines.crosssection import common as cx
from eventvol.pipelines.loaders import column, group_ids
from eventvol.pipelines.registry import FactorSpec, register

ADV_WINDOW = 21
NEAR_SPOT = 0.05
OUTPUTS = ("short_interest_float", "days_to_cover", "call_gamma_near_spot_usd",
           "call_gamma_near_spot_share", "call_gamma_to_adv")
LOOKBACK_SESSIONS = ADV_WINDOW + 1
# root is read only for the row order: the lake sorts by the key columns a read selects, and
# without root the SPX/SPXW twins of a strike tie, so their order (and the float sums over
# them) would depend on how many days one read covers
CALL_COLUMNS = ["underlying", "trade_date", "root", "expiration", "settlement", "strike", "iv",
                "open_interest", "multiplier", "underlying_price"]


def call_gamma(calls: pa.Table) -> pd.DataFrame:
    """Pure: call rows sorted by (underlying, trade_date) -> (underlying, trade_date,
    near_usd, total_usd) dollar gamma per 1% move. Rows with T <= 0 or no IV add nothing."""
    gid, keys = group_ids(calls)
    if keys.empty:
        return pd.DataFrame(columns=["underlying", "trade_date", "near_usd", "total_usd"])
    spot, strike = column(calls, "underlying_price"), column(calls, "strike")
    t = gexmod.years_to_expiry(column(calls, "trade_date"), column(calls, "expiration"),
                               np.asarray(calls.column("settlement").to_pylist(), dtype=object))
    iv = column(calls, "iv").astype(float)
    oi = np.nan_to_num(column(calls, "open_interest").astype(float))
    usable = np.isfinite(iv) & (iv > 0) & (t > 0)
    g = bsm.gamma(spot, strike, t, np.where(usable, iv, 0.0))
    dollar = np.where(usable, g * oi * column(calls, "multiplier").astype(float) * spot * spot * 0.01, 0.0)
    near = np.abs(strike / spot - 1.0) <= NEAR_SPOT
    n = len(keys)
    return pd.DataFrame({"underlying": keys["underlying"].to_numpy(), "trade_date": keys["trade_date"].to_numpy(),
                         "near_usd": np.bincount(gid, np.where(near, dollar, 0.0), n),
                         "total_usd": np.bincount(gid, dollar, n)})


def squeeze_rows(data: dict, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Pure: short interest, volume/close panels and call gamma -> long rows in [start, end]."""
    close: cx.Panel = data["close"]
    volume: cx.Panel = data["volume"]
    si: pd.DataFrame = data["short_interest"]
    parts = []
    dates = close.dates
    adv_sh = {}
    adv_usd = {}
    if len(dates):
        v, c = volume.values, close.values
        for i, sym in enumerate(close.symbols):
            vi = v[:, i]
            adv_sh[sym] = _rolling_mean(vi, ADV_WINDOW)
            adv_usd[sym] = _rolling_mean(vi * c[:, i], ADV_WINDOW)
    if not si.empty and len(dates):
        si = si.sort_values(["symbol", "publish_date", "settlement_date"], kind="stable")
        for sym, g in si.groupby("symbol", sort=True):
            pub = g["publish_date"].to_numpy(dtype="datetime64[D]")
            # latest report published on or before each session (publish_date is the knowledge date)
            idx = np.searchsorted(pub, dates, "right") - 1
            has = idx >= 0
            short = np.where(has, g["shares_short"].to_numpy(float)[np.maximum(idx, 0)], np.nan)
            flt = g["float_shares"].to_numpy(float) if "float_shares" in g else np.full(len(g), np.nan)
            fl = np.where(has, flt[np.maximum(idx, 0)], np.nan)
            with np.errstate(invalid="ignore", divide="ignore"):
                parts.append(cx.long_rows("short_interest_float", dates, sym, short / fl, start, end))
                adv = adv_sh.get(sym, np.full(len(dates), np.nan))
                parts.append(cx.long_rows("days_to_cover", dates, sym, np.where(adv > 0, short / adv, np.nan), start, end))
    cg: pd.DataFrame = data["call_gamma"]
    if not cg.empty:
        cg_dates = cg["trade_date"].to_numpy(dtype="datetime64[D]")
        ent = cg["underlying"].to_numpy(dtype=object)
        near, total = cg["near_usd"].to_numpy(float), cg["total_usd"].to_numpy(float)
        parts.append(cx.long_rows("call_gamma_near_spot_usd", cg_dates, ent, near, start, end))
        with np.errstate(invalid="ignore", divide="ignore"):
            parts.append(cx.long_rows("call_gamma_near_spot_share", cg_dates, ent, np.where(total > 0, near / total, np.nan), start, end))
        adv_at = np.full(len(cg), np.nan)
        for sym in np.unique(ent):
            if sym not in adv_usd:
                continue
            sel = ent == sym
            pos = np.searchsorted(dates, cg_dates[sel])
            okp = pos < len(dates)
            vals = np.full(sel.sum(), np.nan)
            vals[okp] = np.where(dates[pos[okp]] == cg_dates[sel][okp], adv_usd[sym][pos[okp]], np.nan)
            adv_at[sel] = vals
        with np.errstate(invalid="ignore", divide="ignore"):
            parts.append(cx.long_rows("call_gamma_to_adv", cg_dates, ent, np.where(adv_at > 0, near / adv_at, np.nan), start, end))
    return cx.concat_rows(parts)


def _rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Mean over the trailing `window` rows, each window summed on its own (point in time,
    chunking-independent); NaN unless all are finite."""
    out = np.full(len(x), np.nan)
    if len(x) >= window:
        out[window - 1:] = np.lib.stride_tricks.sliding_window_view(np.asarray(x, float), window).sum(axis=-1) / window
    return out


def load(lake: Lake, start, end) -> dict:
    """Bars (close, volume) of stocks with short interest or listed options, their short
    interest reports published by `end`, and their calls' dollar gamma per session."""
    start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    si = lake.read("short_interest", where="publish_date <= ?", params=[end])
    # one vendor per (underlying, trade_date): two vendors' open interest is never added up
    calls = pick_vendor(lake.read_arrow("option_quotes", columns=[*CALL_COLUMNS, "vendor"],
                                        where="option_type = 'C' AND trade_date >= ? AND trade_date <= ?",
                                        params=[start, end]), lake=lake).select(CALL_COLUMNS)
    syms = sorted(set(si["symbol"]) | set(calls.column("underlying").unique().to_pylist()))
    bars = cx.load_bars(lake, cx.lookback_start(start, LOOKBACK_SESSIONS), end, columns=("close", "volume"),
                        symbols=syms or ["\x00"])
    return {"short_interest": si, "close": cx.bars_panel(bars, "close"), "volume": cx.bars_panel(bars, "volume"),
            "call_gamma": call_gamma(calls)}


SQUEEZE = register(FactorSpec(
    name="squeeze",
    inputs=("bars", "short_interest", "option_quotes"),
    outputs=OUTPUTS,
    load=load,
    compute=squeeze_rows,
    lookback_sessions=LOOKBACK_SESSIONS,
    requires=(("bars",), ("short_interest", "option_quotes")),  # either source of squeeze pressure
    batch_months=3,  # reads every call row of its range: bound the memory
    description="short interest / float, days to cover, dealer call-gamma concentration near spot",
))
