"""Vectorized Black-Scholes-Merton with continuous rate r and dividend yield q.

Pure numpy: arrays in, arrays out, broadcasting like numpy ufuncs. Units: spot and strike in
dollars, t in years (ACT/365), vol/r/q as decimals. Greeks are per share:
delta per $1, gamma per $1 per $1, vega per 1 vol point (0.01), theta per calendar day,
vanna = dDelta/dSigma (per unit of vol), charm = dDelta per calendar day of time passing
(= -dDelta/dT / 365).
Rows with t <= 0 or vol <= 0 are expired/undefined: price is intrinsic, greeks are 0
(delta is the intrinsic indicator).
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
DAYS_PER_YEAR = 365.0


def _npdf(x):
    return INV_SQRT_2PI * np.exp(-0.5 * x * x)


def _prepare(spot, strike, t, vol, r, q, is_call):
    arrs = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (spot, strike, t, vol, r, q)),
                               np.asarray(is_call, dtype=bool))
    spot, strike, t, vol, r, q, is_call = arrs
    live = (t > 0) & (vol > 0)
    ts = np.where(live, t, 1.0)
    vs = np.where(live, vol, 1.0)
    sqrt_t = np.sqrt(ts)
    sd = vs * sqrt_t
    d1 = (np.log(spot / strike) + (r - q + 0.5 * vs * vs) * ts) / sd
    d2 = d1 - sd
    return spot, strike, ts, vs, r, q, is_call, live, sqrt_t, d1, d2


def price(spot, strike, t, vol, r=0.0, q=0.0, is_call=True) -> np.ndarray:
    """Option value per share, dollars."""
    spot, strike, t, vol, r, q, is_call, live, _, d1, d2 = _prepare(spot, strike, t, vol, r, q, is_call)
    dq, dr = np.exp(-q * t), np.exp(-r * t)
    call = spot * dq * ndtr(d1) - strike * dr * ndtr(d2)
    put = strike * dr * ndtr(-d2) - spot * dq * ndtr(-d1)
    intrinsic = np.where(is_call, np.maximum(spot - strike, 0.0), np.maximum(strike - spot, 0.0))
    return np.where(live, np.where(is_call, call, put), intrinsic)


def gamma(spot, strike, t, vol, r=0.0, q=0.0) -> np.ndarray:
    """d2V/dS2 per share, per $1 of spot (same for calls and puts)."""
    spot, strike, t, vol, r, q, _, live, sqrt_t, d1, _ = _prepare(spot, strike, t, vol, r, q, True)
    g = np.exp(-q * t) * _npdf(d1) / (spot * vol * sqrt_t)
    return np.where(live, g, 0.0)


def greeks(spot, strike, t, vol, r=0.0, q=0.0, is_call=True) -> dict[str, np.ndarray]:
    """price, delta, gamma, vega (per vol point), theta (per day), vanna, charm (per day)."""
    spot, strike, t, vol, r, q, is_call, live, sqrt_t, d1, d2 = _prepare(spot, strike, t, vol, r, q, is_call)
    dq, dr = np.exp(-q * t), np.exp(-r * t)
    pdf1 = _npdf(d1)
    nd1, nd2 = ndtr(d1), ndtr(d2)
    call = spot * dq * nd1 - strike * dr * nd2
    put = strike * dr * ndtr(-d2) - spot * dq * ndtr(-d1)
    delta = np.where(is_call, dq * nd1, dq * (nd1 - 1.0))
    gam = dq * pdf1 / (spot * vol * sqrt_t)
    vega = spot * dq * pdf1 * sqrt_t
    common = -spot * dq * pdf1 * vol / (2.0 * sqrt_t)
    theta_call = common - r * strike * dr * nd2 + q * spot * dq * nd1
    theta_put = common + r * strike * dr * ndtr(-d2) - q * spot * dq * ndtr(-d1)
    vanna = -dq * pdf1 * d2 / vol
    charm_core = dq * pdf1 * (2.0 * (r - q) * t - d2 * vol * sqrt_t) / (2.0 * t * vol * sqrt_t)
    # charm here is dDelta/dt (calendar time passing), per year; reported per day below
    charm = np.where(is_call, q * dq * nd1 - charm_core, -q * dq * ndtr(-d1) - charm_core)
    intrinsic = np.where(is_call, np.maximum(spot - strike, 0.0), np.maximum(strike - spot, 0.0))
    itm = np.where(is_call, spot > strike, spot < strike).astype(float) * np.where(is_call, 1.0, -1.0)
    z = lambda a: np.where(live, a, 0.0)  # noqa: E731
    return {
        "price": np.where(live, np.where(is_call, call, put), intrinsic),
        "delta": np.where(live, delta, itm),
        "gamma": z(gam),
        "vega": z(vega * 0.01),
        "theta": z(np.where(is_call, theta_call, theta_put) / DAYS_PER_YEAR),
        "vanna": z(vanna),
        "charm": z(charm / DAYS_PER_YEAR),
    }
