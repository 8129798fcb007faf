"""Numba kernels behind the cross-sectional factors: window-local rolling moments, trailing
percentile ranks, quantile groups and batched comomentum.

Why kernels: the numpy forms materialize [rows, cols, window] strided reductions and
[rows, window] boolean matrices; a compiled loop reads each input once per window with no
temporaries. Every window is still summed on its own, in a fixed order (oldest row first), so
a value depends only on its own window's inputs: bit for bit the same whether the panel is a
month chunk or ten years. Loops run in parallel over independent rows or columns only, never
splitting a sum, so thread count never changes a number.

Row sums across names use `pairwise_sum`, a copy of numpy's own summation order for a
contiguous row (`np.sum(a, axis=1)`), so the fused per-row kernels return the numbers the
numpy expressions they replace returned, bit for bit (tested against numpy). Float errors
follow numpy (`error_model="numpy"`: 0/0 is NaN, not an exception).

Kernels are compiled once and cached on disk (`cache=True`), like pipelines/nb.py.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, parallel=True, error_model="numpy")
def rolling_std_cols(x, window, scale):
    """Sample std (ddof=1) of the trailing `window` rows per column of a C-contiguous 2-D
    float array; NaN for the first window-1 rows or when a window holds a NaN.

    Sums run oldest row first, the same order numpy's reduction of a [rows, cols, window]
    strided view uses for multi-column panels, so values equal the numpy form bit for bit.
    The loop over columns inside a window is vectorized (independent sums), the outer loop
    over rows is parallel. Each std is multiplied by `scale` (1.0: none; sqrt(252):
    annualized), the same single rounding as multiplying the std array afterwards."""
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
            out[t, j] = math.sqrt(var) * scale  # x * 1.0 == x exactly
    return out


@nb.njit(cache=True, parallel=True, error_model="numpy")
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


@nb.njit(cache=True, parallel=True, error_model="numpy")
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
        # Selection instead of a sort: the k-th smallest / largest value is the threshold;
        # names strictly beyond it are in, and of the names equal to it a stable ascending
        # sort would put the lowest columns among the losers and the highest among the winners.
        part = np.partition(vals[:c], np.array([k - 1, c - k]))
        lo_thr = part[k - 1]
        hi_thr = part[c - k]
        n_lo = 0
        n_hi = 0
        for i in range(c):
            if vals[i] < lo_thr:
                n_lo += 1
            if vals[i] > hi_thr:
                n_hi += 1
        for i in range(c):  # ties at the loser threshold: lowest columns first
            if vals[i] < lo_thr:
                losers[t, cols[i]] = True
            elif vals[i] == lo_thr and n_lo < k:
                losers[t, cols[i]] = True
                n_lo += 1
        for i in range(c - 1, -1, -1):  # ties at the winner threshold: highest columns first
            if vals[i] > hi_thr:
                winners[t, cols[i]] = True
            elif vals[i] == hi_thr and n_hi < k:
                winners[t, cols[i]] = True
                n_hi += 1
    return winners, losers


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _residual_pair_corr(wk5, wi, t, group_cols, week, weeks):
    """Mean pairwise correlation of market-residual weekly log returns over the `weeks`
    non-overlapping weeks ending at row t, among `group_cols`; names with a gap are dropped.
    `wk5[c, s]` / `wi[s]` are the names' / the index's log returns over the `week` rows
    ending at s (names x rows, so one name's weeks are close together in memory)."""
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
            v = wk5[c, first + w * week]
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


@nb.njit(cache=True, parallel=True, error_model="numpy")
def comomentum_rows(wk5, wi, winners, losers, rows, week, weeks):
    """(winners, losers) comomentum for each row index in `rows` (each >= week * weeks);
    `wk5` is [names, rows]. Rows are independent and run in parallel."""
    r = rows.shape[0]
    cw = np.full(r, np.nan)
    cl = np.full(r, np.nan)
    for i in nb.prange(r):
        t = rows[i]
        cw[i] = _residual_pair_corr(wk5, wi, t, np.flatnonzero(winners[t]), week, weeks)
        cl[i] = _residual_pair_corr(wk5, wi, t, np.flatnonzero(losers[t]), week, weeks)
    return cw, cl


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _pairwise_leaf(a, lo, n):
    """numpy's pairwise sum of a[lo:lo+n] for n <= 128 (no further halving)."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@nb.njit(cache=True, nogil=True, error_model="numpy")
def pairwise_sum(a, lo, n):
    """Sum of a[lo:lo+n] in numpy's pairwise order (numpy/_core/src/umath/loops_utils.h:
    plain loop under 8 values, 8 interleaved accumulators up to 128, halves at a multiple of
    8 beyond). numpy recurses; this walks the same tree with an explicit stack (cached numba
    functions must not recurse). Float addition is commutative, so only the tree matters."""
    if n <= 128:
        return _pairwise_leaf(a, lo, n)
    st_lo = np.empty(128, np.int64)
    st_n = np.empty(128, np.int64)
    st_join = np.zeros(128, np.bool_)
    vals = np.empty(128)
    top = 0
    nv = 0
    st_lo[0] = lo
    st_n[0] = n
    st_join[0] = False
    top = 1
    while top > 0:
        top -= 1
        l, k, join = st_lo[top], st_n[top], st_join[top]
        if join:  # both halves done: combine them
            nv -= 1
            vals[nv - 1] = vals[nv - 1] + vals[nv]
        elif k <= 128:
            vals[nv] = _pairwise_leaf(a, l, k)
            nv += 1
        else:
            k2 = k // 2
            k2 -= k2 % 8
            st_lo[top], st_n[top], st_join[top] = l, k, True
            st_lo[top + 1], st_n[top + 1], st_join[top + 1] = l + k2, k - k2, False
            st_lo[top + 2], st_n[top + 2], st_join[top + 2] = l, k2, False
            top += 3
    return vals[0]


@nb.njit(cache=True, nogil=True, error_model="numpy")
def row_sum(a):
    return 0.0 + pairwise_sum(a, 0, a.shape[0])


@nb.njit(cache=True, parallel=True, error_model="numpy")
def dispersion_rows(vol, ivol, mask, cap, with_corr):
    """Per row of a [dates, names] realized-vol panel: (equal-weighted ratio, cap-weighted
    ratio, realized correlation) exactly as dispersion.dispersion_ratio (without and with
    `cap`) and dispersion.implied_correlation (cap weights when any member with a vol has one,
    else equal weights over members) compute them, in one pass without [dates, names]
    temporaries. `with_corr` False leaves the correlation NaN."""
    n, m = vol.shape
    ratio = np.full(n, np.nan)
    ratio_cw = np.full(n, np.nan)
    corr = np.full(n, np.nan)
    for t in nb.prange(n):
        a = np.zeros(m)  # summands, rebuilt for each sum
        w = np.zeros(m)
        # equal weights
        cnt = 0
        for j in range(m):
            v = vol[t, j]
            if mask[t, j] and math.isfinite(v):
                a[j] = v
                cnt += 1
        if cnt > 0:
            ratio[t] = row_sum(a) / cnt / ivol[t]
        # cap weights (NaN / non-positive weight drops a member)
        cnt_w = 0
        has_cap = False
        for j in range(m):
            v = vol[t, j]
            c = cap[t, j]
            if mask[t, j] and math.isfinite(v) and math.isfinite(c):
                has_cap = True
                if c > 0:
                    w[j] = c
                    a[j] = c * v
                    cnt_w += 1
                    continue
            w[j] = 0.0
            a[j] = 0.0
        if cnt_w > 0:
            ratio_cw[t] = row_sum(a) / row_sum(w) / ivol[t]
        if not with_corr:
            continue
        # CBOE formula: cap weights if any member with a vol has one, else equal weights
        cnt_c = 0
        for j in range(m):
            v = vol[t, j]
            wj = 0.0
            if mask[t, j] and math.isfinite(v):
                wj = cap[t, j] if has_cap else 1.0
            if not (math.isfinite(wj) and wj > 0):
                wj = 0.0
            else:
                cnt_c += 1
            w[j] = wj
        tot = row_sum(w)
        for j in range(m):
            if w[j] > 0:
                a[j] = (w[j] / tot) * vol[t, j]
            else:
                a[j] = 0.0
        lin = row_sum(a)
        for j in range(m):
            a[j] = a[j] * a[j]
        diag = row_sum(a)
        cross = lin * lin - diag
        if cnt_c >= 2 and cross > 0:
            iv = ivol[t]
            corr[t] = (iv * iv - diag) / cross
    return ratio, ratio_cw, corr


@nb.njit(cache=True, parallel=True, error_model="numpy")
def wml_rows(ret, winners, losers):
    """Equal-weighted winners-minus-losers return on row t with groups from row t-1, exactly
    as momentum.wml_returns' numpy form (NaN on row 0 and when a side has no return)."""
    n, m = ret.shape
    out = np.full(n, np.nan)
    for t in nb.prange(1, n):
        aw = np.zeros(m)
        al = np.zeros(m)
        nw = 0
        nl = 0
        for j in range(m):
            r = ret[t, j]
            if math.isfinite(r):
                if winners[t - 1, j]:
                    aw[j] = r
                    nw += 1
                if losers[t - 1, j]:
                    al[j] = r
                    nl += 1
        if nw > 0 and nl > 0:
            out[t] = row_sum(aw) / nw - row_sum(al) / nl
    return out
