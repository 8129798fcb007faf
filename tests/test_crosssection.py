"""Cross-sectional factors: math against independent implementations, point in time,
determinism. The random lake below is written in the test (members, weights, LETFs and short
interest with hand-checkable numbers)."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

from eventvol.data_lake import Lake, calendars
from eventvol.pipelines.crosssection import common as cx
from eventvol.pipelines.crosssection import dispersion, implied, letf, momentum, squeeze
from eventvol.pipelines.factors import compute_range, materialize, read_factor
from eventvol.pipelines.registry import load_families

START, END = "2021-01-04", "2023-12-29"
N_STOCKS = 40
INDEX = "IDX"


def random_market(seed: int = 3) -> dict[str, pd.DataFrame]:
    """40 stocks with a common factor, an index that is their cap-weighted basket, dated
    members (5 join mid-sample, 3 leave), monthly weights, two LETFs and short interest."""
    rng = np.random.default_rng(seed)
    days = calendars.sessions(START, END)
    n_t = len(days)
    beta = rng.uniform(0.5, 1.5, N_STOCKS)
    mkt = rng.normal(0.0003, 0.011, n_t)
    ret = mkt[:, None] * beta + rng.normal(0, 0.018, (n_t, N_STOCKS))
    close = 50 * np.exp(np.cumsum(ret, axis=0))
    shares = rng.uniform(1e8, 1e9, N_STOCKS)
    syms = [f"S{i:02d}" for i in range(N_STOCKS)]
    cap = close * shares
    idx = 3000 * np.r_[1.0, np.cumprod(1 + ((cap[1:] / cap[:-1] - 1) * (cap[:-1] / cap[:-1].sum(1, keepdims=True))).sum(1))]
    vol = rng.integers(1_000_000, 5_000_000, (n_t, N_STOCKS + 1))
    bars = pd.DataFrame({
        "trade_date": np.repeat(days.date, N_STOCKS + 1),
        "symbol": np.tile(syms + [INDEX], n_t),
        "close": np.column_stack([close, idx]).ravel(),
        "volume": vol.ravel(),
    })
    mid = days[n_t // 2].date()
    members = [(INDEX, s, days[0].date(), None) for s in syms[:32]]
    members += [(INDEX, s, days[0].date(), calendars.previous_session(mid)) for s in syms[32:35]]
    members += [(INDEX, s, mid, None) for s in syms[35:]]
    members = pd.DataFrame(members, columns=["index", "symbol", "start_date", "end_date"])
    firsts = pd.Series(days).groupby([days.year, days.month]).min()
    wrows = []
    for d in firsts:
        t = days.get_loc(d)
        w = cap[t - 1] if t else cap[0]
        for i, s in enumerate(syms):
            wrows.append((INDEX, s, d.date(), float(w[i] / w.sum()), calendars.market_time_utc(d, "08:00")))
    weights = pd.DataFrame(wrows, columns=["index", "symbol", "as_of", "weight", "known_at"])
    funds = pd.DataFrame({
        "trade_date": np.repeat(days.date, 2), "fund": np.tile(["UPRO3", "SPXU3"], n_t), "benchmark": INDEX,
        "leverage": np.tile([3.0, -3.0], n_t), "aum": rng.uniform(1e9, 2e9, 2 * n_t),
    })
    settle = [d for d in days if d.day in (14, 15) or d.is_month_end][::2]
    si = pd.DataFrame([(s.date(), calendars.sessions(s + pd.Timedelta(days=8), s + pd.Timedelta(days=20))[0].date(),
                        sym, int(rng.integers(1e6, 5e7)), int(rng.integers(2e8, 6e8)))
                       for s in settle for sym in syms[:3]],
                      columns=["settlement_date", "publish_date", "symbol", "shares_short", "float_shares"])
    return {"bars": bars, "index_members": members, "index_weights": weights, "letf_funds": funds, "short_interest": si}


def write_market(path, frames) -> Lake:
    lake = Lake.open(path, create=True)
    with lake.writer():
        for t, df in frames.items():
            lake.write(t, df)
    return lake


@pytest.fixture(scope="module")
def frames():
    return random_market()


@pytest.fixture(scope="module")
def rlake(tmp_path_factory, frames) -> Lake:
    return write_market(tmp_path_factory.mktemp("cx") / "lake", frames)


def rows_of(df: pd.DataFrame, factor: str, entity: str | None = None) -> pd.Series:
    r = df[df["factor"] == factor]
    if entity is not None:
        r = r[r["entity"] == entity]
    return pd.Series(r["value"].to_numpy(float), index=pd.to_datetime(r["trade_date"]).to_numpy()).sort_index()


# ----------------------------------------------------------------------------- pure math
@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 8), t=st.integers(10, 60), seed=st.integers(0, 2**32 - 1))
def test_implied_corr_formula_equals_vol_weighted_pairwise_corr_for_a_basket_index(n, t, seed):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(t, n)) @ rng.normal(size=(n, n)) * 0.01
    w = rng.uniform(0.05, 1.0, n)
    w /= w.sum()
    basket = r @ w  # the index is exactly the weighted basket of its members
    s = r.std(axis=0, ddof=1)
    rho = np.corrcoef(r, rowvar=False)
    num = sum(w[i] * w[j] * s[i] * s[j] * rho[i, j] for i, j in itertools.permutations(range(n), 2))
    den = sum(w[i] * w[j] * s[i] * s[j] for i, j in itertools.permutations(range(n), 2))
    got = dispersion.implied_correlation(np.array([basket.std(ddof=1)]), s[None, :], w[None, :])[0]
    assert got == pytest.approx(num / den, rel=1e-9, abs=1e-12)


def test_implied_corr_is_one_for_identical_members_and_renormalizes_weights():
    s = np.array([[0.2, 0.2, 0.2]])
    assert dispersion.implied_correlation(np.array([0.2]), s, np.array([[1.0, 2.0, 3.0]]))[0] == pytest.approx(1.0)
    # NaN member dropped, weights renormalized over the two left: index vol 0.2*sqrt((1+rho)/2)
    rho = 0.3
    iv = 0.2 * np.sqrt(0.5 * 0.5 * 2 + 2 * 0.25 * rho)
    got = dispersion.implied_correlation(np.array([iv]), np.array([[0.2, np.nan, 0.2]]), np.array([[5.0, 1.0, 5.0]]))[0]
    assert got == pytest.approx(rho)


def test_rolling_std_matches_pandas_including_gaps():
    rng = np.random.default_rng(0)
    x = rng.normal(0.001, 0.02, (400, 5))
    x[100, 2] = np.nan
    exp = pd.DataFrame(x).rolling(21, min_periods=21).std().to_numpy()
    got = cx.rolling_std(x, 21)
    assert np.array_equal(np.isnan(got), np.isnan(exp))
    np.testing.assert_allclose(got, exp, rtol=1e-9, equal_nan=True)


def test_trailing_percentile_matches_scipy_percentileofscore():
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    x[50] = np.nan
    got = cx.trailing_percentile(x, window=100, min_obs=30)
    for t in (40, 99, 150, 299):
        win = x[max(0, t - 99): t + 1]
        win = win[np.isfinite(win)]
        assert got[t] == pytest.approx(stats.percentileofscore(win, x[t], kind="weak") / 100)
    assert np.isnan(got[20]) and np.isnan(got[50])


# ----------------------------------------------------------------------------- dispersion
def independent_dispersion(bars: pd.DataFrame, members: pd.DataFrame, index: str, window: int,
                           start=None, end=None) -> pd.Series:
    """Plain pandas: pivot, log returns, rolling std, mean over members on the date with a
    full window, divided by the index's vol (dates in [start, end])."""
    px = bars.pivot(index="trade_date", columns="symbol", values="close").sort_index()
    px.index = pd.to_datetime(px.index)
    vol = np.log(px).diff().rolling(window).std() * np.sqrt(252)
    vol = vol.loc[pd.Timestamp(start or vol.index[0]): pd.Timestamp(end or vol.index[-1])]
    out = {}
    for d, row in vol.iterrows():
        m = members[(members["index"] == index) & (pd.to_datetime(members["start_date"]) <= d)
                    & (members["end_date"].isna() | (pd.to_datetime(members["end_date"]) >= d))]
        v = row[[s for s in m["symbol"] if s in row.index]].dropna()
        if len(v) and np.isfinite(row[index]):
            out[d] = v.mean() / row[index]
    return pd.Series(out).sort_index()


