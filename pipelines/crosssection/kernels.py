"""Numba kernels behind the cross-sectional factors: window-local rolling moments, trailing
percentile ranks, quantile groups and batched comomentum.

Why kernels: the numpy forms materialize [rows, cols, window] strided reductions and
[rows, window] boolean matrices; a compiled loop reads each input once per window with no
temporaries. Every window is still summed on its own, in a fixed order (oldest row first), so
a value depends only on its own window's inputs: bit for bit the same whether the panel is a
month chunk or ten years. Loops run in parallel over independent rows or columns only, never
splitting a sum, so thread count never changes a number.

Kernels are compiled once and cached on disk (`cache=True`), like pipelines/nb.py.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, parallel=True)
def rolling_std_cols(x, window):
    """Sample std (ddof=1) of the trailing `window` rows per column of a C-contiguous 2-D
    float array; NaN for the first window-1 rows or when a window holds a NaN.

    Sums run oldest row first, the same order numpy's reduction of a [rows, cols, window]
    strided view uses for multi-column panels, so values equal the numpy form bit for bit.
    The loop over columns inside a window is vectorized (independent sums), the outer loop
    over rows is parallel."""
    n, m = x.shape
    out = np.full((n, m), np.nan)
    if n < window:
        return out
    inv_w = window  # kept as in the numpy form: s1 * s1 / window, then / (window - 1)
    for t in nb.prange(window - 1, n):
        lo = t - window + 1
        s1 = x[lo].copy()
        s2 = s1 * s1
        for k in range(lo + 1, t + 1):
            row = x[k]
            for j in range(m):
                v = row[j]
                s1[j] += v
                s2[j] += v * v
        for j in range(m):
            var = (s2[j] - s1[j] * s1[j] / inv_w) / (window - 1)
            if var < 0.0:  # NaN stays NaN (no full window)
                var = 0.0
            out[t, j] = math.sqrt(var)
    return out


@nb.njit(cache=True, parallel=True)
def trailing_percentile_cols(x, window, min_obs):
    """Per column of a 2-D array: the share of finite values among the trailing `window`
    rows (today included) that are <= today's value; NaN when today's value is NaN or fewer
    than `min_obs` finite values are in the window. Counts are integers, so the result equals
    the numpy form exactly."""
    n, m = x.shape
    out = np.full((n, m), np.nan)
    for j in nb.prange(m):
        for t in range(n):
            v = x[t, j]
            if not math.isfinite(v):
                continue
            cnt = 0
            le = 0
            for k in range(max(0, t - window + 1), t + 1):
                u = x[k, j]
                if math.isfinite(u):
                    cnt += 1
                    if u <= v:
                        le += 1
            if cnt >= min_obs:
                out[t, j] = le / cnt
    return out


@nb.njit(cache=True, parallel=True)
def quantile_groups_rows(signal, eligible, decile_min_names):
    """(winners, losers) boolean [rows, names]: per row the top and bottom decile (terciles
    with fewer than `decile_min_names` eligible finite values) of `signal`; ties broken by
    column order (stable sort), exactly as numpy's stable argsort ranking."""
    n, m = signal.shape
    winners = np.zeros((n, m), np.bool_)
    losers = np.zeros((n, m), np.bool_)
    for t in nb.prange(n):
        cols = np.empty(m, np.int64)
        vals = np.empty(m)
        c = 0
        for j in range(m):
            v = signal[t, j]
            if eligible[t, j] and math.isfinite(v):
                cols[c] = j
                vals[c] = v
                c += 1
        q = 10 if c >= decile_min_names else 3
        k = c // q
        if k == 0:
            continue
        order = np.argsort(vals[:c], kind="mergesort")  # stable: equal values keep column order
        for i in range(k):
            losers[t, cols[order[i]]] = True
            winners[t, cols[order[c - 1 - i]]] = True
    return winners, losers


@nb.njit(cache=True, nogil=True)
def _residual_pair_corr(wk5, wi, t, group_cols, week, weeks):
    """Mean pairwise correlation of market-residual weekly log returns over the `weeks`
    non-overlapping weeks ending at row t, among `group_cols`; names with a gap are dropped.
    `wk5[s, c]` / `wi[s]` are the names' / the index's log returns over the `week` rows
    ending at s."""
    first = t - week * weeks + week  # row ending the first week
    mk = np.empty(weeks)
    for w in range(weeks):
        s = first + w * week
        mk[w] = wi[s]
        if not math.isfinite(mk[w]):
            return np.nan
    mm = 0.0
    for w in range(weeks):
        mm += mk[w]
    mm /= weeks
    m = mk - mm
    mdot = 0.0
    for w in range(weeks):
        mdot += m[w] * m[w]
    tot = np.zeros(weeks)
    zz = 0.0
    k = 0
    xc = np.empty(weeks)
    for c in group_cols:
        ok = True
        mean = 0.0
        for w in range(weeks):
            v = wk5[first + w * week, c]
            if not math.isfinite(v):
                ok = False
                break
            xc[w] = v
            mean += v
        if not ok:
            continue
        mean /= weeks
        b = 0.0
        for w in range(weeks):
            xc[w] -= mean
            b += m[w] * xc[w]
        beta = b / mdot
        ss = 0.0
        for w in range(weeks):
            xc[w] -= m[w] * beta
            ss += xc[w] * xc[w]
        sd = math.sqrt(ss)
        if sd == 0.0:
            return np.nan
        for w in range(weeks):
            z = xc[w] / sd
            tot[w] += z
            zz += z * z
        k += 1
    if k < 2:
        return np.nan
    pair = 0.0
    for w in range(weeks):
        pair += tot[w] * tot[w]
    return (pair - zz) / (k * (k - 1))


@nb.njit(cache=True, parallel=True)
def comomentum_rows(wk5, wi, winners, losers, rows, week, weeks):
    """(winners, losers) comomentum for each row index in `rows` (each >= week * weeks);
    rows are independent and run in parallel."""
    r = rows.shape[0]
    cw = np.full(r, np.nan)
    cl = np.full(r, np.nan)
    for i in nb.prange(r):
        t = rows[i]
        cw[i] = _residual_pair_corr(wk5, wi, t, np.flatnonzero(winners[t]), week, weeks)
        cl[i] = _residual_pair_corr(wk5, wi, t, np.flatnonzero(losers[t]), week, weeks)
    return cw, cl
