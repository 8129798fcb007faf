"""Leveraged-ETF rebalance family (`letf`), per benchmark (entity = benchmark symbol).

A fund with leverage L and assets A must hold L*A of exposure. After a benchmark return r its
exposure is L*A*(1+r) while its new assets need L*A*(1+L*r): it trades A*L*(L-1)*r at the
close, buying after up days and selling after down days for both bull (L>1) and inverse (L<0)
funds. Outputs, in dollars:
- letf_rebalance_flow_usd: sum over the benchmark's funds of AUM(t-1) * L(L-1) * r(t).
- letf_flow_per_1pct_usd: sum of AUM(t-1) * L(L-1) * 0.01, the flow a +1% day would force,
  known before the session opens.
AUM(t-1) is the fund's AUM on the benchmark's previous session; r(t) is the benchmark's
close-to-close simple return from `bars`.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake
from eventvol.pipelines.crosssection import common as cx
from eventvol.pipelines.registry import FactorSpec, register

OUTPUTS = ("letf_rebalance_flow_usd", "letf_flow_per_1pct_usd")
LOOKBACK_SESSIONS = 10  # AUM(t-1) and the previous close


def rebalance_flows(funds: pd.DataFrame, close: cx.Panel, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Pure: `funds` (trade_date, fund, benchmark, leverage, aum) and benchmark closes -> long
    rows for trade dates in [start, end]. A fund missing on the previous session adds nothing
    that day; a benchmark without a close on t or t-1 gets no row."""
    parts = []
    if funds.empty:
        return cx.concat_rows(parts)
    f = funds.assign(trade_date=pd.to_datetime(funds["trade_date"]).to_numpy(dtype="datetime64[D]"))
    for bench, g in f.groupby("benchmark", sort=True):
        px = close.col(bench)
        dates = close.dates
        ret = cx.simple_returns(px)
        # exposure coefficient of each fund on each session: AUM * L * (L - 1), summed.
        pos = np.searchsorted(dates, g["trade_date"].to_numpy())
        on = (pos < len(dates)) & (dates[np.minimum(pos, len(dates) - 1)] == g["trade_date"].to_numpy()) if len(dates) else np.zeros(len(g), bool)
        lev = g["leverage"].to_numpy(float)
        coef = np.zeros(len(dates))
        np.add.at(coef, pos[on], (g["aum"].to_numpy(float) * lev * (lev - 1.0))[on])
        seen = np.zeros(len(dates), bool)
        seen[pos[on]] = True
        prev = np.full(len(dates), np.nan)
        prev[1:] = np.where(seen[:-1], coef[:-1], np.nan)
        parts.append(cx.long_rows("letf_rebalance_flow_usd", dates, bench, prev * ret, start, end))
        parts.append(cx.long_rows("letf_flow_per_1pct_usd", dates, bench, prev * 0.01, start, end))
    return cx.concat_rows(parts)


def load(lake: Lake, start, end) -> dict:
    start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    lo = cx.lookback_start(start, LOOKBACK_SESSIONS)
    funds = lake.read("letf_funds", where="trade_date >= ? AND trade_date <= ?", params=[lo, end])
    benches = sorted(funds["benchmark"].unique().tolist()) if not funds.empty else []
    close = cx.bars_panel(cx.load_bars(lake, lo, end, symbols=benches or ["\x00"]))
    return {"funds": funds, "close": close}


LETF = register(FactorSpec(
    name="letf",
    inputs=("letf_funds", "bars"),
    outputs=OUTPUTS,
    load=load,
    compute=lambda data, start, end: rebalance_flows(data["funds"], data["close"], start, end),
    lookback_sessions=LOOKBACK_SESSIONS,
    batch_months=0,
    description="leveraged-ETF close rebalance flow per benchmark, dollars",
))