def test_dispersion_ratio_equals_independent_pandas_on_the_small_synthetic_lake(small_lake):
    s, e = dt.date(2023, 3, 1), dt.date(2023, 8, 31)
    got = compute_range(small_lake, dispersion.DISPERSION, s, e)
    bars = small_lake.read("bars", columns=["trade_date", "symbol", "close"])
    members = small_lake.read("index_members")
    for w in (5, 63):
        exp = independent_dispersion(bars, members, "SYNX", w, s, e)
        g = rows_of(got, f"dispersion_ratio_{w}d", "SYNX")
        assert len(g) == len(exp) > 50
        np.testing.assert_allclose(g.to_numpy(), exp.to_numpy(), rtol=1e-9)
        assert (g > 0.5).all() and (g < 10).all()


def test_dispersion_ratio_and_cap_weighted_variant_on_the_random_lake(rlake, frames):
    s, e = dt.date(2022, 6, 1), dt.date(2022, 7, 29)  # spans the membership change
    got = compute_range(rlake, dispersion.DISPERSION, s, e)
    exp = independent_dispersion(frames["bars"], frames["index_members"], INDEX, 21, s, e)
    np.testing.assert_allclose(rows_of(got, "dispersion_ratio_21d", INDEX).to_numpy(), exp.to_numpy(), rtol=1e-9)
    # cap-weighted by hand on one date: the month's weight snapshot, members only
    d = pd.Timestamp("2022-07-15")
    bars, w = frames["bars"], frames["index_weights"]
    px = bars.pivot(index="trade_date", columns="symbol", values="close")
    px.index = pd.to_datetime(px.index)
    vol = (np.log(px).diff().rolling(21).std() * np.sqrt(252)).loc[d]
    snap = w[pd.to_datetime(w["as_of"]) == pd.Timestamp("2022-07-01")].set_index("symbol")["weight"]
    mem = frames["index_members"]
    active = [s for s, lo, hi in zip(mem["symbol"], mem["start_date"], mem["end_date"])
              if pd.Timestamp(lo) <= d and (hi is None or pd.Timestamp(hi) >= d)]
    ww = snap[active]
    cw = (ww * vol[active]).sum() / ww.sum() / vol[INDEX]
    assert rows_of(got, "dispersion_ratio_cw_21d", INDEX)[d] == pytest.approx(cw, rel=1e-9)
    # realized correlation of a basket index lies in (-1, 1] and is positive for a 1-factor market
    rc = rows_of(got, "realized_corr_21d", INDEX)
    assert ((rc > 0) & (rc <= 1.0)).all()
    pct = rows_of(got, "dispersion_ratio_21d_pct3y", INDEX)
    assert ((pct > 0) & (pct <= 1)).all() and len(pct) == len(exp)


