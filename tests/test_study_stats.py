"""Event-study statistics cross-checked against statsmodels, scipy and hand formulas."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests

from eventvol.research.studies import stats as S


def _panel(rng, n_events=8, est_len=60, window=(-2, 2), shift=0.0):
    T = est_len + 40
    market = rng.normal(0, 0.01, T)
    beta = rng.uniform(0.5, 1.5, n_events)
    stock = beta * market[:, None] + rng.normal(0, 0.02, (T, n_events))
    pos = np.full(n_events, est_len + 15)
    stock[pos[0], :] += shift
    return stock, market, pos, S.abnormal_returns(stock, market, pos, window=window, est_len=est_len, gap=5, min_est=30)


def test_market_model_matches_statsmodels_ols():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 0.01, 100)
    y = 0.001 + 1.3 * x + rng.normal(0, 0.02, 100)
    m = S.fit_market_model(y, x)
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    assert m.alpha == pytest.approx(fit.params[0], rel=1e-10)
    assert m.beta == pytest.approx(fit.params[1], rel=1e-10)
    assert m.sigma == pytest.approx(np.sqrt(fit.scale), rel=1e-10)


def test_abnormal_returns_use_only_the_estimation_window():
    rng = np.random.default_rng(2)
    stock, market, pos, panel = _panel(rng)
    # hand: fit on rows [pos-2-5-60, pos-2-5), then AR on rows pos-2..pos+2
    i = 3
    lo, hi = pos[i] - 2 - 5 - 60, pos[i] - 2 - 5
    fit = sm.OLS(stock[lo:hi, i], sm.add_constant(market[lo:hi])).fit()
    rows = slice(pos[i] - 2, pos[i] + 3)
    expected = stock[rows, i] - fit.params[0] - fit.params[1] * market[rows]
    np.testing.assert_allclose(panel.ar[:, i], expected, rtol=1e-10)
    # poison everything after the estimation window except the event window: AR unchanged
    stock2 = stock.copy()
    stock2[hi:pos[i] - 2, i] = 9.0
    stock2[pos[i] + 3:, i] = -9.0
    p2 = S.abnormal_returns(stock2, market, pos, window=(-2, 2), est_len=60, gap=5, min_est=30)
    np.testing.assert_array_equal(p2.ar[:, i], panel.ar[:, i])


def test_cross_sectional_t_matches_scipy():
    rng = np.random.default_rng(3)
    x = rng.normal(0.01, 0.03, 25)
    r = S.mean_test(x)
    ref = stats.ttest_1samp(x, 0.0)
    assert r.stat == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)


def test_bmp_matches_hand_formula():
    rng = np.random.default_rng(4)
    stock, market, pos, panel = _panel(rng, shift=0.03)
    # hand: SAR = AR / (s * sqrt(1 + 1/L + (Rm - mean)^2 / sum((Rm_est - mean)^2)))
    L = 60
    scars = []
    for i in range(stock.shape[1]):
        lo, hi = pos[i] - 2 - 5 - L, pos[i] - 2 - 5
        x, y = market[lo:hi], stock[lo:hi, i]
        b = np.cov(x, y, ddof=1)[0, 1] / np.var(x, ddof=1)
        a = y.mean() - b * x.mean()
        s = np.sqrt(np.sum((y - a - b * x) ** 2) / (L - 2))
        sar = []
        for t in (pos[i], pos[i] + 1):
            c = 1 + 1 / L + (market[t] - x.mean()) ** 2 / np.sum((x - x.mean()) ** 2)
            sar.append((stock[t, i] - a - b * market[t]) / (s * np.sqrt(c)))
        scars.append(sum(sar) / np.sqrt(2))
    scars = np.array(scars)
    z = scars.mean() / (scars.std(ddof=1) / np.sqrt(len(scars)))
    r = S.bmp_test(panel, 0, 1)
    assert r.stat == pytest.approx(z, rel=1e-9)
    assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert r.stat > 2  # the planted 3% shift on day 0 is detected


def test_corrado_rank_matches_hand_formula_on_small_array():
    # 2 events, estimation 4 days, window 3 days (-1..1): hand ranks over 7 days each
    est = np.array([[0.01, -0.02], [0.00, 0.01], [-0.01, 0.03], [0.02, -0.01]])
    ar = np.array([[0.005, 0.0], [0.04, 0.05], [-0.03, 0.02]])
    panel = S.EventPanel(np.array([-1, 0, 1]), ar, ar, np.ones(2), est, np.array(["a", "b"]), [])
    full = np.vstack([est, ar])
    u = np.column_stack([stats.rankdata(full[:, i]) / 8 - 0.5 for i in range(2)])
    ubar = u.mean(axis=1)
    s_u = np.sqrt(np.mean(ubar**2))
    r = S.corrado_rank_test(panel, 0, 0)
    assert r.stat == pytest.approx(ubar[5] / s_u, rel=1e-12)
    r2 = S.corrado_rank_test(panel, -1, 1)
    assert r2.stat == pytest.approx(ubar[4:].sum() / (np.sqrt(3) * s_u), rel=1e-12)
    # day 0 holds the largest AR of both events: rank 7 of 7 -> U = 7/8 - 1/2
    assert u[5, 0] == pytest.approx(0.375) and u[5, 1] == pytest.approx(0.375)


def test_hac_matches_statsmodels_newey_west():
    rng = np.random.default_rng(5)
    n = 300
    x = np.cumsum(rng.normal(size=n)) * 0.1
    e = np.convolve(rng.normal(size=n + 3), [1, 0.6, 0.3, 0.1], "valid")
    y = 0.5 + 0.2 * x + e
    X = sm.add_constant(x)
    r = S.ols(y, X, ["c", "x"], cov="HAC", maxlags=5)
    fit = sm.OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": 5, "use_correction": False})
    np.testing.assert_allclose(r.coef, fit.params, rtol=1e-10)
    np.testing.assert_allclose(r.se, fit.bse, rtol=1e-10)
    np.testing.assert_allclose(r.t, fit.tvalues, rtol=1e-10)
    np.testing.assert_allclose(r.p, fit.pvalues, rtol=1e-8)


def test_clustered_errors_match_hand_sandwich():
    rng = np.random.default_rng(6)
    g = np.repeat(np.arange(30), 5)
    x = rng.normal(size=150) + rng.normal(size=30)[g]
    y = 1.0 + 0.5 * x + rng.normal(size=30)[g] + rng.normal(size=150)
    X = np.column_stack([np.ones(150), x])
    r = S.ols(y, X, ["c", "x"], cov="cluster", groups=g)
    beta = np.linalg.lstsq(X, y, rcond=None)[0]
    u = y - X @ beta
    bread = np.linalg.inv(X.T @ X)
    meat = sum(np.outer(X[g == k].T @ u[g == k], X[g == k].T @ u[g == k]) for k in range(30))
    G, n, k = 30, 150, 2
    cov = G / (G - 1) * (n - 1) / (n - k) * bread @ meat @ bread  # Stata/statsmodels small-sample factor
    np.testing.assert_allclose(r.se, np.sqrt(np.diag(cov)), rtol=1e-8)
    # inference with G - 1 degrees of freedom (few clusters), by hand from scipy's t
    t = r.coef / r.se
    np.testing.assert_allclose(r.p, 2 * stats.t.sf(np.abs(t), G - 1), rtol=1e-12)
    np.testing.assert_allclose(r.ci_high - r.coef, stats.t.ppf(0.975, G - 1) * r.se, rtol=1e-12)


def test_welch_matches_scipy():
    rng = np.random.default_rng(7)
    a, b = rng.normal(1.0, 2.0, 30), rng.normal(0.2, 0.5, 50)
    r = S.welch_difference(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert r.stat == pytest.approx(ref.statistic, rel=1e-12)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    ci = ref.confidence_interval(0.95)
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_vol_ratio_interval_is_exact_f():
    rng = np.random.default_rng(8)
    a, b = rng.normal(0, 1.5, 40), rng.normal(0, 1.0, 60)
    r = S.vol_ratio_test(a, b)
    f = np.mean(a**2) / np.mean(b**2)
    assert r.estimate == pytest.approx(np.sqrt(f))
    assert r.ci_low == pytest.approx(np.sqrt(f / stats.f.ppf(0.975, 40, 60)))
    assert r.ci_high == pytest.approx(np.sqrt(f / stats.f.ppf(0.025, 40, 60)))
    # coverage by simulation: true ratio 1.5 is inside ~95% of intervals
    cover = 0
    for s in range(400):
        g = np.random.default_rng(100 + s)
        t = S.vol_ratio_test(g.normal(0, 1.5, 40), g.normal(0, 1.0, 60))
        cover += t.ci_low <= 1.5 <= t.ci_high
    assert 0.91 <= cover / 400 <= 0.985


def test_benjamini_hochberg_matches_statsmodels_and_keeps_nans():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5, 0.002])
    ok = np.isfinite(p)
    ref = multipletests(p[ok], method="fdr_bh")[1]
    out = S.benjamini_hochberg(p)
    np.testing.assert_allclose(out[ok], ref, rtol=1e-12)
    assert np.isnan(out[1])
