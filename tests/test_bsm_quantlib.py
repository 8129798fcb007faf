"""BSM price and greeks against QuantLib's BlackCalculator on a dense grid of moneyness,
expiry, vol, r and q; vanna and charm against finite differences of QuantLib deltas."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from eventvol.pipelines import bsm

ql = pytest.importorskip("QuantLib")

SPOT = 100.0
MONEYNESS = (0.5, 0.8, 0.95, 1.0, 1.05, 1.25, 2.0)
EXPIRIES = (1 / 365 / 24, 1 / 365, 7 / 365, 30 / 365, 0.5, 2.0)
VOLS = (0.05, 0.2, 0.6, 1.5)
RATES = (-0.01, 0.0, 0.05)
YIELDS = (0.0, 0.03)


def _grid():
    rows = list(itertools.product(MONEYNESS, EXPIRIES, VOLS, RATES, YIELDS, (True, False)))
    k, t, v, r, q, c = (np.array(col) for col in zip(*rows))
    return SPOT * k, t, v, r, q, c.astype(bool)


def _ql(strike, t, vol, r, q, is_call, spot=SPOT):
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike)
    fwd = spot * np.exp((r - q) * t)
    return ql.BlackCalculator(payoff, fwd, vol * np.sqrt(t), np.exp(-r * t))


def test_price_and_greeks_match_quantlib_on_grid():
    k, t, v, r, q, c = _grid()
    ours = bsm.greeks(SPOT, k, t, v, r, q, c)
    ref = {"price": [], "delta": [], "gamma": [], "vega": [], "theta": []}
    for i in range(len(k)):
        bc = _ql(k[i], t[i], v[i], r[i], q[i], c[i])
        ref["price"].append(bc.value())
        ref["delta"].append(bc.delta(SPOT))
        ref["gamma"].append(bc.gamma(SPOT))
        ref["vega"].append(bc.vega(t[i]) * 0.01)  # per vol point
        ref["theta"].append(bc.thetaPerDay(SPOT, t[i]))  # per calendar day (theta / 365)
    assert len(k) == 2016
    for name, vals in ref.items():
        np.testing.assert_allclose(ours[name], np.array(vals), rtol=0, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(bsm.price(SPOT, k, t, v, r, q, c), ref["price"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(bsm.gamma(SPOT, k, t, v, r, q), ref["gamma"], rtol=0, atol=1e-8)


def test_vanna_and_charm_match_quantlib_finite_differences():
    k, t, v, r, q, c = _grid()
    ours = bsm.greeks(SPOT, k, t, v, r, q, c)
    hv, ht = 1e-5, 1e-7
    for i in range(0, len(k), 7):
        d = lambda vol, tt: _ql(k[i], tt, vol, r[i], q[i], c[i]).delta(SPOT)  # noqa: E731
        vanna = (d(v[i] + hv, t[i]) - d(v[i] - hv, t[i])) / (2 * hv)
        h = min(ht, 0.25 * t[i])
        charm_per_day = -(d(v[i], t[i] + h) - d(v[i], t[i] - h)) / (2 * h) / 365.0
        scale = max(1.0, abs(vanna))
        assert abs(ours["vanna"][i] - vanna) < 2e-6 * scale, (i, ours["vanna"][i], vanna)
        assert abs(ours["charm"][i] - charm_per_day) < 2e-6 * max(1.0, abs(charm_per_day)), (i, ours["charm"][i], charm_per_day)


def test_architecture_vanna_formula():
    # ARCHITECTURE.md: vanna = -e^(-qT) phi(d1) d2 / sigma, by hand for one row
    s, k, t, v, r, q = 100.0, 110.0, 0.25, 0.3, 0.02, 0.01
    d1 = (np.log(s / k) + (r - q + 0.5 * v * v) * t) / (v * np.sqrt(t))
    d2 = d1 - v * np.sqrt(t)
    phi = np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi)
    assert bsm.greeks(s, k, t, v, r, q, True)["vanna"] == pytest.approx(-np.exp(-q * t) * phi * d2 / v, rel=1e-13)


def test_expired_rows_are_intrinsic_with_zero_greeks():
    g = bsm.greeks(100.0, np.array([90.0, 110.0]), np.array([0.0, -0.01]), 0.2, 0.01, 0.0, np.array([True, False]))
    np.testing.assert_array_equal(g["price"], [10.0, 10.0])
    np.testing.assert_array_equal(g["delta"], [1.0, -1.0])
    for name in ("gamma", "vega", "theta", "vanna", "charm"):
        np.testing.assert_array_equal(g[name], [0.0, 0.0])