# ----------------------------------------------------------------------------- momentum
def test_momentum_wml_and_bear_market_against_independent_loops(rlake, frames):
    s, e = dt.date(2023, 3, 1), dt.date(2023, 3, 31)
    got = compute_range(rlake, momentum.MOMENTUM, s, e)
    px = frames["bars"].pivot(index="trade_date", columns="symbol", values="close").sort_index()
    px.index = pd.to_datetime(px.index)
    mom = px.shift(21) / px.shift(252) - 1
    d = pd.Timestamp("2023-03-15")
    g = got[(got["factor"] == "momentum_12_1") & (pd.to_datetime(got["trade_date"]) == d)].set_index("entity")["value"]
    assert len(g) == 37  # members on that date (32 + 5 joiners), the index excluded
    np.testing.assert_allclose(g.to_numpy(), mom.loc[d, g.index].to_numpy(), rtol=1e-12)
    # WML by a plain loop: terciles (< 50 names) formed at the previous close
    mem = frames["index_members"]
    wml = {}
    dates = px.index
    for t in range(dates.get_loc(pd.Timestamp(s)), dates.get_loc(pd.Timestamp(e)) + 1):
        prev = dates[t - 1]
        act = [x for x, lo, hi in zip(mem["symbol"], mem["start_date"], mem["end_date"])
               if pd.Timestamp(lo) <= prev and (hi is None or pd.Timestamp(hi) >= prev)]
        sig = mom.loc[prev, act].dropna().sort_values(kind="stable")
        k = len(sig) // 3
        r = px.iloc[t] / px.iloc[t - 1] - 1
        wml[dates[t]] = r[sig.index[-k:]].mean() - r[sig.index[:k]].mean()
    np.testing.assert_allclose(rows_of(got, "wml_return", INDEX).to_numpy(), pd.Series(wml).to_numpy(), rtol=1e-9)
    r24 = px[INDEX] / px[INDEX].shift(504) - 1
    np.testing.assert_allclose(rows_of(got, "market_return_24m", INDEX).to_numpy(),
                               r24[(r24.index >= pd.Timestamp(s)) & (r24.index <= pd.Timestamp(e))].to_numpy())
    assert set(rows_of(got, "bear_market", INDEX)) <= {0.0, 1.0}


