"""Momentum and crowding family (`momentum`).

Outputs:
- momentum_12_1 (entity = stock): close 21 sessions ago / close 252 sessions ago - 1, for
  stocks that are members of some index on that date (the skip month avoids short-term
  reversal, Jegadeesh and Titman).
- per index (entity = index symbol):
  - wml_return: daily return of the equal-weighted winners-minus-losers portfolio, groups
    formed at the previous close from momentum_12_1 among that day's members (deciles with
    50+ ranked members, else terciles); a name without a return on the day drops out.
  - wml_vol_126d: annualized realized vol of wml_return over 126 sessions (Barroso and
    Santa-Clara's crowding/risk signal).
  - comomentum_winners, comomentum_losers, comomentum: Lou and Polk's comomentum, price-only:
    the average pairwise correlation of market-residual weekly returns (5-session log returns
    ending on the date, 52 of them) within the current winner and loser groups; comomentum is
    their mean.
  - market_return_24m, bear_market: the index's return over 504 sessions and 1.0 when it is
    below zero (Daniel and Moskowitz's bear-market indicator), else 0.0.
  - market_var_126d: annualized variance of the index's daily returns over 126 sessions.
  - panic_state: 1.0 in a bear market whose market_var_126d is at or above the 80th
    percentile of its trailing 3 years, else 0.0.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake
from eventvol.pipelines.crosssection import common as cx
from eventvol.pipelines.crosssection import kernels
from eventvol.pipelines.registry import FactorSpec, register

MOM_LONG, MOM_SKIP = 252, 21
WML_VOL_WINDOW = 126
WEEK, WEEKS = 5, 52
BEAR_SESSIONS = 504
MARKET_VAR_WINDOW = 126
PANIC_VAR_PCT = 0.8
DECILE_MIN_NAMES = 50

INDEX_OUTPUTS = ("wml_return", "wml_vol_126d", "comomentum_winners", "comomentum_losers", "comomentum",
                 "market_return_24m", "bear_market", "market_var_126d", "panic_state")
OUTPUTS = ("momentum_12_1",) + INDEX_OUTPUTS
LOOKBACK_SESSIONS = cx.PCT_WINDOW_SESSIONS + MARKET_VAR_WINDOW + WEEK  # panic's percentile is the longest


# --------------------------------------------------------------------------- pure math
def momentum_12_1(close: np.ndarray) -> np.ndarray:
    """close[t-21] / close[t-252] - 1 per column (NaN for the first 252 rows or gaps)."""
    out = np.full(close.shape, np.nan)
    if close.shape[0] > MOM_LONG:
        with np.errstate(invalid="ignore", divide="ignore"):
            out[MOM_LONG:] = close[MOM_LONG - MOM_SKIP:-MOM_SKIP] / close[:-MOM_LONG] - 1.0
    return out


def quantile_groups(signal: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(winners, losers) boolean [rows, names]: per row, the top and bottom decile (terciles
    with fewer than 50 eligible names) of `signal` among `eligible` finite values. Ties are
    broken by column order so the groups are deterministic."""
    # compiled per-row stable sort of the eligible values (the same groups as a stable
    # argsort of the whole row, without sorting the ineligible names or building a rank matrix)
    sig = np.ascontiguousarray(signal, dtype=float)
    elig = np.ascontiguousarray(np.broadcast_to(eligible, sig.shape), dtype=bool)
    return kernels.quantile_groups_rows(sig, elig, DECILE_MIN_NAMES)


def wml_returns(ret: np.ndarray, winners: np.ndarray, losers: np.ndarray) -> np.ndarray:
    """Equal-weighted winners-minus-losers return on row t with groups from row t-1."""
    # compiled per row; sums in numpy's pairwise order, so the same numbers as
    # where(group & finite, r, 0).sum(axis=1) / count
    return kernels.wml_rows(np.ascontiguousarray(ret, dtype=float), np.ascontiguousarray(winners, dtype=bool),
                            np.ascontiguousarray(losers, dtype=bool))


def mean_residual_correlation(stock: np.ndarray, market: np.ndarray) -> float:
    """Average pairwise correlation of the residuals of each column of `stock` [weeks, names]
    regressed (with intercept) on `market` [weeks]. Columns with a gap are dropped; NaN with
    fewer than two columns."""
    keep = np.isfinite(stock).all(axis=0)
    x = stock[:, keep]
    if x.shape[1] < 2 or not np.isfinite(market).all():
        return np.nan
    m = market - market.mean()
    xc = x - x.mean(axis=0)
    beta = (m @ xc) / (m @ m)
    resid = xc - np.outer(m, beta)
    sd = np.sqrt((resid * resid).sum(axis=0))
    if (sd == 0).any():
        return np.nan
    z = resid / sd
    c = z.T @ z
    k = c.shape[0]
    return float((c.sum() - np.trace(c)) / (k * (k - 1)))


