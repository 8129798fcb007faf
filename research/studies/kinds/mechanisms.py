"""Mechanism estimators (`[mechanism] estimator = ...`), registered as plug-ins:

- `session_vol_ratio` (H1): the planted dealer-gamma feedback measured on every stock-session
  outside earnings reaction days. A stock's return has a market part (scaled by the index's
  dealer regime) and an own part (scaled by the stock's), so the clean comparison is sessions
  after which both the stock's and the index's net GEX were negative against sessions after
  which both were positive. log(r_t^2) is regressed on dummies for (both negative, stock
  only, index only) with stock fixed effects. For returns whose distribution differs between
  regimes only by scale, the 'both negative' coefficient is exactly 2 log(vol ratio), so
  ratio = exp(b / 2), with the interval mapped the same way.
  Errors are clustered by contiguous blocks of `block_sessions` sessions (default 63, about a
  quarter; shorter on a short sample so that there are 8 blocks, never under 21 sessions),
  with t(G - 1) inference, not by session: volatility and dealer positioning are both persistent, so
  sessions of one month are not independent draws and clustering by day alone made the test
  reject a true null in 15% of synthetic markets (Bester, Conley and Hansen 2011; see
  docs/research.md "Honest size").
- `rebound_crash_rates` (H3) and `squeeze_followthrough` (H5): see research/studies/mechanisms.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eventvol.research.studies import data as D
from eventvol.research.studies import mechanisms as MX
from eventvol.research.studies import stats as S
from eventvol.research.studies.kinds import register_mechanism
from eventvol.research.studies.spec import HypothesisSpec, NotEvaluable

BLOCK_SESSIONS = 63
MIN_BLOCKS = 8


def session_vol_ratio(data: D.StudyData, spec: HypothesisSpec, params: dict) -> dict:
    """The H1 estimator over `data` (see the module docstring)."""
    factor = params.get("factor", "net_gex_per_1pct")
    data.require_factors([factor])
    mkt = data.market_symbol()
    rets = data.returns()
    if rets.empty or mkt not in rets.columns:
        raise NotEvaluable(f"no bars for the market index {mkt}")
    return session_vol_ratio_frames(data.factor(factor), rets, rets[mkt].rename(mkt), data.events(["earnings"]),
                                    factor, block_sessions=int(params.get("block_sessions", BLOCK_SESSIONS)))


def session_vol_ratio_frames(f: pd.DataFrame, rets: pd.DataFrame, market: pd.Series, events: pd.DataFrame,
                             factor: str = "net_gex_per_1pct", block_sessions: int = BLOCK_SESSIONS) -> dict:
    """Pure part of `session_vol_ratio`: factor rows (trade_date, entity, value), the returns
    panel, the market series (named by the index) and events (symbol, reaction_session)."""
    have = set(f["entity"])
    stocks = [s for s in rets.columns if s != market.name and s in have]
    if market.name not in have:
        raise NotEvaluable(f"factor {factor!r} has no value for the index {market.name}")
    ev_days = set(zip(events["symbol"], pd.to_datetime(events["reaction_session"])))
    prev = rets.index.to_numpy()[:-1]
    g_idx = D.value_as_of(f, np.full(len(prev), market.name), prev)
    ys, xs, fe, pos, syms = [], [], [], [], []
    session_pos = np.arange(1, len(rets.index))
    for j, s in enumerate(stocks):
        r1 = rets[s].to_numpy()[1:]
        g = D.value_as_of(f, np.full(len(prev), s), prev)
        keep = np.isfinite(r1) & np.isfinite(g) & np.isfinite(g_idx) & (r1 != 0)
        keep &= ~np.array([(s, d) in ev_days for d in rets.index[1:]])
        sn, mn = g[keep] < 0, g_idx[keep] < 0
        ys.append(np.log(r1[keep] ** 2))
        xs.append(np.column_stack([sn & mn, sn & ~mn, ~sn & mn]).astype(float))
        fe.append(np.full(keep.sum(), j))
        pos.append(session_pos[keep])
        syms.append(np.full(keep.sum(), s, dtype=object))
    if not ys or sum(len(y) for y in ys) < 30:
        raise NotEvaluable("too few stock-sessions with a GEX value for the session-level vol ratio")
    y, x, fe, pos = np.concatenate(ys), np.vstack(xs), np.concatenate(fe), np.concatenate(pos)
    # at least MIN_BLOCKS blocks on a short sample (never shorter than a month of sessions);
    # block_sessions = 1 clusters by session (the old errors, kept for comparison)
    span = int(pos.max() - pos.min() + 1)
    if block_sessions > span // MIN_BLOCKS:
        block_sessions = max(span // MIN_BLOCKS, 21)
    blocks = (pos - pos.min()) // block_sessions
    if len(np.unique(blocks)) < 4:
        raise NotEvaluable(f"only {len(np.unique(blocks))} blocks of {block_sessions} sessions (need 4 for clustered errors)")
    X = np.column_stack([x] + [(fe == j).astype(float) for j in range(len(stocks))])
    reg = S.ols(y, X, ["both_negative", "stock_only_negative", "index_only_negative"] + [f"fe_{s}" for s in stocks],
                cov="cluster", groups=blocks)
    b, lo, hi, p = reg.coef[0], reg.ci_low[0], reg.ci_high[0], reg.p[0]
    return {"name": "session vol ratio, stock and index GEX both negative / both positive",
            "estimate": float(np.exp(b / 2)), "ci_low": float(np.exp(lo / 2)), "ci_high": float(np.exp(hi / 2)),
            "p_value": float(p), "n": int(reg.n), "n_both_negative": int(x[:, 0].sum()),
            "n_both_positive": int((x.sum(axis=1) == 0).sum()), "errors": reg.cov_type, "null": 1.0,
            # the stock-sessions the regression used (StudyResult.frame; not in the JSON)
            "frame": pd.DataFrame({"session": rets.index.to_numpy()[pos], "symbol": np.concatenate(syms),
                                   "log_return_sq": y, "both_negative": x[:, 0].astype(bool),
                                   "stock_only_negative": x[:, 1].astype(bool), "index_only_negative": x[:, 2].astype(bool),
                                   "block": blocks})}


def _stock_panels(data: D.StudyData) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """(stock closes sessions x symbols, index closes, event-reaction skip mask)."""
    mkt = data.market_symbol()
    close = data.closes()
    if close.empty:
        raise NotEvaluable("the lake has no bars")
    if mkt not in close.columns:
        raise NotEvaluable(f"no bars for the market index {mkt}")
    stocks = close.drop(columns=[mkt])
    events = data.events()
    return stocks, close[mkt], MX.event_skip(events, close.index, stocks.columns)


def rebound_crash_rates(data: D.StudyData, spec: HypothesisSpec, params: dict) -> dict:
    stocks, index_close, skip = _stock_panels(data)
    return MX.rebound_crash_rates(stocks, index_close, skip, k=float(params.get("k", 3.0)))


def squeeze_followthrough(data: D.StudyData, spec: HypothesisSpec, params: dict) -> dict:
    si = data.table("short_interest")
    if si is None or len(si) == 0:
        raise NotEvaluable("the lake has no short_interest table")
    stocks, index_close, skip = _stock_panels(data)
    return MX.squeeze_followthrough(stocks, index_close, si, skip, threshold=float(params.get("threshold", 0.10)),
                                    k=float(params.get("k", 3.0)))


register_mechanism("session_vol_ratio", session_vol_ratio, params=("factor", "block_sessions"),
                   description="stock-session vol ratio, both GEX negative / both positive")
register_mechanism("rebound_crash_rates", rebound_crash_rates, params=("k",),
                   description="momentum-crash frequency in rebound sessions minus others",
                   frame=lambda r: pd.DataFrame({"crash_date": pd.to_datetime(r.get("crash_dates", []))}))
register_mechanism("squeeze_followthrough", squeeze_followthrough, params=("threshold", "k"),
                   description="next-session return after an upside jump in a heavily shorted stock",
                   frame=lambda r: pd.DataFrame(r.get("events", []), columns=["symbol", "session"]))