def test_comomentum_matches_lstsq_residual_correlations():
    rng = np.random.default_rng(5)
    mk = rng.normal(0, 0.02, 52)
    common = rng.normal(0, 0.02, 52)
    x = mk[:, None] * rng.uniform(0.5, 1.5, 6) + common[:, None] * 0.8 + rng.normal(0, 0.02, (52, 6))
    resid = []
    design = np.column_stack([np.ones(52), mk])
    for j in range(6):
        coef, *_ = np.linalg.lstsq(design, x[:, j], rcond=None)
        resid.append(x[:, j] - design @ coef)
    c = np.corrcoef(np.array(resid))
    exp = c[np.triu_indices(6, 1)].mean()
    assert momentum.mean_residual_correlation(x, mk) == pytest.approx(exp, rel=1e-10)
    assert exp > 0.2  # the planted common residual shows up as comovement


def test_quantile_groups_deciles_for_large_universes():
    sig = np.arange(100, dtype=float)[None, :]
    w, l = momentum.quantile_groups(sig, np.ones_like(sig, bool))
    assert np.flatnonzero(w[0]).tolist() == list(range(90, 100)) and np.flatnonzero(l[0]).tolist() == list(range(10))
    w, l = momentum.quantile_groups(sig[:, :9], np.ones((1, 9), bool))
    assert np.flatnonzero(w[0]).tolist() == [6, 7, 8] and np.flatnonzero(l[0]).tolist() == [0, 1, 2]


# ----------------------------------------------------------------------------- letf, squeeze
def test_letf_rebalance_flow_by_hand():
    dates = np.array(["2024-03-01", "2024-03-04", "2024-03-05"], dtype="datetime64[D]")
    close = cx.Panel(dates, np.array(["SPX"], dtype=object), np.array([[100.0], [102.0], [96.9]]))
    funds = pd.DataFrame({
        "trade_date": [dt.date(2024, 3, 1)] * 2 + [dt.date(2024, 3, 4)] * 2,
        "fund": ["UPRO", "SPXU"] * 2, "benchmark": "SPX", "leverage": [3.0, -3.0] * 2,
        "aum": [1e9, 5e8, 2e9, 4e8]})
    got = letf.rebalance_flows(funds, close, dt.date(2024, 3, 1), dt.date(2024, 3, 5))
    flow = rows_of(got, "letf_rebalance_flow_usd", "SPX")
    # 3/4: +2%: 1e9*3*2*0.02 + 5e8*(-3)(-4)*0.02 = 1.2e8 + 1.2e8
    assert flow[np.datetime64("2024-03-04")] == pytest.approx(2.4e8)
    # 3/5: -5%: (2e9*6 + 4e8*12) * -0.05 = -8.4e8 (both fund types sell into a down close)
    assert flow[np.datetime64("2024-03-05")] == pytest.approx(-8.4e8)
    assert np.datetime64("2024-03-01") not in flow.index  # no AUM(t-1) known
    assert rows_of(got, "letf_flow_per_1pct_usd", "SPX")[np.datetime64("2024-03-05")] == pytest.approx(1.68e8)