def weekly_log_returns(close: np.ndarray) -> np.ndarray:
    """log close[t] - log close[t-WEEK] per column (NaN for the first WEEK rows, gaps and
    non-positive closes): every weekly return comomentum needs, computed once per panel."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lc = np.log(np.where(close > 0, close, np.nan))
    out = np.full(lc.shape, np.nan)
    out[WEEK:] = lc[WEEK:] - lc[:-WEEK]
    return out


def comomentum(close: np.ndarray, index_close: np.ndarray, winners: np.ndarray, losers: np.ndarray,
               rows: np.ndarray, block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(winners, losers) comomentum at each row in `rows` (NaN elsewhere): for row t, the
    `mean_residual_correlation` of the WEEKS weekly log returns ending at t of that group's
    names on the index's. A compiled loop per row (parallel over rows) accumulates
    sum_{i!=j} z_i.z_j = |sum_i z_i|^2 - sum_i |z_i|^2 on unit-norm residuals z, so no k x k
    matrix is formed; each row reads only its own 261 sessions. `block` is accepted for
    compatibility and ignored (no [rows, weeks, names] temporaries any more)."""
    n = close.shape[0]
    cw, cl = np.full(n, np.nan), np.full(n, np.nan)
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[rows >= WEEK * WEEKS]
    if len(rows) == 0:
        return cw, cl
    wk = np.ascontiguousarray(weekly_log_returns(np.asarray(close, float)).T)  # [names, rows]
    wi = weekly_log_returns(np.asarray(index_close, float)[:, None])[:, 0]
    cw[rows], cl[rows] = kernels.comomentum_rows(wk, wi, np.ascontiguousarray(winners), np.ascontiguousarray(losers),
                                                 rows, WEEK, WEEKS)
    return cw, cl


def index_momentum(close: cx.Panel, members: pd.DataFrame, index: str, rows: np.ndarray, *,
                   mask: np.ndarray | None = None, mom: np.ndarray | None = None,
                   ret: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Every per-index output as arrays aligned with `close.dates`; comomentum only on `rows`.
    `mask` (members of `index`, the index itself excluded), `mom` (momentum_12_1 of the
    panel) and `ret` (its simple returns) may be passed in when computed once for several
    indexes; they are derived from the panel otherwise."""
    is_index = close.symbols == index
    idx_close = close.values[:, np.flatnonzero(is_index)[0]]
    if mask is None:
        mask = cx.member_mask(members, index, close.dates, close.symbols) & ~is_index[None, :]
    mom = momentum_12_1(close.values) if mom is None else mom
    winners, losers = quantile_groups(mom, mask)
    wml = wml_returns(cx.simple_returns(close.values) if ret is None else ret, winners, losers)
    cw, cl = comomentum(close.values, idx_close, winners, losers, rows)
    mret = cx.simple_returns(idx_close)
    r24 = np.full(len(idx_close), np.nan)
    if len(idx_close) > BEAR_SESSIONS:
        r24[BEAR_SESSIONS:] = idx_close[BEAR_SESSIONS:] / idx_close[:-BEAR_SESSIONS] - 1.0
    bear = np.where(np.isfinite(r24), (r24 < 0).astype(float), np.nan)
    mvar = cx.rolling_std(mret, MARKET_VAR_WINDOW) ** 2 * cx.TRADING_DAYS
    var_pct = cx.trailing_percentile(mvar)
    panic = np.where(np.isfinite(bear) & np.isfinite(var_pct), ((bear == 1) & (var_pct >= PANIC_VAR_PCT)).astype(float), np.nan)
    return {
        "wml_return": wml,
        "wml_vol_126d": cx.rolling_std(wml, WML_VOL_WINDOW) * np.sqrt(cx.TRADING_DAYS),
        "comomentum_winners": cw, "comomentum_losers": cl,
        "comomentum": np.where(np.isfinite(cw) & np.isfinite(cl), (cw + cl) / 2, np.nan),
        "market_return_24m": r24, "bear_market": bear, "market_var_126d": mvar, "panic_state": panic,
    }


def compute(data: dict, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Pure: loaded close panel and memberships -> long rows for trade dates in [start, end]."""
    close: cx.Panel = data["close"]
    members: pd.DataFrame = data["members"]
    if close.values.size == 0:
        return cx.concat_rows([])
    rows = np.flatnonzero((close.dates >= np.datetime64(start, "D")) & (close.dates <= np.datetime64(end, "D")))
    parts = []
    any_member = np.zeros(close.values.shape, bool)
    syms = set(close.symbols)
    # one momentum and one return panel for every index (pure functions of the panel)
    mom_all, ret = momentum_12_1(close.values), cx.simple_returns(close.values)
    for index in data["indexes"]:
        mask = cx.member_mask(members, index, close.dates, close.symbols) & (close.symbols != index)[None, :]
        any_member |= mask
        if index not in syms:
            continue
        res = index_momentum(close, members, index, rows, mask=mask, mom=mom_all, ret=ret)
        parts.append(cx.long_rows_block(INDEX_OUTPUTS, close.dates, index,
                                        np.column_stack([res[name] for name in INDEX_OUTPUTS]), start, end))
    mom = np.where(any_member, mom_all, np.nan)
    parts.append(cx.long_rows_panel("momentum_12_1", close.dates, close.symbols, mom, start, end))
    return cx.concat_rows(parts)


# --------------------------------------------------------------------------- I/O
def load(lake: Lake, start, end) -> dict:
    start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    members = cx.load_members(lake)
    indexes = sorted(members["index"].unique().tolist()) if not members.empty else []
    symbols = sorted(set(members["symbol"]) | set(indexes))
    bars = cx.load_bars(lake, cx.lookback_start(start, LOOKBACK_SESSIONS), end, symbols=symbols)
    return {"close": cx.bars_panel(bars), "members": members, "indexes": indexes}


MOMENTUM = register(FactorSpec(
    name="momentum",
    inputs=("bars", "index_members"),
    outputs=OUTPUTS,
    load=load,
    compute=compute,
    lookback_sessions=LOOKBACK_SESSIONS,
    batch_months=0,  # price panels are small: a backfill is one load and one compute
    description="12-1 momentum, winners-minus-losers returns, crowding (WML vol, comomentum), bear/panic states",
))
