"""Vectorized implied volatility for Black-Scholes-Merton with continuous r and q.

Method (after Jaeckel, "Let's be rational", 2015, simplified): work on the forward-normalized,
undiscounted price b(x, s) = price / (D * sqrt(F K)) with x = ln(F/K), s = sigma * sqrt(T).
Put-call parity turns every option into the out-of-the-money call with x <= 0, so no time
value is lost to an intrinsic part. The out-of-the-money price is evaluated with the scaled
complementary error function,
    b(x, s) = 1/2 exp(-(h^2 + t^2)/2) [erfcx(-(h+t)/sqrt2) - erfcx(-(h-t)/sqrt2)],  h = x/s, t = s/2,
which keeps full relative precision for deep out-of-the-money and very short expiries where
the textbook N(d1) - N(d2) form underflows or cancels.

The root in s is found by safeguarded Newton steps started at the inflection point
s_c = sqrt(2|x|) (where b is convex below and concave above), on an objective that is close to
linear in each region:
  - lower region (beta < b(s_c)): f(s) = 1/ln b(s) - 1/ln beta   (ln b ~ -x^2 / 2 s^2 there);
  - upper region:                f(s) = ln(e^{x/2} - b(s)) - ln(e^{x/2} - beta), with
    e^{x/2} - b = e^{x/2} N(-h-t) + e^{-x/2} N(h-t) computed without cancellation.
A bracket [lo, hi] kept from the sign of b(s) - beta replaces any step that leaves it by a
bisection, so every row converges; typical rows need 3-6 iterations to machine precision.

Rows without a solution are NaN with a reason code (`REASONS`), never a wrong number.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfcx, ndtr

OK = 0
EXPIRED = 1  # T <= 0
BAD_INPUT = 2  # non-finite or non-positive price/spot/strike
BELOW_INTRINSIC = 3  # price <= forward intrinsic value (no time value)
ABOVE_UPPER_BOUND = 4  # price >= the no-arbitrage upper bound (S e^{-qT} for a call)
NO_CONVERGENCE = 5  # never seen in tests; kept so that a failure cannot pass silently

REASONS = {
    OK: "ok",
    EXPIRED: "expired (T <= 0)",
    BAD_INPUT: "price, spot or strike missing or not positive",
    BELOW_INTRINSIC: "price at or below intrinsic value",
    ABOVE_UPPER_BOUND: "price at or above the no-arbitrage upper bound",
    NO_CONVERGENCE: "solver did not converge",
}

_SQRT2 = np.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
MAX_ITER = 100


def normalized_otm_price(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """b(x, s) for x <= 0 (out-of-the-money call, normalized by D sqrt(F K)), s = sigma sqrt(T) > 0."""
    h, t = x / s, 0.5 * s
    # erfcx(-z) grows like 2 e^{z^2}: use the direct form once d1 = h + t is positive (no
    # cancellation or underflow problem there) and the scaled form in the tail.
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = 0.5 * np.exp(-0.5 * (h * h + t * t)) * (erfcx(-(h + t) / _SQRT2) - erfcx(-(h - t) / _SQRT2))
    direct = np.exp(0.5 * x) * ndtr(h + t) - np.exp(-0.5 * x) * ndtr(h - t)
    return np.where(h + t < 0.0, scaled, direct)


def _otm_gap(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """e^{x/2} - b(x, s) without cancellation (distance to the upper bound)."""
    h, t = x / s, 0.5 * s
    return np.exp(0.5 * x) * ndtr(-(h + t)) + np.exp(-0.5 * x) * ndtr(h - t)


def _normalized_vega(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    """db/ds."""
    h, t = x / s, 0.5 * s
    return _INV_SQRT_2PI * np.exp(-0.5 * (h * h + t * t))


def implied_vol(price, spot, strike, t, r=0.0, q=0.0, is_call=True) -> tuple[np.ndarray, np.ndarray]:
    """Implied vol (decimal) of option prices (dollars per share) and an int8 reason code per
    row (`REASONS`; 0 = ok). t in years; r, q continuous decimals. Broadcasts like numpy."""
    arrs = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (price, spot, strike, t, r, q)),
                               np.asarray(is_call, dtype=bool))
    price, spot, strike, t, r, q, is_call = (np.ravel(a) for a in arrs)
    shape = arrs[0].shape
    n = price.size
    reason = np.zeros(n, np.int8)
    good_in = np.isfinite(price) & np.isfinite(spot) & np.isfinite(strike) & np.isfinite(t) \
        & np.isfinite(r) & np.isfinite(q) & (spot > 0) & (strike > 0) & (price >= 0)
    reason[~good_in] = BAD_INPUT
    reason[good_in & ~(t > 0)] = EXPIRED
    live = reason == OK
    tt = np.where(live, t, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = np.exp(-r * tt)
        fwd = spot * np.exp((r - q) * tt)
        x = np.log(fwd / strike)
        beta = price / (disc * np.sqrt(fwd * strike))
        theta = np.where(is_call, 1.0, -1.0)
        # Parity: an in-the-money option becomes its out-of-the-money twin by removing the
        # forward intrinsic value; then b_put(x) = b_call(-x) makes every row an OTM call.
        itm = theta * x > 0
        intrinsic = np.abs(np.exp(0.5 * x) - np.exp(-0.5 * x))
        beta = np.where(itm, beta - intrinsic, beta)
        xo = -np.abs(x)
        upper = np.exp(0.5 * xo)
    reason[live & ~(beta > 0)] = BELOW_INTRINSIC
    reason[live & (beta > 0) & ~(beta < upper)] = ABOVE_UPPER_BOUND
    idx = np.flatnonzero(reason == OK)
    s = np.full(n, np.nan)
    if idx.size:
        s[idx] = _solve(xo[idx], beta[idx], reason, idx)
    vol = np.where(reason == OK, s / np.sqrt(tt), np.nan)
    return vol.reshape(shape), reason.reshape(shape)


def _solve(x: np.ndarray, beta: np.ndarray, reason: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """s = sigma sqrt(T) with b(x, s) = beta, for x <= 0 and 0 < beta < e^{x/2}."""
    sc = np.sqrt(2.0 * np.abs(x))
    # At-the-money (x = 0) the inflection point is s = 0; start from the exact ATM inverse,
    # b(0, s) = 2 N(s/2) - 1, which is also a fine start for nearly-ATM rows.
    from scipy.special import ndtri

    s_atm = 2.0 * ndtri(0.5 * (1.0 + np.minimum(beta, 1.0 - 1e-16)))
    s = np.where(sc > 1e-3, sc, np.maximum(s_atm, 1e-8))
    b_c = normalized_otm_price(x, s)
    lower = beta < b_c
    lo = np.zeros_like(s)
    hi = np.full_like(s, np.inf)
    ln_beta = np.log(beta)
    ln_gap_target = np.log(np.exp(0.5 * x) - beta)
    active = np.ones(s.size, bool)
    for _ in range(MAX_ITER):
        a = np.flatnonzero(active)
        if a.size == 0:
            break
        xa, sa = x[a], s[a]
        b = normalized_otm_price(xa, sa)
        v = _normalized_vega(xa, sa)
        above = b > beta[a]
        hi[a] = np.where(above, np.minimum(hi[a], sa), hi[a])
        lo[a] = np.where(~above, np.maximum(lo[a], sa), lo[a])
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lnb = np.log(b)
            step_lower = -(1.0 / lnb - 1.0 / ln_beta[a]) / (-v / (b * lnb * lnb))
            gap = _otm_gap(xa, sa)
            step_upper = -(np.log(gap) - ln_gap_target[a]) / (-v / gap)
        step = np.where(lower[a], step_lower, step_upper)
        new = sa + step
        bad = ~np.isfinite(new) | (new <= lo[a]) | (new >= hi[a])
        bisect = np.where(np.isfinite(hi[a]), 0.5 * (lo[a] + hi[a]), 2.0 * np.maximum(sa, lo[a]))
        exact = b == beta[a]
        new = np.where(exact, sa, np.where(bad, bisect, new))
        s[a] = new
        done = exact | (np.abs(new - sa) <= 4e-16 * new) | (hi[a] - lo[a] <= 4e-16 * new)
        active[a[done]] = False
    reason[idx[active]] = NO_CONVERGENCE
    return np.where(active, np.nan, s)