def test_letf_family_on_the_lake(rlake, frames):
    got = compute_range(rlake, letf.LETF, dt.date(2022, 2, 1), dt.date(2022, 2, 28))
    f = frames["letf_funds"]
    px = frames["bars"][frames["bars"]["symbol"] == INDEX].set_index("trade_date")["close"]
    d, p = dt.date(2022, 2, 15), dt.date(2022, 2, 14)
    prev = f[f["trade_date"] == p]
    exp = (prev["aum"] * prev["leverage"] * (prev["leverage"] - 1)).sum() * (px[d] / px[p] - 1)
    assert rows_of(got, "letf_rebalance_flow_usd", INDEX)[np.datetime64(d)] == pytest.approx(exp, rel=1e-12)


def test_squeeze_short_interest_is_point_in_time_and_days_to_cover(rlake, frames):
    got = compute_range(rlake, squeeze.SQUEEZE, dt.date(2022, 5, 1), dt.date(2022, 5, 31))
    si = frames["short_interest"]
    si = si[si["symbol"] == "S01"]
    d = dt.date(2022, 5, 20)
    rep = si[si["publish_date"] <= d].sort_values("publish_date").iloc[-1]
    assert rows_of(got, "short_interest_float", "S01")[np.datetime64(d)] == pytest.approx(rep.shares_short / rep.float_shares)
    vol = frames["bars"][frames["bars"]["symbol"] == "S01"].set_index("trade_date")["volume"].astype(float)
    adv = vol[vol.index <= d].iloc[-21:].mean()
    assert rows_of(got, "days_to_cover", "S01")[np.datetime64(d)] == pytest.approx(rep.shares_short / adv)


def test_call_gamma_near_spot_against_closed_form(small_lake):
    d = dt.date(2023, 5, 10)
    got = compute_range(small_lake, squeeze.SQUEEZE, d, d)
    q = small_lake.read("option_quotes", where="trade_date = ? AND underlying = 'ACME' AND option_type = 'C'", params=[d])
    q = q[q["iv"] > 0]
    exp_t = ((pd.to_datetime(q["expiration"]) + pd.Timedelta(hours=16)).dt.tz_localize("America/New_York")
             - pd.Timestamp(f"{d} 16:00", tz="America/New_York")).dt.total_seconds() / (365 * 86400)
    s, k, v = q["underlying_price"], q["strike"], q["iv"]
    d1 = (np.log(s / k) + 0.5 * v * v * exp_t) / (v * np.sqrt(exp_t))
    gam = stats.norm.pdf(d1) / (s * v * np.sqrt(exp_t))
    dollar = gam * q["open_interest"] * q["multiplier"] * s * s * 0.01
    near = (k / s - 1).abs() <= 0.05
    assert rows_of(got, "call_gamma_near_spot_usd", "ACME")[np.datetime64(d)] == pytest.approx(dollar[near].sum(), rel=1e-9)
    assert rows_of(got, "call_gamma_near_spot_share", "ACME")[np.datetime64(d)] == pytest.approx(dollar[near].sum() / dollar.sum(), rel=1e-9)


def test_implied_corr_30d_interpolates_total_variance_and_applies_the_formula():
    atm = pd.DataFrame({
        "underlying": ["IDX", "IDX", "A", "B"], "trade_date": [dt.date(2024, 2, 1)] * 4,  # no DST change inside
        "expiration": [dt.date(2024, 2, 15), dt.date(2024, 3, 7), dt.date(2024, 2, 28), dt.date(2024, 2, 28)],
        "settlement": ["PM"] * 4, "atm_iv": [0.10, 0.20, 0.30, 0.40]})
    iv = implied.atm_iv_30d(atm).set_index("underlying")["iv30"]
    t1, t2, t = 14 / 365, 35 / 365, 30 / 365
    exp_idx = np.sqrt((0.01 * t1 + (0.04 * t2 - 0.01 * t1) * (t - t1) / (t2 - t1)) / t)
    assert iv["IDX"] == pytest.approx(exp_idx, rel=1e-12)
    assert iv["A"] == pytest.approx(0.30) and iv["B"] == pytest.approx(0.40)  # flat beyond the last expiry
    members = pd.DataFrame({"index": ["IDX", "IDX"], "symbol": ["A", "B"], "start_date": [dt.date(2020, 1, 1)] * 2, "end_date": [None, None]})
    weights = pd.DataFrame(columns=["index", "symbol", "as_of", "weight", "known_at"])
    got = implied.compute({"atm": atm, "members": members, "weights": weights, "indexes": ["IDX"]}, dt.date(2024, 2, 1), dt.date(2024, 2, 1))
    rho = rows_of(got, "implied_corr_30d", "IDX").iloc[0]
    exp = (exp_idx**2 - 0.25 * 0.09 - 0.25 * 0.16) / (2 * 0.25 * 0.3 * 0.4)
    assert rho == pytest.approx(exp, rel=1e-12)


