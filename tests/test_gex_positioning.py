"""Dealer positioning against an independent scipy implementation of the ARCHITECTURE.md
convention, and the edge cases: expired rows, zero OI, missing IV, no crossing, several
crossings, AM and PM roots on one expiry, a one-contract chain."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from eventvol.pipelines import gex
from eventvol.pipelines.positioning import GEX_OUTPUTS, chain_summary, gex_factor_rows


def ref_gamma(s, k, t, v, r=0.0, q=0.0):
    d1 = (np.log(s / k) + (r - q + v * v / 2) * t) / (v * np.sqrt(t))
    return np.exp(-q * t) * norm.pdf(d1) / (s * v * np.sqrt(t))


def ref_profile(s, chain, sign=(1.0, -1.0)):
    """Net GEX per 1% at spot s, summed over usable contracts (scipy's normal pdf)."""
    used = (chain.t_years > 0) & np.isfinite(chain.iv) & (np.nan_to_num(chain.iv) > 0) \
        & (np.nan_to_num(chain.open_interest) > 0)
    k, t, v = chain.strike[used], chain.t_years[used], chain.iv[used]
    w = np.where(chain.is_call[used], sign[0], sign[1]) * chain.open_interest[used] * chain.multiplier[used]
    return float(np.sum(w * ref_gamma(s, k, t, v) * s * s * 0.01))


def ref_roots(chain, n=2001):
    s0 = chain.spot[0]
    xs = np.linspace(0.5 * s0, 1.5 * s0, n)
    f = np.array([ref_profile(x, chain) for x in xs])
    return [brentq(ref_profile, xs[i], xs[i + 1], args=(chain,), xtol=1e-13 * s0, rtol=1e-15)
            for i in range(n - 1) if f[i] * f[i + 1] < 0]


def make_chain(rows, spot=100.0, trade_date="2024-03-01"):
    """rows: (strike, days, iv, oi, is_call[, settlement, volume])."""
    td = np.datetime64(trade_date)
    strike = np.array([r[0] for r in rows], float)
    days = np.array([r[1] for r in rows], np.int64)
    settle = np.array([r[5] if len(r) > 5 else "PM" for r in rows])
    exp = td + days.astype("timedelta64[D]")
    return gex.ChainArrays(
        group=np.zeros(len(rows), np.int64), spot=np.full(len(rows), spot), strike=strike,
        t_years=gex.years_to_expiry(np.full(len(rows), td), exp, settle),
        iv=np.array([r[2] for r in rows], float), open_interest=np.array([r[3] for r in rows], float),
        multiplier=np.full(len(rows), 100.0), is_call=np.array([r[4] for r in rows], bool),
        volume=np.array([r[6] if len(r) > 6 else 10.0 for r in rows], float), days_to_expiry=days)


def random_chain(seed, n=400, spot=4500.0):
    rng = np.random.default_rng(seed)
    rows = [(round(spot * rng.uniform(0.7, 1.3) / 5) * 5, int(rng.choice([0, 1, 3, 7, 14, 30, 60, 180])),
             rng.uniform(0.08, 0.6), float(rng.integers(0, 5000)), bool(rng.random() < 0.5),
             "AM" if rng.random() < 0.3 else "PM", float(rng.integers(0, 300))) for _ in range(n)]
    return make_chain(rows, spot=spot)


@pytest.mark.parametrize("seed", [1, 2])
def test_positioning_matches_scipy_reference(seed):
    ch = random_chain(seed)
    res = gex.positioning(ch, 1)
    s = ch.spot[0]
    used = (ch.t_years > 0) & (ch.open_interest > 0)
    sign = np.where(ch.is_call, 1.0, -1.0)
    g = np.where(used, sign * ref_gamma(s, ch.strike, np.where(used, ch.t_years, 1), ch.iv)
                 * ch.open_interest * 100 * s * s * 0.01, 0.0)
    assert res["net_gex_per_1pct"][0] == pytest.approx(g.sum(), rel=1e-10)
    assert res["net_gex_per_1pct"][0] == pytest.approx(ref_profile(s, ch), rel=1e-10)
    assert res["net_gex_per_point"][0] == pytest.approx(g.sum() / (0.01 * s), rel=1e-10)
    assert res["contracts_used"][0] == used.sum()
    # vanna by the architecture's formula, scipy pdf
    tt = np.where(used, ch.t_years, 1)
    d1 = (np.log(s / ch.strike) + 0.5 * ch.iv ** 2 * tt) / (ch.iv * np.sqrt(tt))
    d2 = d1 - ch.iv * np.sqrt(tt)
    vex = np.where(used, sign * (-norm.pdf(d1) * d2 / ch.iv) * ch.open_interest * 100 * s * 0.01, 0.0)
    assert res["net_vex_per_volpt"][0] == pytest.approx(vex.sum(), rel=1e-10)
    # charm (r = q = 0) as -dDelta/dT per day by central differences of scipy's N(d1)
    h = 1e-6
    delta = lambda tx: norm.cdf((np.log(s / ch.strike) + 0.5 * ch.iv ** 2 * tx) / (ch.iv * np.sqrt(tx)))  # noqa: E731
    charm = -(delta(tt + h) - delta(tt - h)) / (2 * h) / 365.0  # put delta differs by a constant
    cex = np.where(used, sign * charm * ch.open_interest * 100 * s, 0.0)
    assert res["net_cex_per_day"][0] == pytest.approx(cex.sum(), rel=1e-5)
    # buckets by calendar days to expiry; sum to the total
    d = ch.days_to_expiry
    for name, mask in (("gex_0dte", d == 0), ("gex_le7d", (d >= 1) & (d <= 7)), ("gex_gt7d", d > 7)):
        assert res[name][0] == pytest.approx(g[mask].sum(), rel=1e-10, abs=1e-6)
    assert res["gex_0dte"][0] == 0.0  # end of day: today's expiries are past settlement
    assert res["zero_dte_volume_share"][0] == pytest.approx(ch.volume[d == 0].sum() / ch.volume.sum(), rel=1e-14)
    # walls: strike with the largest |GEX| summed over expiries
    df = pd.DataFrame({"k": ch.strike, "g": g, "c": ch.is_call, "u": used})
    df = df[df.u]
    calls = df[df.c].groupby("k").g.sum()
    puts = df[~df.c].groupby("k").g.sum()
    assert res["call_wall"][0] == calls.abs().idxmax()
    assert res["put_wall"][0] == puts.abs().idxmax()
    # zero gamma: every root of the re-priced profile (1-day expiries put two crossings 18 $
    # apart, so both sides bracket on a fine grid), and the default-grid root nearest spot
    roots = ref_roots(ch)
    ours = gex.zero_gamma_roots(ch, n_grid=2001)
    assert len(ours) == len(roots) and len(roots) >= 1
    np.testing.assert_allclose(ours, roots, rtol=1e-10)
    assert res["zero_gamma"][0] == pytest.approx(roots[int(np.argmin(np.abs(np.array(roots) - s)))], rel=1e-10)
    assert abs(ref_profile(res["zero_gamma"][0], ch)) < 1e-6 * np.abs(g).sum()
    # the profile at spot is the net GEX
    assert gex.gex_profile(ch, [s])[0] == pytest.approx(res["net_gex_per_1pct"][0], rel=1e-12)


def test_unusable_rows_carry_nothing():
    base = [(100.0, 30, 0.2, 1000, True), (95.0, 30, 0.25, 800, False)]
    junk = [(100.0, 0, 0.2, 5000, True),            # expires today (PM): T <= 0
            (105.0, -3, 0.2, 5000, True),           # already expired
            (110.0, 30, 0.2, 0, True),              # zero open interest
            (90.0, 30, np.nan, 5000, False),        # missing IV
            (90.0, 30, 0.0, 5000, False),           # zero IV
            (120.0, 30, 0.3, np.nan, True)]         # missing OI
    a = gex.positioning(make_chain(base), 1)
    b = gex.positioning(make_chain(base + junk), 1)
    for name in ("net_gex_per_1pct", "net_vex_per_volpt", "net_cex_per_day", "zero_gamma", "call_wall", "put_wall"):
        assert b[name][0] == a[name][0], name
    assert b["contracts_used"][0] == 2


def test_no_crossing_is_nan():
    # only calls: the profile is positive everywhere
    res = gex.positioning(make_chain([(100.0, 30, 0.2, 1000, True), (110.0, 60, 0.2, 500, True)]), 1)
    assert np.isnan(res["zero_gamma"][0]) and res["zero_gamma_roots_found"][0] == 0
    assert np.isnan(res["put_wall"][0]) and res["call_wall"][0] == 100.0


def test_several_crossings_nearest_spot_and_all_roots():
    # + bump at 80, - at 95, + at 110: two crossings, one each side of 95
    ch = make_chain([(80.0, 30, 0.1, 3000, True), (95.0, 30, 0.1, 3000, False), (110.0, 30, 0.1, 3000, True)],
                    spot=97.0)
    roots = gex.zero_gamma_roots(ch)
    ref = ref_roots(ch)
    assert len(roots) == 2 and roots[0] < 95 < roots[1]
    np.testing.assert_allclose(roots, ref, rtol=1e-10)
    res = gex.positioning(ch, 1)
    assert res["zero_gamma"][0] == pytest.approx(ref[int(np.argmin(np.abs(np.array(ref) - 97.0)))], rel=1e-10)
    assert res["zero_gamma_roots_found"][0] == 2


def test_am_and_pm_roots_on_one_expiry():
    # SPX (AM, 09:30) and SPXW (PM, 16:00) on the same expiry are different contracts with
    # different T: the AM one is 6.5 hours shorter and its gamma profile narrower.
    rows = [(100.0, 1, 0.2, 2000, True, "AM"), (100.0, 1, 0.2, 2000, False, "PM")]
    ch = make_chain(rows)
    assert ch.t_years[0] == pytest.approx(17.5 / 24 / 365) and ch.t_years[1] == pytest.approx(1 / 365)
    roots = gex.zero_gamma_roots(ch)
    # the narrower AM call bump beats the PM put bump near the strike, loses in the wings
    ref = ref_roots(ch)
    assert len(roots) == 2
    np.testing.assert_allclose(roots, ref, rtol=1e-10)
    assert roots[0] < 100.0 < roots[1]


def test_chain_of_one_contract():
    ch = make_chain([(100.0, 30, 0.2, 10, False)])
    res = gex.positioning(ch, 1)
    assert res["net_gex_per_1pct"][0] == pytest.approx(-ref_gamma(100.0, 100.0, ch.t_years[0], 0.2) * 10 * 100 * 100 ** 2 * 0.01)
    assert np.isnan(res["zero_gamma"][0]) and res["put_wall"][0] == 100.0 and np.isnan(res["call_wall"][0])
    s = chain_summary(ch, "X", dt.date(2024, 3, 1), profile=True, all_roots=True, n_grid=11)
    assert s["zero_gamma_roots"] == [] and len(s["profile"]["spots"]) == 11
    assert all(v < 0 for v in s["profile"]["net_gex_per_1pct"])


def test_sign_models():
    ch = random_chain(3, n=60)
    a = gex.positioning(ch, 1)
    b = gex.positioning(ch, 1, "customer_long_all")
    used = (ch.t_years > 0) & (ch.open_interest > 0)
    s = ch.spot[0]
    g = np.where(used, ref_gamma(s, ch.strike, np.where(used, ch.t_years, 1), ch.iv) * ch.open_interest * 100 * s * s * 0.01, 0)
    assert b["net_gex_per_1pct"][0] == pytest.approx(-g.sum(), rel=1e-10)
    assert a["net_gex_per_1pct"][0] != b["net_gex_per_1pct"][0]
    with pytest.raises(ValueError, match="unknown sign model"):
        gex.positioning(ch, 1, "nope")


def test_groups_match_single_chains_and_are_deterministic():
    chains = [random_chain(s, n=150) for s in (4, 5, 6)]
    cat = lambda f: np.concatenate([getattr(c, f) for c in chains])  # noqa: E731
    fields = ("spot", "strike", "t_years", "iv", "open_interest", "multiplier", "is_call", "volume", "days_to_expiry")
    many = gex.ChainArrays(group=np.repeat(np.arange(3), 150), **{f: cat(f) for f in fields})
    res = gex.positioning(many, 3)
    again = gex.positioning(many, 3)
    for g, c in enumerate(chains):
        one = gex.positioning(c, 1)
        for name in one:
            np.testing.assert_array_equal(res[name][g], one[name][0], err_msg=name)
    for name in res:
        np.testing.assert_array_equal(res[name], again[name])
    # the skeleton's numpy net_gex agrees
    np.testing.assert_allclose(gex.net_gex(many, 3)["net_gex_per_1pct"], res["net_gex_per_1pct"], rtol=1e-12)


def test_factor_rows_on_small_lake_and_no_look_ahead(small_lake):
    from eventvol.pipelines.loaders import load_chains

    chains = load_chains(small_lake, start="2023-03-01", end="2023-03-31")
    rows = gex_factor_rows(chains)
    assert set(rows["factor"]) == set(GEX_OUTPUTS)
    # poison every chain after 2023-03-15: factors up to that date do not move
    tbl = chains.to_pandas()
    cut = dt.date(2023, 3, 15)
    later = pd.to_datetime(tbl["trade_date"]).dt.date > cut
    tbl.loc[later, "iv"] = tbl.loc[later, "iv"] * 3.0
    tbl.loc[later, "open_interest"] = tbl.loc[later, "open_interest"] * 7
    poisoned = gex_factor_rows(pa.Table.from_pandas(tbl, schema=chains.schema, preserve_index=False))
    before = lambda f: f[pd.to_datetime(f["trade_date"]).dt.date <= cut].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(before(rows), before(poisoned))
    after = lambda f: f[pd.to_datetime(f["trade_date"]).dt.date > cut]  # noqa: E731
    assert not after(rows)["value"].equals(after(poisoned)["value"])


def test_materialized_factors_in_small_lake(small_lake):
    from eventvol.pipelines.factors import read_factor

    for name in ("net_gex_per_1pct", "spot", "zero_gamma", "call_wall", "zero_dte_volume_share"):
        f = read_factor(small_lake, name)
        assert len(f) > 100, name


@pytest.mark.parametrize("seed", range(8))
def test_nearest_root_search_polishes_less_but_finds_the_same_root(seed):
    """The factor path polishes only brackets that can hold the nearest root; it must return
    exactly (bit for bit) the nearest of all polished roots, and the same root count. Chains
    with many crossings: alternating-sign clusters of strikes around spot."""
    from eventvol.pipelines import nb as kernels

    rng = np.random.default_rng(100 + seed)
    spot = 100.0
    rows = []
    for k in np.arange(60.0, 141.0, 2.5):
        sign = rng.random() < 0.5
        rows.append((float(k), int(rng.choice([1, 7, 30, 90])), rng.uniform(0.08, 0.5),
                     float(rng.integers(1, 5000)), bool(sign)))
    ch = make_chain(rows, spot=spot + rng.uniform(-3, 3))
    _, coef = gex._single(ch, gex.DEFAULT_SIGN_MODEL)
    s = float(ch.spot[0])
    roots = kernels.profile_roots(s, *coef, gex.DEFAULT_GRID, *gex.ROOT_RANGE)
    nearest, count = kernels.nearest_profile_root(s, *coef, gex.DEFAULT_GRID, *gex.ROOT_RANGE)
    assert count == len(roots) >= 1
    assert nearest == gex.nearest_root(roots, s)  # exact equality: the same polish of the same bracket
    # and the positioning factor uses it
    assert gex.positioning(ch, 1)["zero_gamma"][0] == nearest
