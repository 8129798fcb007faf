"""Numba kernels for dealer positioning: one pass per contiguous (underlying, trade date)
group computing every positioning output (the `otm` IV rule, greeks, sums, buckets, walls and
the re-priced GEX profile's zero crossing nearest spot).

numba ships with vectorbt (a project dependency). Kernels are compiled once and cached on
disk, and release the GIL (`nogil`), so callers run blocks of groups on Python threads
(`gex.run_blocks`). Every sum runs in row order within its group, so results are identical
bit for bit from run to run; groups are independent, so however the groups are split between
threads no number changes.

Units follow pipelines/gex.py: GEX in dollars per 1% move, VEX in dollars per vol point,
CEX in dollars of delta per calendar day.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
INV_SQRT2 = 1.0 / math.sqrt(2.0)

# columns of the per-group output matrix of `positioning_groups`
OUT_FIELDS = ("net_gex_per_1pct", "net_vex_per_volpt", "net_cex_per_day", "gex_0dte", "gex_le7d", "gex_gt7d",
              "volume_0dte", "volume_total", "contracts_used", "call_wall", "put_wall", "zero_gamma",
              "zero_gamma_roots_found")
N_OUT = len(OUT_FIELDS)

# how `positioning_groups` gets each row's IV
IV_GIVEN = 0  # the `iv` column as it is (already cleaned, or the `vendor` source)
IV_OTM = 1  # the `otm` rule of `pipelines.ivsource`, applied per group from the vendor IVs


@nb.njit(cache=True, nogil=True)
def _ncdf(x):
    return 0.5 * math.erfc(-x * INV_SQRT2)


# ---------------------------------------------------------------------------------------
# Walls: GEX summed per strike in an open-addressing table reused from group to group.

@nb.njit(cache=True, nogil=True)
def _table_size(n):
    """Power of two >= 2n (load factor <= 1/2 keeps probe chains short)."""
    size = 16
    while size < 2 * n:
        size *= 2
    return size


@nb.njit(cache=True, nogil=True)
def _strike_slot(keys, mask, strike, touched, n_touched):
    """(slot of `strike`, number of touched slots) in an open-addressing table of strikes
    (NaN = empty slot) using slots 0..mask, inserting the strike if absent and recording its
    slot in `touched` (so that only used slots are reset after the group). Fibonacci hashing
    of the float's bits; linear probing."""
    bits = np.float64(strike).view(np.uint64)
    h = ((bits * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & np.uint64(mask)
    j = np.int64(h)
    while True:
        k = keys[j]
        if k != k:  # empty
            keys[j] = strike
            touched[n_touched] = j
            return j, n_touched + 1
        if k == strike:
            return j, n_touched
        j = (j + 1) & mask


@nb.njit(cache=True, nogil=True)
def _walls(keys, call_sum, put_sum, has_call, has_put, touched, n_touched, out):
    """call_wall / put_wall (out[9], out[10]): the strike with the largest |summed GEX| among
    strikes with a usable call / put; on a tie the lowest such strike (the answer does not
    depend on the order slots are visited in). Empties the touched slots for the next group."""
    out[9] = np.nan
    out[10] = np.nan
    best_c = -1.0
    best_p = -1.0
    for t in range(n_touched):
        j = touched[t]
        k = keys[j]
        if has_call[j]:
            v = abs(call_sum[j])
            if v > best_c or (v == best_c and k < out[9]):
                best_c = v
                out[9] = k
        if has_put[j]:
            v = abs(put_sum[j])
            if v > best_p or (v == best_p and k < out[10]):
                best_p = v
                out[10] = k
        keys[j] = np.nan
        call_sum[j] = 0.0
        put_sum[j] = 0.0
        has_call[j] = False
        has_put[j] = False


# ---------------------------------------------------------------------------------------
# The `otm` IV rule per group (pipelines.ivsource: pair_partner + otm_choice, same result).

@nb.njit(cache=True, nogil=True)
def _pair_key_less(root_i, exp_i, strike_i, root_j, exp_j, strike_j):
    """-1 / 0 / 1 comparing (root, expiration, strike) of two rows (NaN strikes compare as
    unequal and not smaller, as the sortedness check always did)."""
    if root_j != root_i:
        return -1 if root_j < root_i else 1
    if exp_j != exp_i:
        return -1 if exp_j < exp_i else 1
    if strike_j != strike_i:
        return -1 if strike_j < strike_i else 1
    return 0


@nb.njit(cache=True, nogil=True)
def _sorted_runs(lo, hi, root, root_rank, expiry, strike, is_call_row, same):
    """True when the group's rows are sorted by (root, expiration, strike) with the call first
    (the lake's order); then same[i] says whether row i + 1 (offsets from lo) has row i's key.
    One comparison per adjacent pair."""
    for i in range(lo, hi - 1):
        c = _pair_key_less(root_rank[root[i]], expiry[i], strike[i], root_rank[root[i + 1]], expiry[i + 1],
                           strike[i + 1])
        if c < 0 or (c == 0 and is_call_row[i + 1 - lo] and not is_call_row[i - lo]):
            return False
        same[i - lo] = c == 0
    return True


@nb.njit(cache=True, nogil=True)
def _lexsorted(lo, hi, root, root_rank, expiry, strike, is_call_row):
    """The group's rows (offsets from lo) in (root, expiration, strike, call first) order: a
    stable lexsort, least significant key first (for rows not in the lake's order)."""
    n = hi - lo
    key = np.empty(n)
    for i in range(n):
        key[i] = 0.0 if is_call_row[i] else 1.0
    o = np.argsort(key, kind="mergesort")
    for i in range(n):
        key[i] = strike[lo + o[i]]
    o = o[np.argsort(key, kind="mergesort")]
    for i in range(n):
        key[i] = expiry[lo + o[i]]
    o = o[np.argsort(key, kind="mergesort")]
    for i in range(n):
        key[i] = root_rank[root[lo + o[i]]]
    return o[np.argsort(key, kind="mergesort")]


@nb.njit(cache=True, nogil=True)
def _otm_iv(lo, hi, iv, floor_code, floor_lut, root, root_rank, expiry, strike, spot, is_call_row, same,
            partner, own, out):
    """out[:n]: the `otm` IV of each row of the group (offsets from lo): at each (root,
    expiration, strike) holding exactly one call and one put, the out-of-the-money side's usable
    vendor IV (finite, > 0, above the vendor's floor) for both, else the other side's; a row
    without such a pair keeps its own usable IV (`ivsource.pair_partner` + `otm_choice`)."""
    n = hi - lo
    for i in range(n):
        v = iv[lo + i]
        own[i] = v if (math.isfinite(v) and v > 0.0 and v > floor_lut[floor_code[lo + i]]) else np.nan
        partner[i] = -1
    if _sorted_runs(lo, hi, root, root_rank, expiry, strike, is_call_row, same):
        i = 0
        while i < n:  # runs of equal key: a pair is a run of two, the call first
            j = i + 1
            while j < n and same[j - 1]:
                j += 1
            if j - i == 2 and is_call_row[i] and not is_call_row[i + 1]:
                partner[i] = i + 1
                partner[i + 1] = i
            i = j
    else:
        order = _lexsorted(lo, hi, root, root_rank, expiry, strike, is_call_row)
        i = 0
        while i < n:
            a = order[i]
            j = i + 1
            while j < n and _pair_key_less(root_rank[root[lo + a]], expiry[lo + a], strike[lo + a],
                                           root_rank[root[lo + order[j]]], expiry[lo + order[j]],
                                           strike[lo + order[j]]) == 0:
                j += 1
            if j - i == 2 and is_call_row[a] and not is_call_row[order[i + 1]]:
                partner[a] = order[i + 1]
                partner[order[i + 1]] = a
            i = j
    for i in range(n):
        p = partner[i]
        other = own[p] if p >= 0 else np.nan
        own_is_otm = is_call_row[i] == (strike[lo + i] >= spot[lo + i])
        otm = own[i] if own_is_otm else other
        if otm == otm:
            out[i] = otm
        else:
            out[i] = other if own_is_otm else own[i]


# ---------------------------------------------------------------------------------------
# The re-priced profile and its zero crossings.

@nb.njit(cache=True, nogil=True)
def profile_coefficients(strike, t, iv, weight, r, q):
    """Per usable contract: (c, inv_sd, a) such that its GEX per 1% at spot x is
    0.01 * x * a * exp(-0.5 * ((ln x - c) * inv_sd)^2). Adjacent usable rows with the same
    strike, T, IV, r and q (a call and its put under the `otm` IV source) share one Gaussian:
    their a are added (half the terms for every later evaluation; the sum differs from two
    terms by rounding only). `positioning_groups` builds the same coefficients in its pass."""
    n = strike.shape[0]
    c = np.empty(n)
    inv_sd = np.empty(n)
    a = np.empty(n)
    m = 0
    pk = pt = ps = pr = pq = np.nan
    for i in range(n):
        ti = t[i]
        sig = iv[i]
        if not (ti > 0.0 and sig > 0.0 and weight[i] != 0.0 and math.isfinite(sig) and math.isfinite(weight[i])):
            continue
        sd = sig * math.sqrt(ti)
        ai = weight[i] * math.exp(-q[i] * ti) * INV_SQRT_2PI / sd
        if strike[i] == pk and ti == pt and sig == ps and r[i] == pr and q[i] == pq:
            a[m - 1] += ai
            continue
        c[m] = math.log(strike[i]) - (r[i] - q[i] + 0.5 * sig * sig) * ti
        inv_sd[m] = 1.0 / sd
        a[m] = ai
        pk, pt, ps, pr, pq = strike[i], ti, sig, r[i], q[i]
        m += 1
    return c[:m], inv_sd[:m], a[:m]


@nb.njit(cache=True, nogil=True)
def profile_at(x, c, inv_sd, a):
    """Net GEX per 1% (dollars) with every contract re-priced at spot x."""
    lx = math.log(x)
    acc = 0.0
    for i in range(c.shape[0]):
        z = (lx - c[i]) * inv_sd[i]
        if z * z < 1400.0:  # exp(-700) underflows to 0 anyway; skip the call
            acc += a[i] * math.exp(-0.5 * z * z)
    return 0.01 * x * acc


@nb.njit(cache=True, nogil=True)
def profile(spots, c, inv_sd, a):
    out = np.empty(spots.shape[0])
    for k in range(spots.shape[0]):
        out[k] = profile_at(spots[k], c, inv_sd, a)
    return out


@nb.njit(cache=True, nogil=True)
def _sum_and_slope(lx, c, inv_sd, a):
    """S(lx) = sum_i a_i exp(-0.5 z_i^2) (profile / (0.01 x), same sign) and dS/dlx: the
    exact evaluation every sign and root is decided on."""
    f = 0.0
    df = 0.0
    for i in range(c.shape[0]):
        z = (lx - c[i]) * inv_sd[i]
        if z * z < 1400.0:
            e = a[i] * math.exp(-0.5 * z * z)
            f += e
            df -= e * z * inv_sd[i]
    return f, df


@nb.njit(cache=True, nogil=True)
def _polish(la, lb, fa, fb, c, inv_sd, a):
    """Root in ln(spot) of S inside [la, lb] with fa * fb < 0: Newton steps (one pass over
    the contracts gives S and its slope), replaced by bisection whenever a step leaves the
    bracket. Stops once a Newton step is below 1e-11 in ln(spot) (taking that step leaves an
    error of order step^2 * S''/S', ~1e-20) or the bracket is narrower than 1e-14 relative.
    The convergence test comes before the bracket test: a last step of one ulp that lands on
    a bracket end is convergence, not a reason to bisect (which once cost ~20 extra passes
    over the contracts per root)."""
    x = la - fa * (lb - la) / (fb - fa)  # secant start: the bracket is already narrow
    if not (la < x < lb):
        x = 0.5 * (la + lb)
    for _ in range(100):
        f, df = _sum_and_slope(x, c, inv_sd, a)
        if f == 0.0:
            return x
        if (f < 0.0) == (fa < 0.0):
            la, fa = x, f
        else:
            lb, fb = x, f
        if df != 0.0:
            step = -f / df
            if abs(step) <= 1e-11:  # converged: take the step, kept inside the bracket
                return min(max(x + step, la), lb)
            nx = x + step
            if not (la < nx < lb):
                nx = 0.5 * (la + lb)
        else:
            nx = 0.5 * (la + lb)
        if lb - la <= 1e-14 * max(1.0, abs(x)):
            return nx
        x = nx
    return x


@nb.njit(cache=True, nogil=True)
def _fine_into(lx0, dlx, n_grid, c, inv_sd, a, acc):
    """acc[:n_grid] = `log_grid_sums` (every walk to underflow; the all-fine reference)."""
    for k in range(n_grid):
        acc[k] = 0.0
    for i in range(c.shape[0]):
        d = dlx * inv_sd[i]
        z0 = (lx0 - c[i]) * inv_sd[i]
        kp = int(round(-z0 / d))
        kp = min(max(kp, 0), n_grid - 1)
        zk = z0 + kp * d
        g = a[i] * math.exp(-0.5 * zk * zk)
        acc[kp] += g
        e2 = math.exp(-d * d)
        gk = g
        r = math.exp(-zk * d - 0.5 * d * d)
        for k in range(kp + 1, n_grid):
            gk *= r
            if gk == 0.0:
                break
            acc[k] += gk
            r *= e2
        gk = g
        r = math.exp(zk * d - 0.5 * d * d)
        for k in range(kp - 1, -1, -1):
            gk *= r
            if gk == 0.0:
                break
            acc[k] += gk
            r *= e2


@nb.njit(cache=True, nogil=True)
def log_grid_sums(lx0, dlx, n_grid, c, inv_sd, a):
    """sum_i a_i exp(-0.5 z_ik^2), z_ik = (lx0 + k dlx - c_i) inv_sd_i, for k < n_grid: the
    profile divided by 0.01 x on an evenly spaced grid in ln x.

    Along such a grid each contract's Gaussian obeys a two-multiply recurrence
    (g_{k+1} = g_k r_k, r_{k+1} = r_k e^{-d^2}, d = dlx inv_sd), so the grid costs no exp per
    point. It starts at the grid point nearest the contract's peak and walks outwards, where
    the terms only shrink, so an underflow to 0 ends the walk correctly. Relative error grows
    like k * 1e-16: good for bracketing; roots are polished with exact evaluations."""
    acc = np.empty(n_grid)
    _fine_into(lx0, dlx, n_grid, c, inv_sd, a, acc)
    return acc


# A walk of the multilevel grid stops at the first term below TRUNCATE |a_i| (~8 sd from the
# peak instead of ~38.6 sd, where exp underflows); the terms it drops are each below that, so
# every grid point is off by at most TRUNCATE sum |a_i| (LEBESGUE times that through the cubic
# interpolation, whose four weights sum in absolute value to at most 1.25, at t = 1/2), which
# the error bound B adds.
TRUNCATE = 1e-14
LEBESGUE = 1.25
# contracts at least this many fine steps wide (sigma sqrt(T) >= COARSE_MIN_WIDTH * step) go to a
# coarse level; a level's step is at most a quarter of its contracts' sigma sqrt(T)
COARSE_MIN_WIDTH = 8.0
MAX_LEVEL = 6  # coarse steps up to 64 fine steps
MAX_EXACT_POINTS = 48  # ambiguous grid points evaluated exactly before falling back to one fine grid


@nb.njit(cache=True, nogil=True)
def interp_weights():
    """W[j, s] = the four cubic Lagrange weights (nodes -1, 0, 1, 2) at t = s / 2^j: the
    interpolation of level j at fine offset s, tabulated once instead of per grid point."""
    w = np.zeros((MAX_LEVEL + 1, 2 ** MAX_LEVEL, 4))
    for j in range(1, MAX_LEVEL + 1):
        m = 2 ** j
        for s in range(m):
            t = s / m
            w[j, s, 0] = -t * (t - 1.0) * (t - 2.0) / 6.0
            w[j, s, 1] = (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0
            w[j, s, 2] = -(t + 1.0) * t * (t - 2.0) / 2.0
            w[j, s, 3] = (t + 1.0) * t * (t - 1.0) / 6.0
    return w


@nb.njit(cache=True, nogil=True)
def _walk_from(acc, k0, step, k_end, g, r, e2, thr):
    """Add the terms g r, g r (r e2), ... of a Gaussian's recurrence at k0 + step, k0 + 2 step,
    ... (stopping before k_end) to acc, until a term's magnitude is <= thr (the terms only
    shrink along the walk, so every term left out is <= thr). Four interleaved chains, each
    advancing four points per step (t_{i+4} = t_i Q_i, Q_{i+4} = Q_i e2^16 with
    Q_i = r_i^4 e2^10), so the multiplications of consecutive points do not wait on each other
    (one chain is bound by the multiply latency); the products differ from the one-chain
    recurrence by rounding only."""
    n = (k_end - k0) * step - 1  # points available in this direction
    t1 = g * r
    if n <= 0 or abs(t1) <= thr:
        return
    r2 = r * e2
    t2 = t1 * r2
    r3 = r2 * e2
    t3 = t2 * r3
    t4 = t3 * (r3 * e2)
    e_2 = e2 * e2
    e4 = e_2 * e_2  # e2^4
    q1 = r * r * r * r * (e4 * e4 * e_2)  # t_5 = t_1 r_2 r_3 r_4 r_5 with r_j = r e2^(j-1): r^4 e2^10
    q2 = q1 * e4
    q3 = q2 * e4
    q4 = q3 * e4
    e16 = e4 * e4 * e4 * e4  # e2^16
    k = k0
    done = 0
    while done + 4 <= n:
        if abs(t1) <= thr:  # t1 is the largest of the four: every later term is smaller
            return
        acc[k + step] += t1
        acc[k + 2 * step] += t2
        acc[k + 3 * step] += t3
        acc[k + 4 * step] += t4
        t1 *= q1
        t2 *= q2
        t3 *= q3
        t4 *= q4
        q1 *= e16
        q2 *= e16
        q3 *= e16
        q4 *= e16
        k += 4 * step
        done += 4
    # the last 1-3 points
    if done < n and abs(t1) > thr:
        acc[k + step] += t1
    if done + 1 < n and abs(t2) > thr:
        acc[k + 2 * step] += t2
    if done + 2 < n and abs(t3) > thr:
        acc[k + 3 * step] += t3


@nb.njit(cache=True, nogil=True)
def _walk(lx0, dlx, n_grid, ci, isd, ai, acc, thr):
    """Add one Gaussian a exp(-0.5 z_k^2), z_k = (lx0 + k dlx - c) inv_sd, to acc[k] for
    k < n_grid, by the recurrence of `log_grid_sums` from the point nearest its peak outwards
    (`_walk_from`), each direction stopping at its first term of magnitude <= thr. Where the
    walk goes both ways the backward ratio e^{-d^2} / r_forward costs a division instead of an
    exp (|z| <= d/2 there, so neither ratio under- or overflows)."""
    d = dlx * isd
    z0 = (lx0 - ci) * isd
    kp = int(round(-z0 / d))
    kp = min(max(kp, 0), n_grid - 1)
    zk = z0 + kp * d
    g = ai * math.exp(-0.5 * zk * zk)
    acc[kp] += g
    if abs(g) <= thr:
        return
    e2 = math.exp(-d * d)
    up = kp + 1 < n_grid
    rf = math.exp(-zk * d - 0.5 * d * d) if up else 0.0
    if up:
        _walk_from(acc, kp, 1, n_grid, g, rf, e2, thr)
    if kp > 0:
        _walk_from(acc, kp, -1, -1, g, e2 / rf if up else math.exp(zk * d - 0.5 * d * d), e2, thr)


@nb.njit(cache=True, nogil=True)
def _fine_walks(lx0, dlx, n_grid, c, inv_sd, a, f):
    """f[:n_grid] = the all-fine grid of `log_grid_sums`, every walk to underflow as there, by
    the interleaved walks of `_walk` (the same terms up to rounding, ~3x faster)."""
    for k in range(n_grid):
        f[k] = 0.0
    for i in range(c.shape[0]):
        _walk(lx0, dlx, n_grid, c[i], inv_sd[i], a[i], f, 0.0)


@nb.njit(cache=True, nogil=True)
def _top_level(n_grid):
    """The coarsest level a grid of n_grid points allows: at most MAX_LEVEL, and at least 4
    coarse steps in the grid."""
    j = 0
    while j < MAX_LEVEL and (n_grid - 1) // (2 ** (j + 1)) >= 4:
        j += 1
    return j


@nb.njit(cache=True, nogil=True, inline="always")
def _level(width, top):
    """The grid level of a contract `width` fine steps wide (sigma sqrt(T) / step): the
    largest j <= top with the width at least 4 * 2^j fine steps."""
    j = 0
    need = COARSE_MIN_WIDTH  # 4 * 2^(j+1): the width that level j + 1 needs
    while j < top and width >= need:
        j += 1
        need *= 2.0
    return j


@nb.njit(cache=True, nogil=True)
def _multilevel_into(lx0, dlx, n_grid, c, inv_sd, a, weights, f, coarse, level, exact):
    """f[:n_grid]: the `log_grid_sums` grid for a fraction of its cost; returns True when every
    sign in f is the exact profile's (then exact[k] says which f[k] are exact evaluations),
    False when f is the all-fine recurrence (`_fine_walks`: every contract on level 0, or too
    many ambiguous points), whose signs are the reference's.

    A contract whose sigma sqrt(T) spans at least 4m fine steps (m = 2, 4, ..., 64) is smooth
    at step m: its Gaussians are summed by truncated walks (`_walk`) on a grid m times coarser
    (long-dated contracts, most of a chain) and brought to the fine grid by cubic Lagrange
    interpolation; the narrow ones walk the fine grid. Error bound B: a Gaussian
    a exp(-z^2/2) in ln(spot) has |4th derivative| <= 3 a / sd^4, so the cubic on the middle
    interval errs by at most 3 a (m dlx / sd)^4 (9/16) / 24 per contract; plus the truncated
    terms (2 TRUNCATE sum |a|, LEBESGUE times that on coarse levels) and 1e-12 of sum |a| for
    the recurrences' rounding. Every grid value with |f| <= B, where the sign could differ
    from the exact profile's, is replaced by an exact evaluation (`_sum_and_slope`), so every
    sign the bracketing reads is the exact one (the fine-only recurrence reads the same signs:
    its own error is ~1e-14 of sum |a|). More than MAX_EXACT_POINTS such points (a profile
    near 0 over a wide span): the fine-only grid."""
    n = c.shape[0]
    counts = np.zeros(MAX_LEVEL + 1, np.int64)
    top = _top_level(n_grid)
    for i in range(n):
        j = _level(1.0 / (inv_sd[i] * dlx), top)
        level[i] = j
        counts[j] += 1
    for k in range(n_grid):
        exact[k] = False
    if counts[0] == n:
        _fine_walks(lx0, dlx, n_grid, c, inv_sd, a, f)
        return False
    for k in range(n_grid):
        f[k] = 0.0
    bound = 0.0
    total_abs = 0.0
    for i in range(n):
        total_abs += abs(a[i])
    for j in range(MAX_LEVEL + 1):
        if counts[j] == 0:
            continue
        level_abs = 0.0
        if j == 0:
            for i in range(n):
                if level[i] == 0:
                    _walk(lx0, dlx, n_grid, c[i], inv_sd[i], a[i], f, TRUNCATE * abs(a[i]))
                    level_abs += abs(a[i])
            bound += 2.0 * TRUNCATE * level_abs
            continue
        m = 2 ** j
        step = m * dlx
        nq = (n_grid - 1) // m + 1  # coarse points 0..nq-1 cover fine points 0..(nq-1) m
        # coarse points -1 .. nq + 1 (a stencil of four around every fine interval)
        for k in range(nq + 3):
            coarse[k] = 0.0
        for i in range(n):
            if level[i] == j:
                _walk(lx0 - step, step, nq + 3, c[i], inv_sd[i], a[i], coarse, TRUNCATE * abs(a[i]))
                h = step * inv_sd[i]
                bound += 3.0 * abs(a[i]) * h * h * h * h * (9.0 / 16.0) / 24.0
                level_abs += abs(a[i])
        bound += 2.0 * LEBESGUE * TRUNCATE * level_abs
        mask = m - 1
        for kk in range(n_grid):
            q = kk >> j  # nodes q-1, q, q+1, q+2 at coarse index q .. q + 3
            s = kk & mask
            f[kk] += (weights[j, s, 0] * coarse[q] + weights[j, s, 1] * coarse[q + 1]
                      + weights[j, s, 2] * coarse[q + 2] + weights[j, s, 3] * coarse[q + 3])
    bound += 1e-12 * total_abs
    n_exact = 0
    for kk in range(n_grid):
        if abs(f[kk]) <= bound:
            n_exact += 1
    if n_exact > MAX_EXACT_POINTS:
        _fine_walks(lx0, dlx, n_grid, c, inv_sd, a, f)
        return False
    if n_exact:
        for kk in range(n_grid):
            if abs(f[kk]) <= bound:
                f[kk], _ = _sum_and_slope(lx0 + kk * dlx, c, inv_sd, a)
                exact[kk] = True
    return True


@nb.njit(cache=True, nogil=True)
def multilevel_grid_sums(lx0, dlx, n_grid, c, inv_sd, a):
    """The `log_grid_sums` grid (same points, same signs) for a fraction of its cost
    (`_multilevel_into`)."""
    n = c.shape[0]
    f = np.empty(n_grid)
    _multilevel_into(lx0, dlx, n_grid, c, inv_sd, a, interp_weights(), f, np.empty(n_grid // 2 + 8),
                     np.empty(n, np.int64), np.empty(n_grid, np.bool_))
    return f


@nb.njit(cache=True, nogil=True)
def grid_points(inv_sd, n_grid, lo_frac, hi_frac):
    """Bracketing grid size: at least `n_grid`, and fine enough that a step in ln(spot) is at
    most half the narrowest contract's sigma sqrt(T) (the profile is a sum of Gaussians
    in ln(spot), so it cannot turn faster than its narrowest one), capped at 20,001."""
    width = math.log(hi_frac / lo_frac)
    n = n_grid
    if inv_sd.shape[0]:
        need = int(math.ceil(width * inv_sd.max() * 2.0)) + 1
        n = max(n, min(need, 20001))
    return n


@nb.njit(cache=True, nogil=True)
def _scan_brackets(f, n_grid, lx0, dlx, signs_exact, exact, c, inv_sd, a, out):
    """The zero crossings of grid values f as rows of `out` (la, lb, fa, fb, kind), ascending;
    returns how many. kind 0 = a sign change between neighbours with exact values fa, fb of
    opposite signs (polish it), 1 = an exact zero at la, 2 = at lb, 3 = the grid is exactly 0
    between la and lb (the root is their middle). A crossing is a change of sign between
    consecutive non-zero grid values; exact zeros are skipped (far from every strike all
    gammas underflow to 0, which is no crossing). With `signs_exact` (f from
    `_multilevel_into`) a neighbour change is kind 0 and its fa / fb are NaN unless f holds the
    exact value there (`exact`); they are evaluated when the bracket is polished
    (`_bracket_root`). Otherwise both ends are evaluated exactly to decide the kind."""
    m = 0
    prev = -1
    for k in range(n_grid):
        if f[k] == 0.0:
            continue
        if prev >= 0 and f[prev] * f[k] < 0.0:
            la = lx0 + prev * dlx
            lb = lx0 + k * dlx
            if k == prev + 1:
                if signs_exact:
                    fa = f[prev] if exact[prev] else np.nan
                    fb = f[k] if exact[k] else np.nan
                    kind = 0
                else:
                    fa, _ = _sum_and_slope(la, c, inv_sd, a)
                    fb, _ = _sum_and_slope(lb, c, inv_sd, a)
                    kind = -1
                    if fa * fb < 0.0:
                        kind = 0
                    elif fa == 0.0:
                        kind = 1
                    elif fb == 0.0:
                        kind = 2
                if kind >= 0:
                    out[m, 0], out[m, 1], out[m, 2], out[m, 3], out[m, 4] = la, lb, fa, fb, kind
                    m += 1
            else:
                out[m, 0], out[m, 1], out[m, 2], out[m, 3], out[m, 4] = la, lb, 0.0, 0.0, 3
                m += 1
        prev = k
    return m


@nb.njit(cache=True, nogil=True)
def _exact_ends(row, c, inv_sd, a):
    """Evaluate a kind-0 bracket's ends exactly where `_scan_brackets` left them NaN."""
    if row[4] == 0:
        if row[2] != row[2]:
            row[2], _ = _sum_and_slope(row[0], c, inv_sd, a)
        if row[3] != row[3]:
            row[3], _ = _sum_and_slope(row[1], c, inv_sd, a)


@nb.njit(cache=True, nogil=True)
def profile_brackets(spot, c, inv_sd, a, n_grid, lo_frac, hi_frac, fine_only=False):
    """The zero crossings of the re-priced profile in [lo_frac*spot, hi_frac*spot], ascending,
    as brackets in ln(spot): rows (la, lb, fa, fb, kind) (`_scan_brackets`, every fa, fb
    exact). Bracketed on a grid evenly spaced in ln(spot) (`grid_points`), its values from
    `_multilevel_into` (fine_only: every contract on the fine grid, the reference the
    multilevel grid is tested against)."""
    n_grid = grid_points(inv_sd, n_grid, lo_frac, hi_frac)
    lx0 = math.log(lo_frac * spot)
    dlx = (math.log(hi_frac * spot) - lx0) / (n_grid - 1)
    f = np.empty(n_grid)
    exact = np.zeros(n_grid, np.bool_)
    if fine_only:
        _fine_into(lx0, dlx, n_grid, c, inv_sd, a, f)
        signs_exact = False
    else:
        signs_exact = _multilevel_into(lx0, dlx, n_grid, c, inv_sd, a, interp_weights(), f,
                                       np.empty(n_grid // 2 + 8), np.empty(c.shape[0], np.int64), exact)
    out = np.empty((n_grid, 5))
    m = _scan_brackets(f, n_grid, lx0, dlx, signs_exact, exact, c, inv_sd, a, out)
    for j in range(m):
        _exact_ends(out[j], c, inv_sd, a)
    return out[:m]


@nb.njit(cache=True, nogil=True)
def _bracket_root(row, c, inv_sd, a):
    """The root ($) inside one `profile_brackets` row (its ends evaluated if still NaN)."""
    kind = row[4]
    if kind == 0:
        _exact_ends(row, c, inv_sd, a)
        return math.exp(_polish(row[0], row[1], row[2], row[3], c, inv_sd, a))
    if kind == 1:
        return math.exp(row[0])
    if kind == 2:
        return math.exp(row[1])
    return math.exp(0.5 * (row[0] + row[1]))


@nb.njit(cache=True, nogil=True)
def profile_roots(spot, c, inv_sd, a, n_grid, lo_frac, hi_frac):
    """Every zero crossing of the re-priced profile in [lo_frac*spot, hi_frac*spot], ascending,
    each bracket (`profile_brackets`) polished by safeguarded Newton on exact evaluations to
    ~1e-13 relative."""
    br = profile_brackets(spot, c, inv_sd, a, n_grid, lo_frac, hi_frac)
    roots = np.empty(br.shape[0])
    for j in range(br.shape[0]):
        roots[j] = _bracket_root(br[j], c, inv_sd, a)
    return roots


@nb.njit(cache=True, nogil=True)
def _nearest_of(spot, br, m, c, inv_sd, a, dist):
    """The root nearest spot among the m brackets of `br` (ties to the lower root), polishing
    only brackets that can hold a nearer root than the best found so far, nearest first: the
    nearest of all polished roots, bit for bit. `dist` is scratch (length >= m)."""
    for j in range(m):
        lo_x, hi_x = math.exp(br[j, 0]), math.exp(br[j, 1])
        # lower bound of |root - spot|: 0 if the bracket holds spot, else its nearer end
        dist[j] = 0.0 if lo_x <= spot <= hi_x else min(abs(lo_x - spot), abs(hi_x - spot))
    best_x = np.nan
    best_d = np.inf
    while True:
        j = -1
        for k in range(m):  # the unvisited bracket with the smallest bound (first on ties)
            if dist[k] >= 0.0 and (j < 0 or dist[k] < dist[j]):
                j = k
        if j < 0 or dist[j] > best_d:  # no other bracket can hold a nearer (or equally near) root
            break
        dist[j] = -1.0  # visited
        x = _bracket_root(br[j], c, inv_sd, a)
        d = abs(x - spot)
        if d < best_d or (d == best_d and x < best_x):
            best_d = d
            best_x = x
    return best_x


@nb.njit(cache=True, nogil=True)
def nearest_profile_root(spot, c, inv_sd, a, n_grid, lo_frac, hi_frac):
    """(root nearest spot or NaN, number of roots): the same numbers as `profile_roots`
    followed by a nearest-root search (ties to the lower root), but only brackets that can
    hold a nearer root than the best found so far are polished, nearest first."""
    n_grid = grid_points(inv_sd, n_grid, lo_frac, hi_frac)
    lx0 = math.log(lo_frac * spot)
    dlx = (math.log(hi_frac * spot) - lx0) / (n_grid - 1)
    f = np.empty(n_grid)
    exact = np.zeros(n_grid, np.bool_)
    signs_exact = _multilevel_into(lx0, dlx, n_grid, c, inv_sd, a, interp_weights(), f,
                                   np.empty(n_grid // 2 + 8), np.empty(c.shape[0], np.int64), exact)
    br = np.empty((n_grid, 5))
    m = _scan_brackets(f, n_grid, lx0, dlx, signs_exact, exact, c, inv_sd, a, br)
    if m == 0:
        return np.nan, 0
    return _nearest_of(spot, br, m, c, inv_sd, a, np.empty(m)), m


# ---------------------------------------------------------------------------------------
# One pass per group.

@nb.njit(cache=True, nogil=True, inline="always")
def _day_years(tday, eday, is_am, valuation, settle_am, day_lo, seconds_per_year):
    """T from day numbers: (settlement - valuation) / year from the per-day epoch tables
    (`years_from_day_tables`' arithmetic: the same bits)."""
    settle = settle_am[eday - day_lo] if is_am else valuation[eday - day_lo]
    return (settle - valuation[tday - day_lo]) / seconds_per_year


@nb.njit(cache=True, nogil=True, inline="always")
def _nan_to_num(x):
    """numpy.nan_to_num of one float: NaN -> 0, +-inf -> the largest finite float."""
    if x != x:
        return 0.0
    if x == np.inf:
        return 1.7976931348623157e308
    if x == -np.inf:
        return -1.7976931348623157e308
    return x


@nb.njit(cache=True, nogil=True)
def positioning_groups(starts, g_lo, g_hi, spot, strike, iv, oi, mult, volume, dates, tables, flags, iv_rule, rates,
                       signs, zero_gamma, grid, out):
    """out[g] = the N_OUT fields (`OUT_FIELDS`) of every group g in [g_lo, g_hi): rows
    starts[g]:starts[g+1], contiguous. Serial and GIL-free: callers split the groups into
    blocks and run them on threads.

    dates = (t, tday, eday, days): T per row from `t`, or (t empty) from day numbers and the
      `tables` (valuation, settle_am, day_lo, seconds_per_year); days to expiry from `days`,
      or (days empty) eday - tday;
    flags = (call_code, call_lut, am_code, am_lut): is_call = call_lut[call_code[i]], is_am
      alike (dictionary codes and a flag per dictionary value, or 0/1 codes);
    iv_rule = (mode, floor_code, floor_lut, root_code, root_rank): mode IV_GIVEN takes `iv`
      as it is, IV_OTM applies the `otm` rule per group (vendor floor floor_lut[floor_code[i]],
      pairs by (root_rank[root_code[i]], expiration, strike));
    rates = (r, q) per row, empty meaning 0; signs = (call_sign, put_sign);
    zero_gamma: also solve zero gamma (else NaN, 0 roots); grid = (n_grid, lo_frac, hi_frac).

    Per group: volume sums, then for usable rows (T > 0, IV finite > 0, OI > 0) gamma, vanna,
    charm, the expiry buckets and per-strike GEX for the walls, and for rows with T > 0, IV
    finite > 0 and a finite non-zero weight sign * OI * multiplier the profile's Gaussians
    (`profile_coefficients`' numbers, merged alike), whose zero crossing nearest the group's
    first spot is bracketed (`_multilevel_into`, `_scan_brackets`) and polished
    (`_nearest_of`). Scratch is allocated once per call and reused from group to group."""
    t, tday, eday, days = dates
    valuation, settle_am, day_lo, spy = tables
    call_code, call_lut, am_code, am_lut = flags
    iv_mode, floor_code, floor_lut, root_code, root_rank = iv_rule
    r, q = rates
    call_sign, put_sign = signs
    n_grid, lo_frac, hi_frac = grid
    has_t = t.shape[0] > 0
    has_r = r.shape[0] > 0
    has_q = q.shape[0] > 0
    otm = iv_mode == IV_OTM
    # scratch sized by the largest group
    big = 1
    for g in range(g_lo, g_hi):
        big = max(big, starts[g + 1] - starts[g])
    size = _table_size(big)
    keys = np.full(size, np.nan)
    call_sum = np.zeros(size)
    put_sum = np.zeros(size)
    has_call = np.zeros(size, np.bool_)
    has_put = np.zeros(size, np.bool_)
    touched = np.empty(big, np.int64)
    is_call_row = np.empty(big, np.bool_)
    ivs = np.empty(big)
    own = np.empty(big)
    same = np.empty(big, np.bool_)
    partner = np.empty(big, np.int64)
    cc = np.empty(big)
    ci = np.empty(big)
    ca = np.empty(big)
    level = np.empty(big, np.int64)
    weights = interp_weights()
    f = np.empty(max(n_grid, 1024))
    exact = np.empty(f.shape[0], np.bool_)
    coarse = np.empty(f.shape[0] // 2 + 8)
    br = np.empty((f.shape[0], 5))
    dist = np.empty(f.shape[0])
    for g in range(g_lo, g_hi):
        lo, hi = starts[g], starts[g + 1]
        o = out[g]
        if hi <= lo:
            o[:] = np.nan
            o[12] = 0.0
            continue
        n = hi - lo
        s = spot[lo]
        for k in range(N_OUT):
            o[k] = 0.0
        for i in range(n):
            is_call_row[i] = call_lut[call_code[lo + i]]
        if otm:
            _otm_iv(lo, hi, iv, floor_code, floor_lut, root_code, root_rank, eday, strike, spot, is_call_row, same,
                    partner, own, ivs)
        mask = _table_size(n) - 1
        n_touched = 0
        m = 0  # Gaussians of the profile
        pk = pt = ps = pr = pq = np.nan
        for i in range(lo, hi):
            dte = days[i] if days.shape[0] else eday[i] - tday[i]
            v = volume[i]
            if v == v:  # not NaN
                o[7] += v
                if dte == 0:
                    o[6] += v
            sig = ivs[i - lo] if otm else iv[i]
            ti = t[i] if has_t else _day_years(tday[i], eday[i], am_lut[am_code[i]], valuation, settle_am, day_lo, spy)
            if not (ti > 0.0 and sig > 0.0 and math.isfinite(sig)):
                continue
            is_call = is_call_row[i - lo]
            sign = call_sign if is_call else put_sign
            ri = r[i] if has_r else 0.0
            qi = q[i] if has_q else 0.0
            sq = math.sqrt(ti)
            sd = sig * sq
            dq = math.exp(-qi * ti) if qi != 0.0 else 1.0  # exp(-0) is 1.0 exactly: same bits
            o_i = oi[i]
            if zero_gamma:
                weight = sign * _nan_to_num(o_i) * mult[i]
                if weight != 0.0 and math.isfinite(weight):
                    ai = weight * dq * INV_SQRT_2PI / sd
                    if strike[i] == pk and ti == pt and sig == ps and ri == pr and qi == pq:
                        ca[m - 1] += ai
                    else:
                        cc[m] = math.log(strike[i]) - (ri - qi + 0.5 * sig * sig) * ti
                        ci[m] = 1.0 / sd
                        ca[m] = ai
                        pk, pt, ps, pr, pq = strike[i], ti, sig, ri, qi
                        m += 1
            if not o_i > 0.0:
                continue
            d1 = (math.log(s / strike[i]) + (ri - qi + 0.5 * sig * sig) * ti) / sd
            d2 = d1 - sd
            pdf = INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
            w = sign * o_i * mult[i]
            gamma = dq * pdf / (s * sd)
            gx = w * gamma * s * s * 0.01
            vanna = -dq * pdf * d2 / sig
            core = dq * pdf * (2.0 * (ri - qi) * ti - d2 * sd) / (2.0 * ti * sd)
            if qi == 0.0:  # the N(d1) term vanishes: skip the erfc
                charm = -core
            elif is_call:
                charm = qi * dq * _ncdf(d1) - core
            else:
                charm = -qi * dq * _ncdf(-d1) - core
            o[0] += gx
            o[1] += w * vanna * s * 0.01
            o[2] += w * charm / 365.0 * s
            if dte == 0:
                o[3] += gx
            elif dte <= 7:
                o[4] += gx
            else:
                o[5] += gx
            o[8] += 1.0
            # walls: GEX summed per strike over every expiry (and root), in row order (rows
            # arrive in strike order only within an expiry; a stable sort would give the
            # same bits)
            j, n_touched = _strike_slot(keys, mask, strike[i], touched, n_touched)
            if is_call:
                call_sum[j] += gx
                has_call[j] = True
            else:
                put_sum[j] += gx
                has_put[j] = True
        _walls(keys, call_sum, put_sum, has_call, has_put, touched, n_touched, o)
        o[11] = np.nan
        if not zero_gamma or m == 0:
            continue
        cm, im, am = cc[:m], ci[:m], ca[:m]
        ng = grid_points(im, n_grid, lo_frac, hi_frac)
        if ng > f.shape[0]:  # a rare narrow chain: grow the grid scratch
            f = np.empty(ng)
            exact = np.empty(ng, np.bool_)
            coarse = np.empty(ng // 2 + 8)
            br = np.empty((ng, 5))
            dist = np.empty(ng)
        lx0 = math.log(lo_frac * s)
        dlx = (math.log(hi_frac * s) - lx0) / (ng - 1)
        signs_exact = _multilevel_into(lx0, dlx, ng, cm, im, am, weights, f, coarse, level, exact)
        nbr = _scan_brackets(f, ng, lx0, dlx, signs_exact, exact, cm, im, am, br)
        o[12] = nbr
        if nbr:
            o[11] = _nearest_of(s, br, nbr, cm, im, am, dist)


@nb.njit(cache=True, parallel=True)
def years_from_day_tables(ti, ei, is_am, valuation, settle_am, settle_pm, seconds_per_year):
    """Per row: (settle[ei] - valuation[ti]) / seconds_per_year, settle the AM or PM table by
    `is_am`; ti/ei index the per-day tables. Same float operations as the row-wise formula."""
    n = ti.shape[0]
    out = np.empty(n)
    for i in nb.prange(n):
        settle = settle_am[ei[i]] if is_am[i] else settle_pm[ei[i]]
        out[i] = (settle - valuation[ti[i]]) / seconds_per_year
    return out


@nb.njit(cache=True, parallel=True)
def interp_rates(trade_day, days, curve_days, curve_starts, tenor, rate):
    """Per row: the curve of its trade day (rows curve_starts[k]:curve_starts[k+1] of tenor /
    rate, tenor ascending, for curve_days[k]) linearly interpolated at `days`, flat beyond the
    ends; 0.0 when the trade day has no curve."""
    n = trade_day.shape[0]
    out = np.zeros(n)
    for i in nb.prange(n):
        k = np.searchsorted(curve_days, trade_day[i])
        if k >= curve_days.shape[0] or curve_days[k] != trade_day[i]:
            continue
        lo, hi = curve_starts[k], curve_starts[k + 1]
        x = days[i]
        if x <= tenor[lo]:
            out[i] = rate[lo]
        elif x >= tenor[hi - 1]:
            out[i] = rate[hi - 1]
        else:
            j = lo + np.searchsorted(tenor[lo:hi], x, side="right") - 1
            x0, x1 = tenor[j], tenor[j + 1]
            out[i] = rate[j] + (rate[j + 1] - rate[j]) * (x - x0) / (x1 - x0)
    return out


# Serial twins of the parallel kernels (the same code compiled without the thread pool and
# without the GIL), for fewer rows and for callers already running on their own threads: one
# SPX chain is ~2 ms of work, and waking, synchronizing and joining the pool's threads on a
# loaded 2-core machine cost more than that (medians 5-20x the serial time were measured).
# Same operations in the same order: the same bits.
years_from_day_tables_serial = nb.njit(cache=True, nogil=True)(years_from_day_tables.py_func)
interp_rates_serial = nb.njit(cache=True, nogil=True)(interp_rates.py_func)
SERIAL_BELOW_ROWS = 200_000