# ----------------------------------------------------------------------------- point in time
def poison_after(frames: dict, cutoff: dt.date, seed: int = 99) -> dict:
    """Every row dated after `cutoff` altered: closes and volumes scrambled, members churned,
    new weights, LETF AUM, short interest published later."""
    rng = np.random.default_rng(seed)
    out = {k: v.copy() for k, v in frames.items()}
    b = out["bars"]
    late = b["trade_date"] > cutoff
    b.loc[late, "close"] *= rng.uniform(0.5, 2.0, late.sum())
    b.loc[late, "volume"] = rng.integers(1, 10**7, late.sum())
    m = out["index_members"]
    nxt = calendars.next_session(cutoff)
    out["index_members"] = pd.concat([m, pd.DataFrame([(INDEX, "S00", nxt + dt.timedelta(days=1), None),
                                                       (INDEX, "S39", nxt + dt.timedelta(days=3), None)],
                                                      columns=m.columns)], ignore_index=True)
    w = out["index_weights"]
    late = w["as_of"] > cutoff
    w.loc[late, "weight"] = rng.uniform(0, 1, late.sum())
    f = out["letf_funds"]
    late = f["trade_date"] > cutoff
    f.loc[late, "aum"] *= 10
    s = out["short_interest"]
    late = s["publish_date"] > cutoff
    s.loc[late, "shares_short"] = rng.integers(1, 10**9, late.sum())
    return out


CUTOFF = dt.date(2023, 3, 15)


@pytest.fixture(scope="module")
def poisoned_lake(tmp_path_factory, frames) -> Lake:
    return write_market(tmp_path_factory.mktemp("cx") / "poisoned", poison_after(frames, CUTOFF))


@pytest.mark.parametrize("family", ["dispersion", "momentum", "letf", "squeeze"])
def test_no_look_ahead_factor_for_d_unchanged_when_later_data_is_altered(rlake, poisoned_lake, family):
    spec = load_families()[family]
    lo, hi = dt.date(2023, 3, 1), dt.date(2023, 4, 28)
    clean = compute_range(rlake, spec, lo, hi)
    bad = compute_range(poisoned_lake, spec, lo, hi)
    key = ["factor", "entity", "trade_date"]
    before = lambda df: df[pd.to_datetime(df["trade_date"]) <= pd.Timestamp(CUTOFF)].sort_values(key).reset_index(drop=True)
    a, b = before(clean), before(bad)
    assert len(a) > 10
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    after_a = clean[pd.to_datetime(clean["trade_date"]) > pd.Timestamp(CUTOFF)].sort_values(key)["value"].to_numpy()
    after_b = bad[pd.to_datetime(bad["trade_date"]) > pd.Timestamp(CUTOFF)].sort_values(key)["value"].to_numpy()
    assert len(after_a) != len(after_b) or not np.array_equal(after_a, after_b)  # the poison did reach later dates


def test_deterministic_and_month_chunks_equal_one_range_bit_for_bit(rlake):
    lo, hi = dt.date(2023, 1, 1), dt.date(2023, 2, 28)
    whole = compute_range(rlake, dispersion.DISPERSION, lo, hi)
    again = compute_range(rlake, dispersion.DISPERSION, lo, hi)
    pd.testing.assert_frame_equal(whole, again, check_exact=True)
    lk = rlake  # only `factors` is written; the other tests compute from the inputs
    _, n = materialize(lk, "dispersion", start=lo, end=hi)  # month by month
    got = read_factor(lk, "realized_corr_21d", entity=INDEX)
    exp = rows_of(whole, "realized_corr_21d", INDEX)
    assert n == len(whole) and len(got) == 39
    assert np.array_equal(got["value"].to_numpy(), exp.to_numpy())
    materialize(lk, "dispersion", start=lo, end=hi)  # idempotent upsert
    assert read_factor(lk, "realized_corr_21d", entity=INDEX).equals(got)


