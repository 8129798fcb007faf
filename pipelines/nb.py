"""Numba kernels for dealer positioning: one pass over contiguous (underlying, trade date)
groups, and the re-priced GEX profile with its exact zero crossings.

numba ships with vectorbt (a project dependency). Kernels are compiled once and cached on
disk. Every sum runs in row order within its group, so results are identical bit for bit from
run to run; groups are independent, so the group loop runs in parallel without changing any
number.

Units follow pipelines/gex.py: GEX in dollars per 1% move, VEX in dollars per vol point,
CEX in dollars of delta per calendar day.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
INV_SQRT2 = 1.0 / math.sqrt(2.0)

# columns of the per-group output matrix of `group_positioning`
OUT_FIELDS = ("net_gex_per_1pct", "net_vex_per_volpt", "net_cex_per_day", "gex_0dte", "gex_le7d", "gex_gt7d",
              "volume_0dte", "volume_total", "contracts_used", "call_wall", "put_wall")


@nb.njit(cache=True, nogil=True)
def _ncdf(x):
    return 0.5 * math.erfc(-x * INV_SQRT2)


@nb.njit(cache=True, nogil=True)
def _table_size(n):
    """Power of two >= 2n (load factor <= 1/2 keeps probe chains short)."""
    size = 16
    while size < 2 * n:
        size *= 2
    return size


@nb.njit(cache=True, nogil=True)
def _strike_slot(keys, strike):
    """Slot of `strike` in an open-addressing table of strikes (NaN = empty slot), inserting
    it if absent. Fibonacci hashing of the float's bits; linear probing."""
    mask = keys.shape[0] - 1
    bits = np.float64(strike).view(np.uint64)
    h = ((bits * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & np.uint64(mask)
    j = np.int64(h)
    while True:
        k = keys[j]
        if k != k:  # empty
            keys[j] = strike
            return j
        if k == strike:
            return j
        j = (j + 1) & mask


@nb.njit(cache=True, nogil=True)
def _walls(keys, call_sum, put_sum, has_call, has_put, out):
    """call_wall / put_wall: the strike with the largest |summed GEX| among strikes with a
    usable call / put; on a tie the lowest such strike (as an ascending scan would pick)."""
    out[9] = np.nan
    out[10] = np.nan
    best_c = -1.0
    best_p = -1.0
    for j in range(keys.shape[0]):
        k = keys[j]
        if k != k:
            continue
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


@nb.njit(cache=True, nogil=True, inline="always")
def _row_years(i, t, tday, eday, is_am, valuation, settle_am, day_lo, seconds_per_year):
    """T of row i: t[i], or when `t` is empty (settlement - valuation) / year from the
    per-day epoch tables (`years_from_day_tables`' arithmetic: the same bits)."""
    if t.shape[0]:
        return t[i]
    settle = settle_am[eday[i] - day_lo] if is_am[i] else valuation[eday[i] - day_lo]
    return (settle - valuation[tday[i] - day_lo]) / seconds_per_year


@nb.njit(cache=True, nogil=True)
def _group(lo, hi, spot, strike, t, tday, eday, is_am, tables, iv, oi, mult, is_call, volume, days, r, q,
           call_sign, put_sign, out):
    """One group's OUT_FIELDS. T per row from `t`, or (t empty) from day numbers and the
    `tables` (valuation, settle_am, day_lo, seconds_per_year); days to expiry from `days`, or
    (days empty) eday - tday; r / q empty mean 0."""
    valuation, settle_am, day_lo, spy = tables
    s = spot[lo]
    for k in range(out.shape[0]):
        out[k] = 0.0
    # walls: GEX summed per strike over every expiry (and root), in a hash table filled in the
    # same pass (rows arrive in strike order only within an expiry, so no sort is needed and
    # each strike's sum accumulates in row order: the same bits as a stable sort would give)
    size = _table_size(hi - lo)
    keys = np.full(size, np.nan)
    call_sum = np.zeros(size)
    put_sum = np.zeros(size)
    has_call = np.zeros(size, np.bool_)
    has_put = np.zeros(size, np.bool_)
    has_r = r.shape[0] > 0
    has_q = q.shape[0] > 0
    for i in range(lo, hi):
        dte = days[i] if days.shape[0] else eday[i] - tday[i]
        v = volume[i]
        if v == v:  # not NaN
            out[7] += v
            if dte == 0:
                out[6] += v
        o = oi[i]
        sig = iv[i]
        ti = _row_years(i, t, tday, eday, is_am, valuation, settle_am, day_lo, spy)
        if not (ti > 0.0 and sig > 0.0 and o > 0.0 and math.isfinite(sig)):
            continue
        ri = r[i] if has_r else 0.0
        qi = q[i] if has_q else 0.0
        sq = math.sqrt(ti)
        sd = sig * sq
        d1 = (math.log(s / strike[i]) + (ri - qi + 0.5 * sig * sig) * ti) / sd
        d2 = d1 - sd
        dq = math.exp(-qi * ti) if qi != 0.0 else 1.0  # exp(-0) is 1.0 exactly: same bits
        pdf = INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
        sign = call_sign if is_call[i] else put_sign
        w = sign * o * mult[i]
        gamma = dq * pdf / (s * sd)
        g = w * gamma * s * s * 0.01
        vanna = -dq * pdf * d2 / sig
        core = dq * pdf * (2.0 * (ri - qi) * ti - d2 * sd) / (2.0 * ti * sd)
        if qi == 0.0:  # the N(d1) term vanishes: skip the erfc
            charm = -core
        elif is_call[i]:
            charm = qi * dq * _ncdf(d1) - core
        else:
            charm = -qi * dq * _ncdf(-d1) - core
        out[0] += g
        out[1] += w * vanna * s * 0.01
        out[2] += w * charm / 365.0 * s
        if dte == 0:
            out[3] += g
        elif dte <= 7:
            out[4] += g
        else:
            out[5] += g
        out[8] += 1.0
        j = _strike_slot(keys, strike[i])
        if is_call[i]:
            call_sum[j] += g
            has_call[j] = True
        else:
            put_sum[j] += g
            has_put[j] = True
    _walls(keys, call_sum, put_sum, has_call, has_put, out)


@nb.njit(cache=True, parallel=True)
def group_positioning(starts, spot, strike, t, tday, eday, is_am, tables, iv, oi, mult, is_call, volume, days,
                      r, q, call_sign, put_sign):
    """Matrix (n_groups, len(OUT_FIELDS)) for rows grouped contiguously; group g is rows
    starts[g]:starts[g+1]. Arguments as `_group`."""
    ng = starts.shape[0] - 1
    res = np.empty((ng, 11))
    for g in nb.prange(ng):
        if starts[g + 1] > starts[g]:
            _group(starts[g], starts[g + 1], spot, strike, t, tday, eday, is_am, tables, iv, oi, mult, is_call,
                   volume, days, r, q, call_sign, put_sign, res[g])
        else:
            res[g, :] = np.nan
    return res


@nb.njit(cache=True, nogil=True)
def profile_coefficients(strike, t, iv, weight, r, q):
    """Per usable contract: (c, inv_sd, a) such that its GEX per 1% at spot x is
    0.01 * x * a * exp(-0.5 * ((ln x - c) * inv_sd)^2). Adjacent usable rows with the same
    strike, T, IV, r and q (a call and its put under the `otm` IV source) share one Gaussian:
    their a are added (half the terms for every later evaluation; the sum differs from two
    terms by rounding only)."""
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
def _brent(xa, xb, fa, fb, c, inv_sd, a, xtol):
    """Brent's method (zeroin) on a bracket with fa * fb < 0."""
    xc, fc = xa, fa
    d = xb - xa
    e = d
    for _ in range(200):
        if fb * fc > 0.0:
            xc, fc = xa, fa
            d = xb - xa
            e = d
        if abs(fc) < abs(fb):
            xa, fa = xb, fb
            xb, fb = xc, fc
            xc, fc = xa, fa
        tol = 2.0 * 2.2e-16 * abs(xb) + 0.5 * xtol
        m = 0.5 * (xc - xb)
        if abs(m) <= tol or fb == 0.0:
            return xb
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if xa == xc:
                p = 2.0 * m * s
                qq = 1.0 - s
            else:
                qq = fa / fc
                rr = fb / fc
                p = s * (2.0 * m * qq * (qq - rr) - (xb - xa) * (rr - 1.0))
                qq = (qq - 1.0) * (rr - 1.0) * (s - 1.0)
            if p > 0.0:
                qq = -qq
            else:
                p = -p
            if 2.0 * p < min(3.0 * m * qq - abs(tol * qq), abs(e * qq)):
                e = d
                d = p / qq
            else:
                d = m
                e = d
        else:
            d = m
            e = d
        xa, fa = xb, fb
        if abs(d) > tol:
            xb += d
        else:
            xb += tol if m > 0 else -tol
        fb = profile_at(xb, c, inv_sd, a)
    return xb


@nb.njit(cache=True, nogil=True)
def _sum_and_slope(lx, c, inv_sd, a):
    """S(lx) = sum_i a_i exp(-0.5 z_i^2) (profile / (0.01 x), same sign) and dS/dlx."""
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
def log_grid_sums(lx0, dlx, n_grid, c, inv_sd, a):
    """sum_i a_i exp(-0.5 z_ik^2), z_ik = (lx0 + k dlx - c_i) inv_sd_i, for k < n_grid: the
    profile divided by 0.01 x on an evenly spaced grid in ln x.

    Along such a grid each contract's Gaussian obeys a two-multiply recurrence
    (g_{k+1} = g_k r_k, r_{k+1} = r_k e^{-d^2}, d = dlx inv_sd), so the grid costs no exp per
    point. It starts at the grid point nearest the contract's peak and walks outwards, where
    the terms only shrink, so an underflow to 0 ends the walk correctly. Relative error grows
    like k * 1e-16: good for bracketing; roots are polished with exact evaluations."""
    acc = np.zeros(n_grid)
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
    return acc



# contracts at least this many fine steps wide (sigma sqrt(T) >= COARSE_MIN_WIDTH * step) go to a
# coarse level; a level's step is at most a quarter of its contracts' sigma sqrt(T)
COARSE_MIN_WIDTH = 8.0
MAX_LEVEL = 6  # coarse steps up to 64 fine steps
MAX_EXACT_POINTS = 48  # ambiguous grid points evaluated exactly before falling back to one fine grid


@nb.njit(cache=True, nogil=True)
def multilevel_grid_sums(lx0, dlx, n_grid, c, inv_sd, a):
    """The `log_grid_sums` grid (same points, same signs) for a fraction of its cost.

    A contract whose sigma sqrt(T) spans at least 4m fine steps (m = 2, 4, ..., 64) is smooth
    at step m: its Gaussians are summed by the recurrence on a grid m times coarser (long-dated
    contracts, most of a chain) and brought to the fine grid by cubic Lagrange interpolation;
    the narrow ones run on the fine grid as before. Interpolation error: a Gaussian
    a exp(-z^2/2) in ln(spot) has |4th derivative| <= 3 a / sd^4, so the cubic on the middle
    interval errs by at most 3 a (m dlx / sd)^4 (9/16) / 24 per contract; the sum of these bounds
    (plus 1e-12 of sum |a| for the recurrences' rounding) is B. Every grid value with |f| <= B,
    where the sign could differ from the exact profile's, is replaced by an exact evaluation
    (`_sum_and_slope`), so every sign the bracketing reads is the exact one (the fine-only
    recurrence reads the same signs: its own error is ~1e-14 of sum |a|). More than
    MAX_EXACT_POINTS such points (a profile near 0 over a wide span): the fine-only grid."""
    n = c.shape[0]
    level = np.zeros(n, np.int64)
    counts = np.zeros(MAX_LEVEL + 1, np.int64)
    for i in range(n):
        w = 1.0 / (inv_sd[i] * dlx)  # width in fine steps
        j = 0
        while j < MAX_LEVEL and w >= COARSE_MIN_WIDTH * (2 ** (j + 1)) * 0.5 and (n_grid - 1) // (2 ** (j + 1)) >= 4:
            j += 1
        level[i] = j
        counts[j] += 1
    if counts[0] == n:
        return log_grid_sums(lx0, dlx, n_grid, c, inv_sd, a)
    f = np.zeros(n_grid)
    bound = 0.0
    total_abs = 0.0
    for i in range(n):
        total_abs += abs(a[i])
    for j in range(MAX_LEVEL + 1):
        if counts[j] == 0:
            continue
        idx = np.empty(counts[j], np.int64)
        k = 0
        for i in range(n):
            if level[i] == j:
                idx[k] = i
                k += 1
        cj, ij, aj = c[idx], inv_sd[idx], a[idx]
        if j == 0:
            f += log_grid_sums(lx0, dlx, n_grid, cj, ij, aj)
            continue
        m = 2 ** j
        step = m * dlx
        nq = (n_grid - 1) // m + 1  # coarse points 0..nq-1 cover fine points 0..(nq-1) m
        # coarse points -1 .. nq + 1 (a stencil of four around every fine interval)
        coarse = log_grid_sums(lx0 - step, step, nq + 3, cj, ij, aj)
        for kk in range(n_grid):
            q = kk // m
            t = (kk - q * m) / m
            if q >= nq + 1:  # not reached: nq + 1 > (n_grid - 1) / m
                q = nq
                t = 1.0
            # nodes q-1, q, q+1, q+2 at -1, 0, 1, 2 (coarse index + 1 in `coarse`)
            w0 = -t * (t - 1.0) * (t - 2.0) / 6.0
            w1 = (t + 1.0) * (t - 1.0) * (t - 2.0) / 2.0
            w2 = -(t + 1.0) * t * (t - 2.0) / 2.0
            w3 = (t + 1.0) * t * (t - 1.0) / 6.0
            f[kk] += w0 * coarse[q] + w1 * coarse[q + 1] + w2 * coarse[q + 2] + w3 * coarse[q + 3]
        for i in range(idx.shape[0]):
            h = step * ij[i]
            bound += 3.0 * abs(aj[i]) * h * h * h * h * (9.0 / 16.0) / 24.0
    bound += 1e-12 * total_abs
    n_exact = 0
    for kk in range(n_grid):
        if abs(f[kk]) <= bound:
            n_exact += 1
    if n_exact > MAX_EXACT_POINTS:
        return log_grid_sums(lx0, dlx, n_grid, c, inv_sd, a)
    for kk in range(n_grid):
        if abs(f[kk]) <= bound:
            f[kk], _ = _sum_and_slope(lx0 + kk * dlx, c, inv_sd, a)
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
def profile_brackets(spot, c, inv_sd, a, n_grid, lo_frac, hi_frac, fine_only=False):
    """The zero crossings of the re-priced profile in [lo_frac*spot, hi_frac*spot], ascending,
    as brackets in ln(spot): rows (la, lb, fa, fb, kind) with kind 0 = a sign change confirmed
    by exact evaluations fa, fb at both ends (polish it), 1 = an exact zero at la, 2 = at lb,
    3 = the profile is exactly 0 between la and lb (the root is their middle).

    Bracketed on a grid evenly spaced in ln(spot) (`grid_points`), its values from
    `multilevel_grid_sums`. A crossing is a change of sign between consecutive non-zero grid
    values. Exact zeros are skipped: far from every
    strike all gammas underflow to 0, which is no crossing."""
    n_grid = grid_points(inv_sd, n_grid, lo_frac, hi_frac)
    lx0 = math.log(lo_frac * spot)
    dlx = (math.log(hi_frac * spot) - lx0) / (n_grid - 1)
    # fine_only: every contract on the fine grid (the reference the multilevel grid is tested against)
    f = log_grid_sums(lx0, dlx, n_grid, c, inv_sd, a) if fine_only else multilevel_grid_sums(lx0, dlx, n_grid, c, inv_sd, a)
    out = np.empty((n_grid, 5))
    m = 0
    prev = -1
    for k in range(n_grid):
        if f[k] == 0.0:
            continue
        if prev >= 0 and f[prev] * f[k] < 0.0:
            la = lx0 + prev * dlx
            lb = lx0 + k * dlx
            if k == prev + 1:
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
    return out[:m]


@nb.njit(cache=True, nogil=True)
def _bracket_root(row, c, inv_sd, a):
    """The root ($) inside one `profile_brackets` row."""
    kind = row[4]
    if kind == 0:
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
def nearest_profile_root(spot, c, inv_sd, a, n_grid, lo_frac, hi_frac):
    """(root nearest spot or NaN, number of roots): the same numbers as `profile_roots`
    followed by a nearest-root search (ties to the lower root), but only brackets that can
    hold a nearer root than the best found so far are polished, nearest first."""
    br = profile_brackets(spot, c, inv_sd, a, n_grid, lo_frac, hi_frac)
    m = br.shape[0]
    if m == 0:
        return np.nan, 0
    # lower bound of |root - spot| per bracket: 0 if it holds spot, else its nearer end
    bound = np.empty(m)
    for j in range(m):
        lo_x, hi_x = math.exp(br[j, 0]), math.exp(br[j, 1])
        bound[j] = 0.0 if lo_x <= spot <= hi_x else min(abs(lo_x - spot), abs(hi_x - spot))
    order = np.argsort(bound, kind="mergesort")
    best_x = np.nan
    best_d = np.inf
    for jj in range(m):
        j = order[jj]
        if bound[j] > best_d:  # no later bracket can hold a nearer (or equally near) root
            break
        x = _bracket_root(br[j], c, inv_sd, a)
        d = abs(x - spot)
        if d < best_d or (d == best_d and x < best_x):
            best_d = d
            best_x = x
    return best_x, m


@nb.njit(cache=True, parallel=True)
def group_zero_gamma(starts, spot, strike, t, iv, weight, r, q, n_grid, lo_frac, hi_frac):
    """Per group: the root of the re-priced profile nearest its spot (NaN if none) and the
    number of roots found."""
    ng = starts.shape[0] - 1
    nearest = np.full(ng, np.nan)
    count = np.zeros(ng)
    for g in nb.prange(ng):
        lo, hi = starts[g], starts[g + 1]
        if hi <= lo:
            continue
        s = spot[lo]
        c, inv_sd, a = profile_coefficients(strike[lo:hi], t[lo:hi], iv[lo:hi], weight[lo:hi], r[lo:hi], q[lo:hi])
        nearest[g], count[g] = nearest_profile_root(s, c, inv_sd, a, n_grid, lo_frac, hi_frac)
    return nearest, count


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


# Serial twins of the parallel kernels (the same code compiled without the thread pool), for a
# handful of groups or rows: one SPX chain is ~2 ms of work, and waking, synchronizing and
# joining the pool's threads on a loaded 2-core machine cost more than that (medians 5-20x the
# serial time were measured). Same operations in the same order: the same bits.
group_positioning_serial = nb.njit(cache=True)(group_positioning.py_func)
group_zero_gamma_serial = nb.njit(cache=True)(group_zero_gamma.py_func)
years_from_day_tables_serial = nb.njit(cache=True)(years_from_day_tables.py_func)
interp_rates_serial = nb.njit(cache=True)(interp_rates.py_func)
SERIAL_BELOW_GROUPS = 8
SERIAL_BELOW_ROWS = 200_000
