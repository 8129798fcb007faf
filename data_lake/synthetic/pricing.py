"""The synthetic market's own Black-Scholes kernel (r = q = 0).

Deliberately separate from `pipelines.bsm`: data_lake sits below pipelines and may not
import it, and an independently written generator is what lets the pipeline's numbers be
checked against the market's planted truth.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

SQRT_2PI = np.sqrt(2.0 * np.pi)


def bs_price_gamma_vanna(spot, strike, t_years, vol, is_call):
    """Black-Scholes price (dollars/share), gamma (per $1 of spot) and vanna (dDelta/dSigma)
    with r = q = 0. Rows with t_years <= 0 are worth intrinsic and carry no greeks."""
    spot, strike, t, vol = np.broadcast_arrays(*(np.asarray(a, float) for a in (spot, strike, t_years, vol)))
    live = t > 0
    ts = np.where(live, t, 1.0)
    sd = vol * np.sqrt(ts)
    d1 = (np.log(spot / strike) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    call = spot * ndtr(d1) - strike * ndtr(d2)
    put = call - spot + strike
    price = np.where(is_call, call, put)
    intrinsic = np.where(is_call, np.maximum(spot - strike, 0.0), np.maximum(strike - spot, 0.0))
    pdf = np.exp(-0.5 * d1 * d1) / SQRT_2PI
    gamma = pdf / (spot * sd)
    vanna = -pdf * d2 / vol
    return (np.maximum(np.where(live, price, intrinsic), 0.0), np.where(live, gamma, 0.0),
            np.where(live, vanna, 0.0))