def test_no_look_ahead_option_based_factors(lake_copy, small_lake):
    """implied_corr and the call-gamma part of squeeze read option_quotes: alter every quote
    and bar after the cutoff; nothing on or before it moves."""
    cutoff = dt.date(2023, 6, 14)
    lo, hi = dt.date(2023, 6, 1), dt.date(2023, 6, 30)
    q = lake_copy.read("option_quotes", where="trade_date > ? AND trade_date <= ?", params=[cutoff, hi])
    q["iv"] = q["iv"] * 1.7
    q["open_interest"] = q["open_interest"] * 3 + 1
    b = lake_copy.read("bars", where="trade_date > ?", params=[cutoff])
    b["close"] = b["close"] * 1.3
    b["volume"] = b["volume"] // 2
    with lake_copy.writer():
        lake_copy.write("option_quotes", q)
        lake_copy.write("bars", b)
    key = ["factor", "entity", "trade_date"]
    for family in ("implied_corr", "squeeze"):
        spec = load_families()[family]
        clean, bad = compute_range(small_lake, spec, lo, hi), compute_range(lake_copy, spec, lo, hi)
        cut = lambda df, before: df[(pd.to_datetime(df["trade_date"]) <= pd.Timestamp(cutoff)) == before].sort_values(key).reset_index(drop=True)
        assert len(cut(clean, True)) > 10
        pd.testing.assert_frame_equal(cut(clean, True), cut(bad, True), check_exact=True)
        assert not np.array_equal(cut(clean, False)["value"].to_numpy(), cut(bad, False)["value"].to_numpy())


def test_batched_comomentum_equals_the_per_date_definition(frames):
    px = frames["bars"].pivot(index="trade_date", columns="symbol", values="close").sort_index()
    close, idx = px.drop(columns=INDEX).to_numpy(copy=True), px[INDEX].to_numpy()
    close[400:420, 3] = np.nan  # a gap drops that name from windows that touch it
    winners, losers = momentum.quantile_groups(momentum.momentum_12_1(close), np.ones(close.shape, bool))
    rows = np.arange(260, len(px), 7)
    cw, cl = momentum.comomentum(close, idx, winners, losers, rows, block=16)
    lc, li = np.log(close), np.log(idx)
    checked = 0
    for t in rows:
        pts = np.arange(t - 260, t + 1, 5)
        wk, mk = np.diff(lc[pts], axis=0), np.diff(li[pts])
        for got, grp in ((cw[t], winners[t]), (cl[t], losers[t])):
            exp = momentum.mean_residual_correlation(wk[:, grp], mk)
            if np.isnan(exp):
                assert np.isnan(got)
            else:
                assert got == pytest.approx(exp, rel=1e-9, abs=1e-12)
                checked += 1
    assert checked > 100


def test_letf_flow_on_the_synthetic_market_equals_pandas(small_lake):
    """The synthetic market plants LETF rebalancing with the same formula; recompute it with
    pandas from its letf_funds and bars rows."""
    got = compute_range(small_lake, letf.LETF, dt.date(2023, 3, 1), dt.date(2023, 3, 31))
    f = small_lake.read("letf_funds")
    px = small_lake.read("bars", where="symbol = 'SYNX'").set_index("trade_date")["close"].sort_index()
    coef = (f["aum"] * f["leverage"] * (f["leverage"] - 1)).groupby(f["trade_date"]).sum().sort_index()
    exp = (coef.shift(1) * px.pct_change()).loc[dt.date(2023, 3, 1):dt.date(2023, 3, 31)]
    g = rows_of(got, "letf_rebalance_flow_usd", "SYNX")
    assert len(g) == len(exp) == 23
    np.testing.assert_allclose(g.to_numpy(), exp.to_numpy(), rtol=1e-9)
    assert (g.abs() > 1e6).all()  # billions of AUM: tens of millions of dollars a day or more
