"""Estimators of the synthetic market's planted mechanisms that H3 and H5 test, from lake data
known point in time (bars, events, short interest; never the truth table's event dates).

- `rebound_crash_rates` (H3): how much more often momentum crashes in a rebound state
  (the index below its level 126 sessions earlier but up over the last 5, known at t-1)
  than outside one. The rotation (winners-minus-losers) return of session t is the
  cross-sectional slope of stocks' log returns on their 12-1 momentum rank in [-1, 1] at
  t-1 (stocks with an earnings or disclosure reaction that session left out); a crash is a
  slope below -`k` times its robust trailing sd (1.4826 x MAD of the previous 63 slopes).
  Estimate: crash frequency in rebound sessions minus outside, Newcombe's hybrid score
  interval, Fisher's exact test. Additive false detections cancel in the difference, so
  it estimates the mean crash hazard in rebounds minus outside (times the detection rate).
- `squeeze_followthrough` (H5): the mean next-session market-adjusted return after the
  first session of a detected upside jump (market-adjusted return above `k` trailing sds,
  the session before below two sds) in a stock whose published short interest / float at
  t-1 is at least `threshold` and at least 90% of its highest published value so far (the
  shorts have not covered), with no earnings or disclosure reaction on either session. A squeeze adds a jump on two
  consecutive sessions, so detection on the first leaves the second unselected: its mean
  is the planted jump per session. t interval, t-test of zero.

Both are pure (pandas/numpy in, dict out); research/studies/kinds/mechanisms.py registers
them as mechanism estimators over a `StudyData`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from eventvol.research.studies.data import close_panel  # noqa: F401  (tests and callers build panels with it)
from eventvol.research.studies.spec import NotEvaluable

MOM_LONG, MOM_SKIP = 252, 21  # 12-1 momentum: close 22 sessions before t over close 253 before
MIN_MOM_SPAN = 21  # sessions of momentum history needed at the start of a sample
BEAR_SESSIONS, REBOUND_SESSIONS = 126, 5
SCALE_WINDOW, SCALE_MIN = 63, 40
CALM_SD = 2.0  # H5: the session before a detected first jump rose by less than this many sds
PEAK_SHARE = 0.9  # H5: short interest at least this share of the stock's highest published so far
MAD_TO_SD = 1.4826


def momentum_ranks(log_close: np.ndarray, t: int) -> np.ndarray:
    """12-1 momentum rank in [-1, 1] of each column at session t (decided at t-1's close):
    log close[t-22] - log close[max(t-253, 0)], over the history available (at least 21
    sessions); NaN for a column without both closes, all NaN before enough history."""
    hi, lo = t - 1 - MOM_SKIP, max(t - 1 - MOM_LONG, 0)
    out = np.full(log_close.shape[1], np.nan)
    if hi - lo < MIN_MOM_SPAN:
        return out
    mom = log_close[hi] - log_close[lo]
    ok = np.isfinite(mom)
    if ok.sum() < 3:
        return out
    ranks = np.argsort(np.argsort(mom[ok], kind="stable"), kind="stable")
    out[ok] = ranks / (ok.sum() - 1) * 2 - 1
    return out


def rotation_returns(close: pd.DataFrame, skip: pd.DataFrame | None = None) -> pd.Series:
    """Per session, the OLS slope of stocks' log returns on their momentum rank (known at
    t-1): the return of a rank-weighted winners-minus-losers portfolio per unit of rank.
    `close` is sessions x stocks (the index excluded); `skip` a same-shaped boolean frame of
    stock-sessions to leave out (event reactions). NaN where fewer than 5 stocks remain."""
    lc = np.log(close.to_numpy(float))
    r = np.vstack([np.full((1, lc.shape[1]), np.nan), np.diff(lc, axis=0)])
    sk = np.zeros(lc.shape, bool) if skip is None else skip.reindex_like(close).fillna(False).to_numpy(bool)
    out = np.full(len(close), np.nan)
    for t in range(1, len(close)):
        x = momentum_ranks(lc, t)
        ok = np.isfinite(x) & np.isfinite(r[t]) & ~sk[t]
        if ok.sum() < 5:
            continue
        xc = x[ok] - x[ok].mean()
        out[t] = float(xc @ (r[t, ok] - r[t, ok].mean()) / (xc @ xc))
    return pd.Series(out, index=close.index, name="rotation_return")


def trailing_robust_sd(x: pd.Series, window: int = SCALE_WINDOW, min_periods: int = SCALE_MIN) -> pd.Series:
    """1.4826 x median absolute deviation of the previous `window` values (t excluded), so
    a crash neither inflates its own threshold nor, being rare, the next ones."""
    def mad(v):
        v = v[np.isfinite(v)]  # sessions without a rotation return (too few stocks) are skipped
        return MAD_TO_SD * np.median(np.abs(v - np.median(v)))
    return x.rolling(window, min_periods=min_periods).apply(mad, raw=True).shift(1)


def rebound_states(index_close: pd.Series) -> pd.Series:
    """Rebound at session t from closes through t-1 (the simulator's rule): the index is
    below its close 126 sessions earlier and above its close 5 sessions earlier. NaN
    (unknown) for the first 127 sessions."""
    c = index_close.to_numpy(float)
    out = np.full(len(c), np.nan)
    for t in range(BEAR_SESSIONS + 1, len(c)):
        prev = c[t - 1]
        out[t] = float(prev < c[t - 1 - BEAR_SESSIONS] and prev > c[t - 1 - REBOUND_SESSIONS])
    return pd.Series(out, index=index_close.index, name="rebound")


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(mid - half, 0.0)), float(min(mid + half, 1.0))


def newcombe_difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """(p1 - p2, low, high): Newcombe's (1998) hybrid score interval (method 10) for a
    difference of independent proportions, sound at counts of zero."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1)
    l2, u2 = wilson(k2, n2)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return float(d), float(lo), float(hi)


def rebound_crash_rates(close: pd.DataFrame, index_close: pd.Series, skip: pd.DataFrame | None = None,
                        k: float = 3.0) -> dict:
    """H3's mechanism: crash frequency of the rotation return in rebound sessions minus
    outside (see the module docstring). `close` sessions x stocks, `index_close` the
    index's closes on the same sessions."""
    f = rotation_returns(close, skip)
    scale = trailing_robust_sd(f)
    reb = rebound_states(index_close.reindex(close.index))
    ok = f.notna() & scale.notna() & (scale > 0) & reb.notna()
    crash = (f < -k * scale)[ok].to_numpy()
    on = reb[ok].to_numpy() == 1.0
    n1, n2 = int(on.sum()), int((~on).sum())
    if n1 < 5 or n2 < 5:
        raise NotEvaluable(f"only {n1} rebound sessions and {n2} others with a rotation return (need 5 each)")
    k1, k2 = int(crash[on].sum()), int(crash[~on].sum())
    d, lo, hi = newcombe_difference(k1, n1, k2, n2)
    p = float(stats.fisher_exact([[k1, n1 - k1], [k2, n2 - k2]]).pvalue)
    return {"name": f"momentum-crash frequency, rebound minus other sessions (crash = rotation return < -{k:g} trailing sd)",
            "estimate": d, "ci_low": lo, "ci_high": hi, "p_value": p, "n": n1 + n2,
            "n_rebound": n1, "n_other": n2, "crashes_rebound": k1, "crashes_other": k2,
            "crash_dates": [str(x.date()) for x in f[ok].index[crash]]}


def _published_as_of(si: pd.DataFrame, sessions: pd.DatetimeIndex, symbols) -> pd.DataFrame:
    """Short interest / float of the latest report published on or before each session
    (sessions x symbols, NaN before the first report)."""
    out = pd.DataFrame(np.nan, index=sessions, columns=list(symbols))
    if si.empty:
        return out
    si = si.assign(publish_date=pd.to_datetime(si["publish_date"]), settlement_date=pd.to_datetime(si["settlement_date"]))
    si = si.sort_values(["symbol", "publish_date", "settlement_date"], kind="stable")
    for sym, g in si.groupby("symbol", sort=False):
        if sym not in out.columns:
            continue
        pos = np.searchsorted(g["publish_date"].to_numpy(), sessions.to_numpy(), side="right") - 1
        frac = (g["shares_short"].to_numpy(float) / g["float_shares"].to_numpy(float))
        out[sym] = np.where(pos >= 0, frac[np.maximum(pos, 0)], np.nan)
    return out


def squeeze_followthrough(close: pd.DataFrame, index_close: pd.Series, short_interest: pd.DataFrame,
                          skip: pd.DataFrame | None = None, threshold: float = 0.10, k: float = 3.0) -> dict:
    """H5's mechanism: the mean next-session market-adjusted log return after the first
    session of a detected upside jump in a heavily shorted stock (see the module docstring).
    `short_interest` has the lake's columns (settlement_date, publish_date, symbol,
    shares_short, float_shares); the report used for session t is the latest published by
    t-1."""
    lc = np.log(close.to_numpy(float))
    li = np.log(index_close.reindex(close.index).to_numpy(float))
    ar = np.vstack([np.full((1, lc.shape[1]), np.nan), np.diff(lc, axis=0) - np.diff(li)[:, None]])
    ar = pd.DataFrame(ar, index=close.index, columns=close.columns)
    scale = ar.rolling(SCALE_WINDOW, min_periods=SCALE_MIN).std().shift(1)
    si_prev = _published_as_of(short_interest, close.index, close.columns).shift(1)
    # shorts still in: the latest report near the stock's highest so far (after a squeeze,
    # covering leaves short interest well below its peak)
    si_peak = si_prev.cummax()
    sk = pd.DataFrame(False, index=close.index, columns=close.columns) if skip is None else \
        skip.reindex_like(close).fillna(False).astype(bool)
    jump = (ar > k * scale).to_numpy()
    # the first session of a run: the session before rose by less than CALM_SD sds (so a
    # squeeze whose first session fell short of k sd is dropped, not counted from its second)
    calm_before = np.vstack([np.zeros((1, jump.shape[1]), bool), (ar <= CALM_SD * scale).to_numpy()[:-1]])
    first = jump & calm_before
    heavy = ((si_prev >= threshold) & (si_prev >= PEAK_SHARE * si_peak)).to_numpy()
    nxt = np.vstack([ar.to_numpy()[1:], np.full((1, ar.shape[1]), np.nan)])
    clean = ~sk.to_numpy() & ~np.vstack([sk.to_numpy()[1:], np.ones((1, sk.shape[1]), bool)])
    sel = first & heavy & clean & np.isfinite(nxt)
    rows, cols = np.nonzero(sel)
    y = nxt[rows, cols]
    out = {"name": f"next-session market-adjusted return after an upside jump (> {k:g} sd) with short interest >= {threshold:g} of float",
           "n": len(y), "events": [[str(close.columns[c]), str(close.index[r].date())] for r, c in zip(rows, cols)]}
    if len(y) < 2:
        raise NotEvaluable(f"only {len(y)} upside jumps in heavily shorted stocks (need 2)")
    m, se = float(y.mean()), float(y.std(ddof=1) / np.sqrt(len(y)))
    q = stats.t.ppf(0.975, len(y) - 1)
    tstat = m / se if se > 0 else np.nan
    p = float(2 * stats.t.sf(abs(tstat), len(y) - 1)) if np.isfinite(tstat) else float("nan")
    return {**out, "estimate": m, "ci_low": m - q * se, "ci_high": m + q * se, "stat": float(tstat), "p_value": p}


def event_skip(events: pd.DataFrame, sessions: pd.Index, symbols) -> pd.DataFrame:
    """sessions x symbols, True on each stock's earnings reaction session and on the two
    sessions from a disclosure's reaction session (a short seller's report moves the stock
    for two sessions), so the detectors do not mistake them for the mechanism."""
    out = pd.DataFrame(False, index=sessions, columns=list(symbols))
    for kind, length in (("earnings", 1), ("disclosure", 2)):
        ev = events[events["kind"] == kind]
        pos = pd.Index(sessions).get_indexer(pd.to_datetime(ev["reaction_session"]))
        for p, s in zip(pos, ev["symbol"]):
            if p >= 0 and s in out.columns:
                out.iloc[p: p + length, out.columns.get_loc(s)] = True
    return out
