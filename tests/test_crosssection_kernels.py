"""The numba kernels of pipelines/crosssection return the numbers of the numpy expressions
they replaced, bit for bit (comomentum: to 1e-12, it regroups a regression's sums), and
keep every value window-local (a chunk equals the same rows of the whole range)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from eventvol.pipelines.crosssection import common as cx
from eventvol.pipelines.crosssection import dispersion, kernels, momentum


# --------------------------------------------------------------- numpy reference forms
def numpy_rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """The previous implementation: window-local sums of a strided view."""
    out = np.full(x.shape, np.nan)
    s1 = np.lib.stride_tricks.sliding_window_view(x, window, axis=0).sum(axis=-1)
    s2 = np.lib.stride_tricks.sliding_window_view(x * x, window, axis=0).sum(axis=-1)
    out[window - 1:] = np.sqrt(np.maximum((s2 - s1 * s1 / window) / (window - 1), 0.0))
    return out


def numpy_percentile(x: np.ndarray, window: int, min_obs: int) -> np.ndarray:
    pad = np.concatenate([np.full(window - 1, np.nan), x])
    win = np.lib.stride_tricks.sliding_window_view(pad, window)
    cnt, le = np.isfinite(win).sum(axis=1), (win <= x[:, None]).sum(axis=1)
    ok = np.isfinite(x) & (cnt >= min_obs)
    out = np.full(len(x), np.nan)
    out[ok] = le[ok] / cnt[ok]
    return out


def numpy_quantile_groups(signal: np.ndarray, eligible: np.ndarray):
    """Stable argsort ranking of the whole row (the previous implementation)."""
    ok = eligible & np.isfinite(signal)
    n = ok.sum(axis=1)
    k = n // np.where(n >= momentum.DECILE_MIN_NAMES, 10, 3)
    order = np.argsort(np.where(ok, signal, np.inf), axis=1, kind="stable")
    rank = np.empty_like(order)
    rank[np.arange(signal.shape[0])[:, None], order] = np.arange(signal.shape[1])[None, :]
    return ok & (rank >= (n - k)[:, None]), ok & (rank < k[:, None])


def panel(seed: int, rows: int = 400, cols: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0005, 0.02, (rows, cols))
    x[50:70, 3] = np.nan
    x[0] = np.nan
    x[200, cols - 1] = np.nan
    return x


# ----------------------------------------------------------------------------- tests
@pytest.mark.parametrize("cols", [2, 7, 60])
@pytest.mark.parametrize("window", [5, 21, 63, 126])
def test_rolling_std_kernel_equals_the_strided_numpy_form_bit_for_bit(cols, window):
    x = panel(1)[:, :cols]
    got = cx.rolling_std(x, window)
    assert np.array_equal(got, numpy_rolling_std(x, window), equal_nan=True)
    # and pandas' online rolling std to 1e-12 relative (independent implementation)
    exp = pd.DataFrame(x).rolling(window).std().to_numpy()
    np.testing.assert_allclose(got, exp, rtol=1e-12, atol=0, equal_nan=True)
    assert np.isnan(got[: window - 1]).all() and np.isfinite(got[window + 1:, 0]).all()


def test_rolling_std_chunk_equals_whole_range_bit_for_bit():
    x = panel(2, rows=600)
    whole = cx.rolling_std(x, 63)
    for lo in (0, 17, 250):  # a chunk's values at rows with a full window inside the chunk
        part = cx.rolling_std(x[lo:], 63)
        assert np.array_equal(part[62:], whole[lo + 62:], equal_nan=True)


def test_trailing_percentile_kernel_equals_numpy_and_ranks_many_series_at_once():
    x = panel(3, rows=900, cols=5)
    x[100:110, 1] = np.inf  # not finite: neither ranked nor counted
    got = cx.trailing_percentile_panel(x, 300, 30)
    for j in range(x.shape[1]):
        exp = numpy_percentile(x[:, j], 300, 30)
        assert np.array_equal(got[:, j], exp, equal_nan=True)
        assert np.array_equal(cx.trailing_percentile(x[:, j], 300, 30), exp, equal_nan=True)
    assert np.isfinite(got[40:, 0]).sum() > 800 and np.isnan(got[:29]).all()
    # by hand: window 3, need 2 values
    assert cx.trailing_percentile(np.array([1.0, 3.0, 2.0, np.nan, 0.5]), 3, 2).tolist()[1:3] == [1.0, 2 / 3]


def test_quantile_groups_kernel_equals_stable_argsort_including_ties():
    rng = np.random.default_rng(4)
    sig = rng.integers(0, 6, (300, 80)).astype(float)  # many ties at the group edges
    sig[rng.random(sig.shape) < 0.1] = np.nan
    elig = rng.random(sig.shape) < 0.9
    elig[:5] = rng.random((5, 80)) < 0.3  # small universes: terciles
    elig[5] = False  # nobody eligible
    got_w, got_l = momentum.quantile_groups(sig, elig)
    exp_w, exp_l = numpy_quantile_groups(sig, elig)
    assert np.array_equal(got_w, exp_w) and np.array_equal(got_l, exp_l)
    n = (elig & np.isfinite(sig)).sum(axis=1)
    assert (got_w.sum(axis=1) == n // np.where(n >= 50, 10, 3)).all() and not got_w[5].any()


def test_pairwise_row_sum_is_numpys_summation_order():
    rng = np.random.default_rng(5)
    for m in (1, 5, 8, 9, 17, 128, 129, 300, 501, 2000):
        x = rng.normal(size=(4, m)) * np.exp(3 * rng.normal(size=(4, m)))  # spread magnitudes
        got = np.array([kernels.row_sum(r) for r in x])
        assert np.array_equal(got, x.sum(axis=1))
    assert kernels.row_sum(np.array([1e16, 1.0, -1e16])) == np.array([1e16, 1.0, -1e16]).sum()


def test_dispersion_kernel_equals_the_numpy_ratio_and_correlation_forms():
    rng = np.random.default_rng(6)
    rows, cols = 300, 70
    vol = np.abs(rng.normal(0.3, 0.1, (rows, cols)))
    vol[rng.random(vol.shape) < 0.05] = np.nan
    ivol = np.abs(rng.normal(0.2, 0.05, rows))
    ivol[7] = np.nan
    mask = rng.random((rows, cols)) < 0.8
    mask[3] = False  # no member: NaN everywhere
    cap = rng.uniform(0.0, 2.0, (rows, cols))
    cap[rng.random(cap.shape) < 0.1] = np.nan
    cap[:100] = np.nan  # no snapshot known yet: equal weights for the correlation
    cap[150, :] = 0.0  # non-positive weights drop members
    cap = np.where(mask, cap, np.nan)
    ratio, ratio_cw, corr = kernels.dispersion_rows(vol, ivol, mask, cap, True)
    mvol = np.where(mask, vol, np.nan)
    assert np.array_equal(ratio, dispersion.dispersion_ratio(ivol, mvol, mask), equal_nan=True)
    assert np.array_equal(ratio_cw, dispersion.dispersion_ratio(ivol, mvol, mask, cap), equal_nan=True)
    has_cap = np.isfinite(np.where(np.isfinite(mvol), cap, np.nan)).any(axis=1)
    wts = np.where(has_cap[:, None], cap, np.where(mask, 1.0, np.nan))
    assert np.array_equal(corr, dispersion.implied_correlation(ivol, mvol, wts), equal_nan=True)
    assert np.isfinite(ratio[10:]).sum() > 250 and np.isfinite(ratio_cw[100:]).sum() > 150
    assert np.isnan(ratio[3]) and np.isnan(ratio_cw[:100]).all() and np.isfinite(corr[:100]).sum() > 80
    # by hand, one row: members 0 and 1 with vols 0.2 / 0.4, weights 1 / 3, index vol 0.25
    v, m1, c1 = np.array([[0.2, 0.4, 0.9]]), np.array([[True, True, False]]), np.array([[1.0, 3.0, np.nan]])
    r, rc, rho = kernels.dispersion_rows(v, np.array([0.25]), m1, c1, True)
    ws = np.array([0.25 * 0.2, 0.75 * 0.4])
    assert r[0] == pytest.approx(0.3 / 0.25) and rc[0] == pytest.approx((0.05 + 0.3) / 0.25)
    assert rho[0] == pytest.approx((0.0625 - (ws**2).sum()) / (2 * ws[0] * ws[1]))


def test_wml_kernel_equals_the_numpy_form():
    rng = np.random.default_rng(7)
    ret = rng.normal(0, 0.02, (200, 90))
    ret[rng.random(ret.shape) < 0.05] = np.nan
    w, l = momentum.quantile_groups(rng.normal(size=ret.shape), rng.random(ret.shape) < 0.9)
    w[20] = False  # no winners: NaN the next day
    got = momentum.wml_returns(ret, w, l)
    fin = np.isfinite(ret[1:])
    wn, ln = (w[:-1] & fin).sum(axis=1), (l[:-1] & fin).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        exp = np.where(w[:-1] & fin, ret[1:], 0.0).sum(axis=1) / wn - np.where(l[:-1] & fin, ret[1:], 0.0).sum(axis=1) / ln
    assert np.isnan(got[0]) and np.isnan(got[21])
    assert np.array_equal(got[1:], np.where((wn > 0) & (ln > 0), exp, np.nan), equal_nan=True)


def test_comomentum_kernel_is_window_local_and_matches_the_definition():
    rng = np.random.default_rng(8)
    n, m = 700, 120
    idx = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n, m)) + np.diff(np.log(idx), prepend=np.log(idx[0]))[:, None], axis=0))
    close[300:305, 2] = np.nan
    winners, losers = momentum.quantile_groups(momentum.momentum_12_1(close), np.ones(close.shape, bool))
    rows = np.arange(260, n)
    cw, cl = momentum.comomentum(close, idx, winners, losers, rows)
    lo = 200  # a chunk that starts later: same values on its rows
    cw2, cl2 = momentum.comomentum(close[lo:], idx[lo:], winners[lo:], losers[lo:], rows[rows >= lo + 260] - lo)
    assert np.array_equal(cw2[260:], cw[lo + 260:], equal_nan=True) and np.array_equal(cl2[260:], cl[lo + 260:], equal_nan=True)
    lc, li = np.log(close), np.log(idx)
    checked = 0
    for t in range(260, n, 11):
        pts = np.arange(t - 260, t + 1, 5)
        exp = momentum.mean_residual_correlation(np.diff(lc[pts], axis=0)[:, winners[t]], np.diff(li[pts]))
        assert cw[t] == pytest.approx(exp, rel=1e-12, abs=1e-12)
        checked += np.isfinite(exp)
    assert checked > 30


def test_realized_vol_scaled_in_the_kernel_equals_scaling_the_std_afterwards():
    x = panel(9, cols=40)
    assert np.array_equal(cx.realized_vol(x, 21), cx.rolling_std(x, 21) * np.sqrt(252), equal_nan=True)
    assert np.array_equal(cx.realized_vol(x[:, 5], 21), cx.rolling_std(x[:, 5], 21) * np.sqrt(252), equal_nan=True)


def test_member_mask_spans_equal_a_per_date_loop():
    import datetime as dt
    dates = np.arange(np.datetime64("2020-01-01"), np.datetime64("2020-12-31")).astype("datetime64[D]")
    symbols = np.array(["A", "BB", "C", "D", "IDX"], dtype=object)
    members = pd.DataFrame({
        "index": ["IDX"] * 6 + ["OTH"],
        "symbol": ["A", "A", "BB", "C", "ZZ", "D", "A"],  # A twice (overlapping spans), ZZ not in the panel
        "start_date": [dt.date(2019, 1, 1), dt.date(2020, 1, 20), dt.date(2020, 3, 3), dt.date(2020, 12, 30),
                       dt.date(2020, 1, 1), dt.date(2021, 2, 1), dt.date(2020, 1, 1)],
        "end_date": [dt.date(2020, 2, 1), None, dt.date(2020, 3, 3), None, None, None, dt.date(2020, 5, 5)]})
    got = cx.member_mask(members, "IDX", dates, symbols)
    exp = np.zeros_like(got)
    for _, m in members[members["index"] == "IDX"].iterrows():
        if m["symbol"] in set(symbols):
            hi = np.datetime64("9999-12-31") if m["end_date"] is None else np.datetime64(m["end_date"])
            exp[:, list(symbols).index(m["symbol"])] |= (dates >= np.datetime64(m["start_date"])) & (dates <= hi)
    assert np.array_equal(got, exp)
    assert got[:, 0].all() and got[:, 1].sum() == 1 and got[:, 2].sum() == 1 and not got[:, 3:].any()
    assert not cx.member_mask(members, "NONE", dates, symbols).any()


def test_string_columns_from_codes_and_long_row_blocks():
    import datetime as dt
    for names in (["AB", "CD", "EF"], ["A", "BBB", "", "CC"], ["ÄX", "B"]):
        codes = np.random.default_rng(10).integers(0, len(names), 500)
        assert cx.string_array_from_codes(codes, names).to_pylist() == [names[c] for c in codes]
    dates = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-06")).astype("datetime64[D]")
    vals = np.array([[1.0, np.nan], [2.0, 20.0], [np.nan, 30.0], [4.0, 40.0], [5.0, 50.0]])
    got = cx.long_rows_block(["f", "g"], dates, "SPX", vals, dt.date(2024, 1, 2), dt.date(2024, 1, 4))
    exp = cx.concat_rows([cx.long_rows(n, dates, "SPX", vals[:, k], dt.date(2024, 1, 2), dt.date(2024, 1, 4))
                          for k, n in enumerate(["f", "g"])])
    pd.testing.assert_frame_equal(got, exp, check_exact=True)
    assert got["value"].tolist() == [2.0, 4.0, 20.0, 30.0, 40.0] and set(got["entity"]) == {"SPX"}
