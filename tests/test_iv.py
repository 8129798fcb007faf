"""Implied vol: QuantLib prices on a dense grid come back to the true vol within 1e-10 where the
price is not degenerate; rows without a solution are NaN with a reason."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from eventvol.pipelines import bsm, iv

ql = pytest.importorskip("QuantLib")

SPOT = 100.0


def _ql_price(strike, t, vol, r, q, is_call):
    payoff = ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, strike)
    return ql.BlackCalculator(payoff, SPOT * np.exp((r - q) * t), vol * np.sqrt(t), np.exp(-r * t)).value()


def test_iv_recovers_vol_from_quantlib_prices():
    grid = list(itertools.product((0.3, 0.6, 0.9, 0.99, 1.0, 1.01, 1.1, 1.5, 3.0),
                                  (1 / 365 / 48, 1 / 365, 7 / 365, 0.25, 1.0, 5.0),
                                  (0.01, 0.1, 0.3, 0.8, 2.5), (-0.005, 0.0, 0.06), (0.0, 0.02), (True, False)))
    k, t, v, r, q, c = (np.array(col) for col in zip(*grid))
    k = SPOT * k
    c = c.astype(bool)
    price = np.array([_ql_price(*row) for row in zip(k, t, v, r, q, c)])
    vol, reason = iv.implied_vol(price, SPOT, k, t, r, q, c)
    # Not degenerate: the price's own rounding moves the vol by < 1e-11. QuantLib's
    # F N(d1) - K N(d2) difference carries ~1e-14 x (S + K) dollars of absolute error (it prices
    # a 30-strike 3-month put at 4.4e-15 $ against a true 5.0e-16 $), on top of 1e-15 relative.
    vega = bsm.greeks(SPOT, k, t, v, r, q, c)["vega"] * 100.0
    price_err = 1e-15 * price + 1e-14 * (SPOT + k)
    nondegenerate = (price > 0) & (price_err < 1e-11 * vega)
    assert nondegenerate.sum() > 0.5 * len(k)
    assert (reason[nondegenerate] == iv.OK).all()
    err = np.abs(vol[nondegenerate] - v[nondegenerate])
    assert err.max() < 1e-10, err.max()
    # Degenerate rows either solve to a vol that reprices to the same price, or are NaN with a
    # reason (a price indistinguishable from intrinsic, or from the upper bound S e^{-qT} for
    # vol 2.5 over 5 years; QuantLib even returns a few negative prices, refused as bad input):
    # never a silently wrong price.
    ok = reason == iv.OK
    repriced = bsm.price(SPOT, k[ok], t[ok], vol[ok], r[ok], q[ok], c[ok])
    np.testing.assert_allclose(repriced, price[ok], rtol=1e-12, atol=1e-13)
    assert np.isnan(vol[~ok]).all() and np.isin(reason[~ok], [iv.BELOW_INTRINSIC, iv.ABOVE_UPPER_BOUND, iv.BAD_INPUT]).all()
    assert (reason[price < 0] == iv.BAD_INPUT).all()


def test_iv_deep_otm_and_short_expiry():
    # 30-minute 0DTE wing, and 3-sigma-out 1-day puts: prices of 1e-20..1e-5 dollars
    k = np.array([101.0, 102.0, 95.0, 80.0, 150.0])
    t = np.array([0.5 / 24 / 365, 0.5 / 24 / 365, 1 / 365, 7 / 365, 1.0])
    v = np.array([0.15, 0.2, 0.3, 0.5, 0.25])
    c = np.array([True, True, False, False, True])
    price = bsm.price(SPOT, k, t, v, 0.03, 0.01, c)
    assert price.min() < 1e-15
    vol, reason = iv.implied_vol(price, SPOT, k, t, 0.03, 0.01, c)
    assert (reason == 0).all()
    np.testing.assert_allclose(vol, v, rtol=1e-9)


def test_no_solution_rows_are_nan_with_reason():
    price = np.array([5.0, 9.0, 150.0, np.nan, 5.0, 1.0, 0.0])
    strike = np.array([100.0, 90.0, 100.0, 100.0, 100.0, -5.0, 100.0])
    t = np.array([0.0, 0.5, 0.5, 0.5, -0.1, 0.5, 0.5])
    vol, reason = iv.implied_vol(price, SPOT, strike, t, 0.0, 0.0, True)
    assert reason.tolist() == [iv.EXPIRED, iv.BELOW_INTRINSIC, iv.ABOVE_UPPER_BOUND, iv.BAD_INPUT, iv.EXPIRED,
                               iv.BAD_INPUT, iv.BELOW_INTRINSIC]
    assert np.isnan(vol).all()
    assert all(code in iv.REASONS for code in reason)


def test_iv_is_deterministic_and_broadcasts():
    k = np.linspace(60, 140, 41)
    p = bsm.price(SPOT, k, 0.1, 0.3, 0.01, 0.0, k > 100)
    a, _ = iv.implied_vol(p, SPOT, k, 0.1, 0.01, 0.0, k > 100)
    b, _ = iv.implied_vol(p.reshape(41, 1), SPOT, k.reshape(41, 1), 0.1, 0.01, 0.0, (k > 100).reshape(41, 1))
    assert b.shape == (41, 1)
    np.testing.assert_array_equal(a, b.ravel())
