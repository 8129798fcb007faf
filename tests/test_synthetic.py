"""Each planted mechanism of the synthetic market leaves its signature in the generated
tables (the default `small` scale, built in memory once for this module)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from eventvol.data_lake.synthetic import config_for, simulate
from eventvol.pipelines.positioning import gex_factor_rows


@pytest.fixture(scope="module")
def market():
    cfg = config_for("small")
    tables = simulate(cfg)
    quotes = tables["option_quotes"]
    gex = gex_factor_rows(quotes.sort_by([("underlying", "ascending"), ("trade_date", "ascending")]))
    gex = gex[gex["factor"] == "net_gex_per_1pct"].rename(columns={"entity": "symbol", "value": "gex"})
    gex["trade_date"] = pd.to_datetime(gex["trade_date"]).dt.date
    bars = tables["bars"].copy()
    bars["trade_date"] = pd.to_datetime(bars["trade_date"]).dt.date  # as the lake returns them
    tables["letf_funds"]["trade_date"] = pd.to_datetime(tables["letf_funds"]["trade_date"]).dt.date
    by = bars.groupby("symbol")
    bars["ret"] = by["close"].transform(lambda c: np.log(c / c.shift(1)))
    bars["gap"] = np.log(bars["open"] / by["close"].shift(1))
    bars["intraday"] = np.log(bars["close"] / bars["open"])
    bars["prev_gex"] = bars.merge(gex[["trade_date", "symbol", "gex"]], on=["trade_date", "symbol"], how="left")["gex"].to_numpy()
    bars["prev_gex"] = bars.groupby("symbol")["prev_gex"].shift(1)
    truth = tables["truth"].set_index("parameter")
    return cfg, tables, bars, truth


def _events(tables, kind):
    ev = tables["events"]
    return ev[ev["kind"] == kind].reset_index(drop=True)


def test_gex_feedback_gap_continuation(market):
    """Intraday move vs overnight gap: continuation after negative GEX, reversal after positive."""
    cfg, _, bars, _ = market
    b = bars.dropna(subset=["gap", "prev_gex"])
    slope = {}
    for name, part in (("neg", b[b.prev_gex < 0]), ("pos", b[b.prev_gex > 0])):
        slope[name] = np.polyfit(part["gap"], part["intraday"], 1)[0]
    planted = cfg.gap_continuation_negative_gex - cfg.gap_continuation_positive_gex
    assert slope["neg"] - slope["pos"] == pytest.approx(planted, abs=0.15)
    assert slope["neg"] > 0 > slope["pos"]


def test_earnings_jumps_scale_with_gex_and_iv_is_crushed(market):
    _, tables, bars, truth = market
    earn = _events(tables, "earnings")
    earn["move"] = [json.loads(p)["true_implied_move"] for p in earn["payload"]]
    r = earn.merge(bars, left_on=["symbol", "reaction_session"], right_on=["symbol", "trade_date"])
    r["scaled"] = r["ret"].abs() / r["move"]
    ratio = r.loc[r.prev_gex < 0, "scaled"].mean() / r.loc[r.prev_gex > 0, "scaled"].mean()
    assert ratio == pytest.approx(truth.loc["abs_move_ratio_negative_over_positive_gex", "value"], rel=0.3)
    assert 0.6 < r["scaled"].mean() < 1.6  # E|N(0,1)| = 0.8 times the regime scales
    # IV of the first expiry after the event, ATM: bid up before, crushed after
    q = tables["option_quotes"].to_pandas()
    sample = r.head(40)
    crushed = 0
    for row in sample.itertuples():
        before_day = bars.loc[(bars.symbol == row.symbol) & (bars.trade_date < row.reaction_session), "trade_date"].max()
        qq = q[(q.underlying == row.symbol) & q.trade_date.isin([before_day, row.reaction_session])
               & (q.expiration > row.reaction_session) & (q.option_type == "C")]
        exp = qq.expiration.min()
        atm = qq[qq.expiration == exp].assign(d=lambda x: (x.strike - x.underlying_price).abs())
        ivs = atm.sort_values("d").groupby("trade_date")["iv"].first()
        crushed += ivs.loc[before_day] > ivs.loc[row.reaction_session]
    assert crushed / len(sample) > 0.85


def test_macro_iv_crush_and_vanna_drift(market):
    cfg, tables, bars, truth = market
    macro = pd.concat([_events(tables, k) for k in ("CPI", "NFP", "FOMC")])
    idx = bars[bars.symbol == cfg.index].set_index("trade_date")
    release = idx.index.isin(macro["reaction_session"])
    assert idx.loc[release, "ret"].abs().mean() > 1.2 * idx.loc[~release, "ret"].abs().mean()  # jumps

    # IV: the first index expiry after the release, ATM, is bid before and crushed after
    q = tables["option_quotes"]
    import pyarrow.compute as pc

    iq = q.filter(pc.and_(pc.equal(q.column("underlying"), cfg.index), pc.equal(q.column("root"), cfg.index + "W"))).to_pandas()
    iq = iq[iq.option_type == "C"]
    days = list(idx.index)
    crushed, n = 0, 0
    for day in sorted(set(macro["reaction_session"]))[:30]:
        pos = days.index(day)
        before = days[pos - 1]
        rows = iq[iq.trade_date.isin([before, day]) & (iq.expiration > day)]
        exp = rows.expiration.min()
        atm = rows[rows.expiration == exp].assign(d=lambda x: (x.strike - x.underlying_price).abs())
        iv = atm.sort_values("d").groupby("trade_date")["iv"].first()
        crushed += iv.loc[before] > iv.loc[day]
        n += 1
    assert crushed / n > 0.85

    # vanna drift: release-session index return is lower when the index's net VEX at the
    # previous close is below its trailing 63-session median (VEX from the pipeline)
    rows = gex_factor_rows(q.filter(pc.equal(q.column("underlying"), cfg.index)))
    vex = rows[rows.factor == "net_vex_per_volpt"].set_index("trade_date")["value"]
    vex.index = pd.to_datetime(vex.index).date
    median = vex.rolling(63, min_periods=20).median()
    low = (vex < median).shift(1)  # regime at the previous close
    r = pd.DataFrame({"ret": idx["ret"], "low": low.reindex(idx.index)})[release].dropna()
    diff = r.loc[r.low.astype(bool), "ret"].mean() - r.loc[~r.low.astype(bool), "ret"].mean()
    planted = truth.loc["vanna_drift_low_vex", "value"] - truth.loc["vanna_drift_high_vex", "value"]
    assert diff < 0 and abs(diff - planted) < 0.008


def test_dispersion_ratio_reaches_about_seven_in_extreme_weeks(market):
    cfg, tables, bars, _ = market
    members = tables["index_members"]
    wide = bars.pivot(index="trade_date", columns="symbol", values="ret").iloc[1:]
    vol5 = wide.rolling(5).std()
    is_member = pd.DataFrame(False, index=wide.index, columns=wide.columns)
    for m in members.itertuples():
        end = m.end_date or wide.index[-1]
        is_member.loc[(wide.index >= m.start_date) & (wide.index <= end), m.symbol] = True
    ratio = (vol5.where(is_member).drop(columns=[cfg.index]).mean(axis=1) / vol5[cfg.index]).dropna()
    assert 1.5 < ratio.median() < 3.0
    assert ratio.quantile(0.99) > 5.5 and ratio.max() > 6.5


def test_momentum_crashes_happen_in_rebounds_and_hit_winners(market):
    cfg, tables, bars, truth = market
    crash_days = [pd.Timestamp(d).date() for d in json.loads(truth.loc["crashes", "description"])]
    assert len(crash_days) == truth.loc["crashes", "value"] >= 1
    wide = bars.pivot(index="trade_date", columns="symbol", values="close").drop(columns=[cfg.index])
    mom = np.log(wide.shift(22) / wide.shift(253).fillna(wide.iloc[0]))
    rets = np.log(wide / wide.shift(1))
    rank = mom.rank(axis=1, pct=True)
    wml = rets[rank > 2 / 3].mean(axis=1) - rets[rank < 1 / 3].mean(axis=1)
    wml = wml[mom.notna().sum(axis=1) > 10].dropna()
    on_crash = wml[wml.index.isin(crash_days)]
    assert len(on_crash) >= 1
    assert on_crash.mean() < -2.5 * wml.std()  # crashes are multi-sigma losses of winners vs losers
    assert (on_crash < wml.quantile(0.05)).all()


def test_letf_rebalance_flow_continues_into_next_session(market):
    cfg, tables, bars, truth = market
    letf = tables["letf_funds"]
    idx = bars[bars.symbol == cfg.index].set_index("trade_date")["close"]
    simple = idx.pct_change()
    aum_prev = letf.pivot(index="trade_date", columns="fund", values="aum").shift(1)
    lev = letf.groupby("fund")["leverage"].first()
    flow = (aum_prev * lev * (lev - 1)).sum(axis=1) * simple  # dollars, issue 5's definition
    nxt = np.log(idx.shift(-1) / idx)
    d = pd.DataFrame({"flow_bn": flow / 1e9, "next": nxt}).dropna()
    slope = np.polyfit(d["flow_bn"], d["next"], 1)[0]
    assert slope == pytest.approx(truth.loc["impact_per_billion", "value"], abs=0.0006)
    assert slope > 0


def test_squeezes_follow_high_short_interest_and_jump_up(market):
    _, tables, bars, truth = market
    squeezes = json.loads(truth.loc["squeezes", "description"])
    assert len(squeezes) >= 1
    si = tables["short_interest"]
    for sym, day in squeezes:
        day = pd.Timestamp(day).date()
        b = bars[bars.symbol == sym].set_index("trade_date")
        pos = b.index.get_loc(day)
        two_day = b["ret"].iloc[pos: pos + 2].sum()
        assert two_day > 0.10
        known = si[(si.symbol == sym) & (si.publish_date <= day)].sort_values("settlement_date")
        assert (known["shares_short"] / known["float_shares"]).iloc[-1] > 0.10


def test_disclosures_are_followed_by_two_negative_sessions(market):
    _, tables, bars, _ = market
    disc = _events(tables, "disclosure")
    assert len(disc) >= 3
    for row in disc.itertuples():
        b = bars[bars.symbol == row.symbol].set_index("trade_date")
        pos = b.index.get_loc(row.reaction_session)
        planted = json.loads(row.payload)["true_daily_abnormal_return"]
        assert b["ret"].iloc[pos: pos + 2].sum() < 2 * planted + 0.08  # -10%..-18% plus noise
        assert row.known_at == row.scheduled_ts  # nobody knew before the filing


def test_chains_have_0dte_every_session_and_evolving_open_interest(market):
    cfg, tables, _, _ = market
    q = tables["option_quotes"]
    idx = q.filter(pq_equal(q, "underlying", cfg.index)).to_pandas()
    per_day = idx.assign(zero_dte=idx.expiration == idx.trade_date).groupby("trade_date")["zero_dte"].any()
    assert per_day.all()
    zero_dte_share = idx.loc[idx.expiration == idx.trade_date, "volume"].sum() / idx["volume"].sum()
    assert zero_dte_share > 0.5  # SPX-like: most index option volume is same-day
    # open interest of one contract changes from day to day (customer flow)
    c = idx[(idx.root == cfg.index) & (idx.option_type == "P")]
    key = c.groupby(["expiration", "strike"])["open_interest"].agg(["nunique", "size"])
    assert (key["nunique"] > 5).mean() > 0.3
    # spreads widen away from the money and near expiry
    idx["spread"] = idx["ask"] - idx["bid"]
    idx["otm"] = np.abs(np.log(idx.strike / idx.underlying_price))
    near = idx[(idx.expiration > idx.trade_date)]
    assert near.loc[near.otm > 0.05, "spread"].mean() != near.loc[near.otm < 0.01, "spread"].mean()


def pq_equal(table, column, value):
    import pyarrow.compute as pc

    return pc.equal(table.column(column), value)
