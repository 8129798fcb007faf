"""The synthetic market: an index with dated members, stocks, events, option chains,
leveraged ETFs and short interest, with every motivating mechanism planted at a known
strength (see docs/synthetic.md for the equations and `truth` for the values).

Everything is a deterministic function of `SyntheticConfig` (seed included): all random
draws are made up front in a fixed order. The simulation walks session by session because
the mechanisms are feedbacks: session t's chain sets dealer GEX_t and VEX_t (architecture
convention: dealers long calls, short puts), which shape the return from t to t+1. Open
interest on session t's rows is the positions at the close of t-1 (the vendor rule).
Option rows are produced one month at a time (`simulate_stream`) so that large scales stay
within bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np
import pandas as pd
import pyarrow as pa

from eventvol.data_lake import calendars
from eventvol.data_lake.synthetic import events as ev
from eventvol.data_lake.synthetic.chains import (
    ChainBuilder, OpenInterestBook, contract_keys, contract_noise, iv_surface, quote, years_to_expiry,
)
from eventvol.data_lake.synthetic.config import SyntheticConfig, tickers
from eventvol.data_lake.synthetic.pricing import bs_price_gamma_vanna

MULTIPLIER = 100
VENDOR = "synthetic"
NIGHT_SHARE = 0.3  # share of diffusive variance realized overnight (close -> open)
SQRT252 = np.sqrt(252.0)


class _Universe:
    """Static, seed-drawn properties of the stocks; underlyings 0..n-1 are stocks, n the index."""

    def __init__(self, cfg: SyntheticConfig, rng: np.random.Generator):
        n = cfg.n_stocks
        self.symbols = tickers(n)
        self.names = self.symbols + [cfg.index]
        self.price0 = np.round(np.exp(rng.uniform(np.log(30), np.log(600), n)), 2)
        self.shares = np.exp(rng.uniform(np.log(2e8), np.log(5e9), n))
        self.beta = rng.uniform(0.7, 1.4, n)
        self.idio_vol = rng.uniform(0.15, 0.40, n)
        self.iv_premium = rng.uniform(1.02, 1.15, n)
        # contracts of customer flow per session at the demand peak
        self.flow_scale = np.append(np.round(rng.uniform(200, 2000, n)), 1500.0)
        self.si_base = rng.uniform(0.01, 0.06, n)
        self.squeeze = rng.choice(np.arange(cfg.n_members, n) if n - cfg.n_members >= cfg.n_squeeze_candidates
                                  else np.arange(n), size=min(cfg.n_squeeze_candidates, n), replace=False)


def _members(cfg: SyntheticConfig, symbols, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Members 0..n_members-1 from the start; halfway, the last two original members leave
    and the first two non-members join (a dated change, as in a real index)."""
    mid = sessions[len(sessions) // 2].date()
    start = sessions[0].date()
    rows = []
    for i, sym in enumerate(symbols):
        if i < cfg.n_members - 2:
            rows.append((cfg.index, sym, start, None))
        elif i < cfg.n_members:
            rows.append((cfg.index, sym, start, calendars.previous_session(mid)))
        elif i < cfg.n_members + 2:
            rows.append((cfg.index, sym, mid, None))
    out = pd.DataFrame(rows, columns=["index", "symbol", "start_date", "end_date"])
    # point in time: each membership is known at the open of its start date (members-csv's default)
    out["known_at"] = [calendars.market_time_utc(d, "09:30") for d in out["start_date"]]
    return out


def _member_mask(members: pd.DataFrame, symbols, sessions: pd.DatetimeIndex) -> np.ndarray:
    mask = np.zeros((len(sessions), len(symbols)), bool)
    pos = {s: i for i, s in enumerate(symbols)}
    d = sessions.values.astype("datetime64[D]")
    for r in members.itertuples(index=False):
        hi = np.datetime64(r.end_date, "D") if r.end_date is not None else d[-1]
        mask[:, pos[r.symbol]] |= (d >= np.datetime64(r.start_date, "D")) & (d <= hi)
    return mask


def _drift_schedule(cfg: SyntheticConfig, n_t: int) -> np.ndarray:
    mu = np.zeros(n_t)
    for lo, hi, annual in cfg.market_drift_schedule:
        mu[int(lo * n_t): int(hi * n_t)] = annual / 252.0
    return mu


def _next_event_index(sd: np.ndarray) -> np.ndarray:
    """For each session t (and column), the index of the next session > t with a nonzero
    jump, or len(sd) if none."""
    n_t = sd.shape[0]
    out = np.full(sd.shape, n_t, dtype=np.int64)
    nxt = np.full(sd.shape[1:], n_t, dtype=np.int64)
    for t in range(n_t - 1, -1, -1):
        out[t] = nxt
        nxt = np.where(sd[t] != 0, t, nxt)
    return out


class _Draws:
    """Every random number of the simulation, drawn once in a fixed order."""

    def __init__(self, rng: np.random.Generator, n_t: int, n_s: int, n_sq: int):
        n_u = n_s + 1
        self.mkt = rng.standard_normal((n_t, 2))  # night, day
        self.idio = rng.standard_normal((n_t, n_s, 2))
        self.earn = rng.standard_normal((n_t, n_s))
        self.macro = rng.standard_normal(n_t)
        self.wml = rng.standard_normal(n_t)
        self.crash = rng.random(n_t)
        self.disp = rng.random(n_t)
        self.level = rng.standard_normal((n_t, n_u, 2))
        self.vol_noise = rng.standard_normal((n_t, n_u))
        self.bar = rng.standard_normal((n_t, n_u, 3))
        self.squeeze_start = rng.uniform(0.15, 0.55, n_sq)
        self.squeeze_peak = rng.uniform(0.20, 0.35, n_sq)
        self.squeeze_u = rng.random((n_t, n_sq))
        self.squeeze_jump = rng.random((n_t, n_sq))
        self.si_noise = rng.standard_normal((n_t, n_s))


class _Market:
    """The session-by-session state of the simulation."""

    def __init__(self, cfg: SyntheticConfig):
        self.cfg = cfg
        rng = np.random.default_rng(cfg.seed)
        self.sessions = calendars.sessions(cfg.start, cfg.end)
        self.n_t, self.n_s = len(self.sessions), cfg.n_stocks
        n_t, n_s, n_u = self.n_t, self.n_s, self.n_s + 1
        self.uni = _Universe(cfg, rng)
        self.members = _members(cfg, self.uni.symbols, self.sessions)
        self.member_mask = _member_mask(self.members, self.uni.symbols, self.sessions)
        self.events = pd.concat([
            ev.earnings(cfg, self.uni.symbols, self.sessions, rng),
            ev.macro(cfg, self.sessions),
            ev.disclosures(cfg, self.uni.symbols[: cfg.n_members - 2], self.sessions, rng),
        ], ignore_index=True)
        self.earn_sd, self.macro_sd = ev.jump_schedule(self.events, self.sessions, self.uni.symbols)
        fomc = {r.reaction_session for r in self.events.itertuples() if r.kind == "FOMC"}
        self.macro_intraday = np.array([d.date() in fomc for d in self.sessions])
        self.disclosure = ev.disclosure_returns(self.events, self.sessions, self.uni.symbols)
        self.jump_sd = np.append(self.earn_sd, self.macro_sd[:, None], axis=1)  # (session, underlying)
        self.next_earn = _next_event_index(self.earn_sd)
        self.next_macro = _next_event_index(self.macro_sd[:, None])[:, 0]
        self.z = _Draws(rng, n_t, n_s, len(self.uni.squeeze))
        self.mu_m = _drift_schedule(cfg, n_t)
        self.builder = ChainBuilder(cfg, self.sessions)
        self.book = OpenInterestBook(cfg.oi_persistence)
        # paths
        self.close = np.empty((n_t, n_u))
        self.open = np.empty((n_t, n_u))
        self.close[0, :n_s] = self.open[0, :n_s] = self.uni.price0
        self.close[0, n_s] = self.open[0, n_s] = cfg.index_level
        self.gex = np.zeros((n_t, n_u))
        self.vex = np.zeros((n_t, n_u))
        self.vol_mult = np.ones((n_t, n_u))
        self.wml = np.zeros(n_t)
        self.loadings = np.zeros((n_t, n_s))
        self.crash = np.zeros(n_t, bool)
        self.hazard = np.zeros(n_t)  # crash probability of each session (recorded for `truth`)
        self.disp = np.zeros(n_t, bool)
        self.rebound = np.zeros(n_t, bool)
        self.letf_aum = np.zeros((n_t, len(cfg.letf_funds)))
        self.letf_aum[0] = [a for _, _, a in cfg.letf_funds]
        self.letf_flow = np.zeros(n_t)
        self.si_frac = np.tile(self.uni.si_base, (n_t, 1))
        self.call_boost = np.zeros((n_t, n_s))
        self.squeeze_jump = np.zeros((n_t, n_s))
        self.squeeze_phase = np.zeros(len(self.uni.squeeze), int)  # 0 idle, 1 building, 2 done
        self.squeeze_sessions: list[tuple[str, str]] = []
        self.log_level = np.zeros((n_u, 2))
        self.log_level[:, 1] = 0.15  # customers demand somewhat more puts than calls

    # ------------------------------------------------------------------ regimes (known at t-1)
    def _momentum_loadings(self, t: int) -> np.ndarray:
        """12-1 momentum from closes up to t-1, ranked to [-1, 1] and cap-weight demeaned
        over members so the rotation factor leaves the index (nearly) untouched."""
        hi = t - 1 - 21
        lo = max(t - 1 - 252, 0)
        if hi - lo < 21:
            return np.zeros(self.n_s)
        mom = np.log(self.close[hi, : self.n_s] / self.close[lo, : self.n_s])
        ranks = (np.argsort(np.argsort(mom)) / (self.n_s - 1)) * 2 - 1
        cap = self.uni.shares * self.close[t - 1, : self.n_s] * self.member_mask[t - 1]
        return ranks - np.sum(cap * ranks) / cap.sum()

    def _crash_hazard(self, t: int) -> float:
        cfg = self.cfg
        idx = self.close[: t, self.n_s]
        bear = t > 126 and idx[-1] < idx[-127]
        self.rebound[t] = bear and t > 6 and idx[-1] > idx[-6]
        window = self.wml[max(1, t - 63): t]
        crowd = window.sum() / (max(cfg.wml_vol_daily, 1e-12) * np.sqrt(max(len(window), 1)))
        crowd_prob = 1.0 / (1.0 + np.exp(-2.0 * np.clip(crowd, -3, 3)))
        return cfg.crash_hazard_base + self.rebound[t] * cfg.crash_hazard_rebound * crowd_prob * (1 + self.disp[t])

    def _update_squeezes(self, t: int) -> None:
        cfg, z = self.cfg, self.z
        for k, i in enumerate(self.uni.squeeze):
            start = int(z.squeeze_start[k] * self.n_t)
            if self.squeeze_phase[k] == 0 and t >= start:
                self.squeeze_phase[k] = 1
            if self.squeeze_phase[k] == 1:
                ramp = min((t - start) / 60.0, 1.0)
                self.si_frac[t:, i] = self.uni.si_base[i] + ramp * (z.squeeze_peak[k] - self.uni.si_base[i])
                self.call_boost[t, i] = 1.0 * ramp  # customers pile into calls as shorts build
                if self.si_frac[t, i] > cfg.squeeze_si_threshold and z.squeeze_u[t, k] < cfg.squeeze_hazard:
                    jumps = cfg.squeeze_jump_lo + (cfg.squeeze_jump_hi - cfg.squeeze_jump_lo) * z.squeeze_jump[t: t + 2, k]
                    self.squeeze_jump[t: t + 2, i] += jumps
                    self.squeeze_phase[k] = 2
                    self.squeeze_sessions.append((self.uni.symbols[i], str(self.sessions[t].date())))
                    decay = np.linspace(1.0, 0.4, 10)
                    peak = self.si_frac[t, i]
                    self.si_frac[t: t + 10, i] = peak * decay[: len(self.si_frac[t: t + 10])]
                    self.si_frac[t + 10:, i] = 0.4 * peak

    def low_vex(self, t: int) -> bool:
        """Index net VEX at session t's close below its median over the trailing 63 sessions
        (t included); below zero when there is too little history."""
        window = self.vex[max(0, t - 62): t + 1, self.n_s]
        return bool(self.vex[t, self.n_s] < (np.median(window) if len(window) >= 20 else 0.0))

    # ------------------------------------------------------------------ one session's returns
    def step_returns(self, t: int) -> None:
        cfg, z, n_s, uni = self.cfg, self.z, self.n_s, self.uni
        mult = np.where(self.gex[t - 1] < 0, cfg.vol_mult_negative_gex, cfg.vol_mult_positive_gex)
        phi = np.where(self.gex[t - 1] < 0, cfg.gap_continuation_negative_gex, cfg.gap_continuation_positive_gex)
        self.vol_mult[t] = mult
        p_switch = cfg.dispersion_p_exit if self.disp[t - 1] else cfg.dispersion_p_enter
        self.disp[t] = self.disp[t - 1] ^ (z.disp[t] < p_switch)
        dm = cfg.dispersion_market_mult if self.disp[t] else 1.0
        di = cfg.dispersion_idio_mult if self.disp[t] else 1.0
        sigma_f = cfg.wml_vol_daily * (cfg.dispersion_rotation_mult if self.disp[t] else 1.0)
        self.loadings[t] = self._momentum_loadings(t)
        self.hazard[t] = self._crash_hazard(t)
        self.crash[t] = z.crash[t] < self.hazard[t]
        self.wml[t] = cfg.momentum_premium_daily + sigma_f * z.wml[t] - self.crash[t] * cfg.crash_size_sd * sigma_f
        self._update_squeezes(t)

        # market factor: GEX regime vol, dispersion regime, macro jumps, vanna drift, LETF flow
        sm = cfg.market_vol / SQRT252 * mult[n_s] * dm
        macro_jump = self.macro_sd[t] * z.macro[t]
        m_night = sm * np.sqrt(NIGHT_SHARE) * z.mkt[t, 0] + (0.0 if self.macro_intraday[t] else macro_jump)
        m_day = sm * np.sqrt(1 - NIGHT_SHARE) * z.mkt[t, 1] + self.mu_m[t] + (macro_jump if self.macro_intraday[t] else 0.0)
        if self.macro_sd[t] > 0:
            m_day += cfg.vanna_drift_low_vex if self.low_vex(t - 1) else cfg.vanna_drift_high_vex
        m_day += cfg.letf_impact_per_billion * self.letf_flow[t - 1] / 1e9
        m_day += phi[n_s] * m_night  # late-session continuation (or reversal) of the gap

        si = uni.idio_vol / SQRT252 * mult[:n_s] * di
        e_night = si * np.sqrt(NIGHT_SHARE) * z.idio[t, :, 0]
        e_day = si * np.sqrt(1 - NIGHT_SHARE) * z.idio[t, :, 1]
        jumps = self.earn_sd[t] * mult[:n_s] * z.earn[t] + self.disclosure[t]
        idio_gap = e_night + jumps
        gap = uni.beta * m_night + idio_gap
        day = uni.beta * m_day + e_day + self.loadings[t] * self.wml[t] + self.squeeze_jump[t] + phi[:n_s] * idio_gap
        self.open[t, :n_s] = self.close[t - 1, :n_s] * np.exp(gap)
        self.close[t, :n_s] = self.open[t, :n_s] * np.exp(day)

        w = uni.shares * self.close[t - 1, :n_s] * self.member_mask[t - 1]
        w = w / w.sum()
        self.open[t, n_s] = self.close[t - 1, n_s] * np.sum(w * np.exp(gap))
        self.close[t, n_s] = self.close[t - 1, n_s] * np.sum(w * np.exp(gap + day))
        r_idx = self.close[t, n_s] / self.close[t - 1, n_s] - 1.0
        lev = np.array([lv for _, lv, _ in cfg.letf_funds])
        self.letf_flow[t] = np.sum(self.letf_aum[t - 1] * lev * (lev - 1) * r_idx)
        # investors' creations and redemptions pull AUM back toward its base size and keep it
        # within [0.2, 3] x base: the flow feedback (impact x sum AUM L(L-1)) then stays well
        # below 1 and the market cannot spiral (a -3x fund would otherwise compound without
        # bound in a falling market)
        grown = self.letf_aum[t - 1] * np.maximum(1 + lev * r_idx, 0.05)
        base = self.letf_aum[0]
        self.letf_aum[t] = np.clip(grown + 0.05 * (base - grown), 0.2 * base, 3.0 * base)
        self.log_level = 0.97 * self.log_level + 0.08 * z.level[t - 1] + 0.03 * np.array([0.0, 0.15])

    # ------------------------------------------------------------------ one session's chain
    def _atm_vol(self, t: int) -> np.ndarray:
        cfg, uni, n_s = self.cfg, self.uni, self.n_s
        mult = self.vol_mult[t]
        dm = cfg.dispersion_market_mult if self.disp[t] else 1.0
        di = cfg.dispersion_idio_mult if self.disp[t] else 1.0
        sigma_f = cfg.wml_vol_daily * (cfg.dispersion_rotation_mult if self.disp[t] else 1.0) * SQRT252
        market = cfg.market_vol * mult[n_s] * dm
        stocks = np.sqrt((uni.idio_vol * mult[:n_s] * di) ** 2 + (uni.beta * market) ** 2
                         + (self.loadings[t] * sigma_f) ** 2) * uni.iv_premium
        return np.append(stocks, market * 1.10) * (1 + 0.05 * self.z.vol_noise[t])

    def _jump_var(self, t: int, u: np.ndarray, expiration: np.ndarray) -> np.ndarray:
        """Variance of the next scheduled jump (earnings for stocks, macro for the index)
        on every row whose expiry spans it."""
        nxt = np.append(self.next_earn[t], self.next_macro[t])[u]
        at = np.minimum(nxt, self.n_t - 1)
        spans = (nxt < self.n_t) & (expiration >= self.builder.sess[at])
        return np.where(spans, self.jump_sd[at, u] ** 2, 0.0)

    def chain(self, t: int) -> dict[str, np.ndarray]:
        cfg, n_s, d = self.cfg, self.n_s, self.builder.sess[t]
        spot_now = self.close[t]
        s = self.builder.stock_contracts(t, spot_now[:n_s])
        x = self.builder.index_contracts(t, spot_now[n_s], n_s)
        c = {k: np.concatenate([s[k], x[k]]) for k in s}
        u, is_call = c["u"], c["is_call"]
        t_years = years_to_expiry(d, c["expiration"], c["is_am"])
        spot = spot_now[u]
        skew = np.where(u == n_s, -0.18, -0.08)
        iv = iv_surface(self._atm_vol(t)[u], spot, c["strike"], t_years, self._jump_var(t, u, c["expiration"]), skew)
        price, gamma, vanna = bs_price_gamma_vanna(spot, c["strike"], t_years, iv, is_call)
        keys = contract_keys(u, c["expiration"], c["strike"], is_call, c["is_am"])
        noise = contract_noise(keys, cfg.seed)
        # customer demand: OTM calls above spot, protective puts below, persistent levels
        center = spot * np.where(is_call, 1.03, 0.95)
        width = np.where(u == n_s, 0.04, 0.10)
        profile = np.exp(-0.5 * (np.log(c["strike"] / center) / width) ** 2)
        boost = np.where(is_call & (u < n_s), np.append(self.call_boost[t], 0.0)[u], 0.0)
        level = np.exp(self.log_level[u, np.where(is_call, 0, 1)] + boost)
        zero_dte = c["expiration"] == d
        demand = self.uni.flow_scale[u] * level * profile * c["kind_weight"] * noise * np.where(zero_dte, 45.0, 1.0)
        volume = np.round(demand).astype(np.int64)
        published = self.book.published(keys)
        self.book.trade(keys, published, np.where(t_years > 0, 0.5 * volume, 0.0))
        oi = np.round(published).astype(np.int64)
        sign = np.where(is_call, 1.0, -1.0)
        self.gex[t] = np.bincount(u, weights=sign * gamma * oi * MULTIPLIER * spot**2 * 0.01, minlength=n_s + 1)
        self.vex[t] = np.bincount(u, weights=sign * vanna * oi * MULTIPLIER * spot * 0.01, minlength=n_s + 1)
        bid, ask = quote(price, t_years, np.log(c["strike"] / spot))
        return dict(c, t=np.full(len(u), t, np.int32), iv=iv, bid=bid, ask=ask, oi=oi, volume=volume, spot=spot)

    # ------------------------------------------------------------------ tables
    def quotes_table(self, chains: list[dict]) -> pa.Table:
        c = {k: np.concatenate([ch[k] for ch in chains]) for k in chains[0]}
        cfg = self.cfg
        names = np.array(self.uni.names, dtype=object)
        roots = np.array(self.uni.symbols + [cfg.index + "W"], dtype=object)[c["u"]]
        roots = np.where(c["is_am"], cfg.index, roots)
        days = self.builder.sess
        t_unique = np.unique(c["t"])
        close_us = {t: calendars.session_close_utc(self.sessions[t]).value // 1000 for t in t_unique}
        quote_ts = np.array([close_us[t] for t in t_unique])[np.searchsorted(t_unique, c["t"])]
        n = len(c["u"])
        ts_type = pa.timestamp("us", tz="UTC")
        return pa.table({
            "trade_date": pa.array(days[c["t"]], pa.date32()),
            "quote_ts": pa.array(quote_ts, ts_type),
            "available_ts": pa.array(quote_ts + 15 * 60 * 1_000_000, ts_type),
            "underlying": pa.array(names[c["u"]], pa.string()),
            "root": pa.array(roots, pa.string()),
            "expiration": pa.array(c["expiration"], pa.date32()),
            "settlement": pa.array(np.where(c["is_am"], "AM", "PM"), pa.string()),
            "strike": pa.array(c["strike"], pa.float64()),
            "option_type": pa.array(np.where(c["is_call"], "C", "P"), pa.string()),
            "bid": pa.array(c["bid"]),
            "ask": pa.array(c["ask"]),
            "volume": pa.array(c["volume"]),
            "open_interest": pa.array(c["oi"]),
            "iv": pa.array(np.round(c["iv"], 6)),
            "underlying_price": pa.array(np.round(c["spot"], 4)),
            "multiplier": pa.array(np.full(n, MULTIPLIER, np.int32)),
            "vendor": pa.array(np.full(n, VENDOR, dtype=object), pa.string()),
            "ingest_id": pa.array(np.full(n, f"synthetic-seed{cfg.seed}", dtype=object), pa.string()),
        })

    def bars(self) -> pd.DataFrame:
        n_t, n_u = self.close.shape
        close = np.round(self.close, 4)
        open_ = np.round(self.open, 4)
        daily = np.append(self.uni.idio_vol, self.cfg.market_vol) / SQRT252
        high = np.maximum(open_, close) * np.exp(np.abs(self.z.bar[:, :, 1]) * daily * 0.3)
        low = np.minimum(open_, close) * np.exp(-np.abs(self.z.bar[:, :, 2]) * daily * 0.3)
        volume = np.round(1e6 * np.exp(0.3 * self.z.bar[:, :, 0])).astype(np.int64)
        return pd.DataFrame({
            "trade_date": np.repeat(self.sessions.values.astype("datetime64[D]"), n_u),
            "symbol": np.tile(np.array(self.uni.names, dtype=object), n_t),
            "open": open_.ravel(), "high": np.round(high, 4).ravel(), "low": np.round(low, 4).ravel(),
            "close": close.ravel(), "volume": volume.ravel(),
        })

    def weights(self) -> pd.DataFrame:
        """Cap weights as of the first session of each month (closes of the session before),
        known at 08:00 ET that morning."""
        rows = []
        sessions = self.sessions
        for d in pd.Series(sessions).groupby(sessions.to_period("M")).first():
            t = sessions.get_loc(d)
            cap = self.uni.shares * self.close[max(t - 1, 0), : self.n_s] * self.member_mask[t]
            w = cap / cap.sum()
            for i in np.flatnonzero(self.member_mask[t]):
                rows.append((self.cfg.index, self.uni.symbols[i], d.date(), float(w[i]),
                             calendars.market_time_utc(d, "08:00")))
        return pd.DataFrame(rows, columns=["index", "symbol", "as_of", "weight", "known_at"])

    def letf(self) -> pd.DataFrame:
        cfg = self.cfg
        days = self.sessions.values.astype("datetime64[D]")
        parts = [pd.DataFrame({"trade_date": days, "fund": fund, "benchmark": cfg.index, "leverage": lev,
                               "aum": np.round(self.letf_aum[:, k], 2)})
                 for k, (fund, lev, _) in enumerate(cfg.letf_funds)]
        return pd.concat(parts, ignore_index=True)

    def short_interest(self) -> pd.DataFrame:
        """Twice-monthly settlement (mid-month and month end), published 8 sessions later."""
        rows = []
        sess = self.sessions
        floats = np.round(self.uni.shares * 0.9).astype(np.int64)
        for period in pd.period_range(sess[0], sess[-1], freq="M"):
            for day in (pd.Timestamp(period.year, period.month, 15), period.end_time.normalize()):
                settle = calendars.session_on_or_before(day)
                t = sess.searchsorted(pd.Timestamp(settle))
                if t >= self.n_t or sess[t].date() != settle or t + 8 >= self.n_t:
                    continue
                frac = np.clip(self.si_frac[t] * (1 + 0.03 * self.z.si_noise[t]), 0.001, 0.9)
                for i, sym in enumerate(self.uni.symbols):
                    rows.append((settle, sess[t + 8].date(), sym, int(frac[i] * floats[i]), int(floats[i])))
        return pd.DataFrame(rows, columns=["settlement_date", "publish_date", "symbol", "shares_short", "float_shares"])

    def _mean_hazard(self, sel: np.ndarray) -> float:
        """Mean crash probability over the selected sessions (session 0 has no return)."""
        sel = sel.copy()
        sel[0] = False
        return float(self.hazard[sel].mean()) if sel.any() else float("nan")

    def session_vol_estimand(self) -> float:
        """What H1's session regression estimates on this sample, from the simulator's own
        conditional variances instead of squared returns: log of each stock-session's diffusive
        close-to-close variance (market part x beta^2 with the index's GEX multiplier and gap
        continuation, own part with the stock's, rotation part loading^2 x rotation variance,
        each in its dispersion regime) regressed on the dummies (stock and index net GEX at the
        previous close both < 0, stock only, index only) with stock fixed effects, outside
        earnings reaction sessions; exp(b_both / 2). Regimes that happen to coincide with the
        GEX signs in a finite sample move it away from the planted ratio (and from 1 with the
        feedback off): this, not the structural ratio, is what the estimator's interval should
        cover."""
        cfg, n_s, uni = self.cfg, self.n_s, self.uni
        earn = self.events[self.events["kind"] == "earnings"]
        earn_days = set(zip(earn["symbol"], pd.to_datetime(earn["reaction_session"])))
        sym_index = {s: i for i, s in enumerate(uni.symbols)}
        skip = np.zeros((self.n_t, n_s), bool)
        pos = self.sessions.get_indexer(pd.DatetimeIndex([d for _, d in earn_days]))
        for (sym, _), t in zip(earn_days, pos):
            if t >= 0 and sym in sym_index:
                skip[t, sym_index[sym]] = True
        ts = np.arange(1, self.n_t)
        neg = self.gex[ts - 1] < 0
        phi = np.where(neg, cfg.gap_continuation_negative_gex, cfg.gap_continuation_positive_gex)
        cont = NIGHT_SHARE * (1 + phi) ** 2 + 1 - NIGHT_SHARE
        disp = self.disp[ts][:, None]
        dm = np.where(disp, cfg.dispersion_market_mult, 1.0)
        di = np.where(disp, cfg.dispersion_idio_mult, 1.0)
        sigma_f = cfg.wml_vol_daily * np.where(disp, cfg.dispersion_rotation_mult, 1.0)
        mult = self.vol_mult[ts]
        var_m = (cfg.market_vol / SQRT252 * mult[:, [n_s]] * dm) ** 2 * cont[:, [n_s]]
        var = (uni.beta ** 2 * var_m + (uni.idio_vol / SQRT252 * mult[:, :n_s] * di) ** 2 * cont[:, :n_s]
               + (self.loadings[ts] * sigma_f) ** 2)
        keep = ~skip[ts]
        s_neg, m_neg = neg[:, :n_s], np.repeat(neg[:, [n_s]], n_s, axis=1)
        x = np.column_stack([(s_neg & m_neg)[keep], (s_neg & ~m_neg)[keep], (~s_neg & m_neg)[keep]]).astype(float)
        stock = np.broadcast_to(np.arange(n_s), keep.shape)[keep]
        design = np.column_stack([x, (stock[:, None] == np.arange(n_s)).astype(float)])
        coef = np.linalg.lstsq(design, np.log(var[keep]), rcond=None)[0]
        return float(np.exp(coef[0] / 2))

    def truth(self) -> pd.DataFrame:
        cfg = self.cfg
        c = asdict(cfg)
        rows = [
            ("gex_feedback", "vol_mult_negative_gex", cfg.vol_mult_negative_gex, "next-session vol scale when net GEX < 0"),
            ("gex_feedback", "vol_mult_positive_gex", cfg.vol_mult_positive_gex, "next-session vol scale when net GEX >= 0"),
            ("gex_feedback", "vol_ratio_negative_over_positive", cfg.vol_mult_negative_gex / cfg.vol_mult_positive_gex, "planted vol ratio"),
            ("gex_feedback", "close_to_close_vol_ratio_negative_over_positive",
             cfg.vol_mult_negative_gex / cfg.vol_mult_positive_gex
             * np.sqrt((NIGHT_SHARE * (1 + cfg.gap_continuation_negative_gex) ** 2 + 1 - NIGHT_SHARE)
                       / (NIGHT_SHARE * (1 + cfg.gap_continuation_positive_gex) ** 2 + 1 - NIGHT_SHARE)),
             ("ratio of diffusive close-to-close vol after negative over positive GEX: the vol "
              "multiplier times the intraday continuation of the overnight share of variance")),
            ("gex_feedback", "session_vol_ratio_estimand", self.session_vol_estimand(),
             "what H1's session vol ratio estimates on this sample: its regression on the simulator's own "
             "conditional variances (both GEX negative / both positive)"),
            ("gex_feedback", "gap_continuation_negative_gex", cfg.gap_continuation_negative_gex, "intraday += k x overnight gap, net GEX < 0"),
            ("gex_feedback", "gap_continuation_positive_gex", cfg.gap_continuation_positive_gex, "intraday += k x overnight gap, net GEX >= 0"),
            ("gex_feedback", "index_share_negative_gex_sessions", float((self.gex[:, -1] < 0).mean()), "realized share of sessions"),
            ("earnings", "implied_move_lo", cfg.earnings_move_lo, "lower bound of true implied moves"),
            ("earnings", "implied_move_hi", cfg.earnings_move_hi, "upper bound of true implied moves"),
            ("earnings", "jump_scaled_by_gex_regime", 1.0, "earnings jump stdev x the GEX-regime vol multiplier"),
            ("earnings", "abs_move_ratio_negative_over_positive_gex",
             cfg.vol_mult_negative_gex * (1 + cfg.gap_continuation_negative_gex)
             / (cfg.vol_mult_positive_gex * (1 + cfg.gap_continuation_positive_gex)),
             "E|reaction-session jump| under negative over positive GEX: the regime vol multiplier "
             "times the intraday continuation of the overnight jump"),
            ("macro", "move_cpi", cfg.macro_move_cpi, "index jump stdev on CPI sessions"),
            ("macro", "move_nfp", cfg.macro_move_nfp, "index jump stdev on NFP sessions"),
            ("macro", "move_fomc", cfg.macro_move_fomc, "index jump stdev on FOMC sessions"),
            ("macro", "vanna_drift_low_vex", cfg.vanna_drift_low_vex,
             "index drift on release sessions when net VEX is below its trailing 63-session median"),
            ("macro", "vanna_drift_high_vex", cfg.vanna_drift_high_vex, "index drift on release sessions otherwise"),
            ("momentum", "premium_daily", cfg.momentum_premium_daily, "mean daily return of the rotation (WML) factor"),
            ("momentum", "wml_vol_daily", cfg.wml_vol_daily, "daily vol of the rotation factor, normal regime"),
            ("momentum", "crash_size_sd", cfg.crash_size_sd, "crash = -k x current rotation vol"),
            ("momentum", "crash_hazard_base", cfg.crash_hazard_base, "daily crash probability outside rebounds"),
            ("momentum", "crash_hazard_rebound", cfg.crash_hazard_rebound, "extra daily hazard in rebound states x crowding"),
            ("momentum", "crashes", float(self.crash.sum()),
             json.dumps([str(self.sessions[t].date()) for t in np.flatnonzero(self.crash)])),
            ("momentum", "rebound_share", float(self.rebound.mean()), "realized share of rebound-state sessions"),
            ("momentum", "crash_hazard_mean_rebound", self._mean_hazard(self.rebound),
             "mean crash probability over rebound-state sessions"),
            ("momentum", "crash_hazard_mean_other", self._mean_hazard(~self.rebound),
             "mean crash probability over the other sessions from the second on"),
            ("dispersion", "high_regime_share", float(self.disp.mean()), "realized share of high-dispersion sessions"),
            ("dispersion", "rotation_mult", cfg.dispersion_rotation_mult, "rotation vol multiplier in high dispersion"),
            ("dispersion", "idio_mult", cfg.dispersion_idio_mult, "idiosyncratic vol multiplier in high dispersion"),
            ("dispersion", "market_mult", cfg.dispersion_market_mult, "market vol multiplier in high dispersion"),
            ("letf", "impact_per_billion", cfg.letf_impact_per_billion, "next-session index log return per $1B of rebalance flow"),
            ("squeeze", "si_threshold", cfg.squeeze_si_threshold, "short interest / float above which squeezes start"),
            ("squeeze", "jump_mean_per_session", (cfg.squeeze_jump_lo + cfg.squeeze_jump_hi) / 2, "two sessions of upside jumps"),
            ("squeeze", "squeezes", float(len(self.squeeze_sessions)), json.dumps(self.squeeze_sessions)),
            ("disclosure", "daily_abnormal_return_mean", (cfg.disclosure_daily_lo + cfg.disclosure_daily_hi) / 2,
             "two sessions after each disclosure"),
            ("market", "index_base_vol", cfg.market_vol, "annualized vol of the market factor"),
            ("config", "seed", float(cfg.seed), json.dumps(c, sort_keys=True, default=str)),
        ]
        # a sample without rebound sessions has no mean hazard there: the row is left out
        rows = [r for r in rows if not (r[0] == "momentum" and r[1].startswith("crash_hazard_mean") and np.isnan(r[2]))]
        return pd.DataFrame(rows, columns=["mechanism", "parameter", "value", "description"])


def simulate_stream(cfg: SyntheticConfig = SyntheticConfig()) -> Iterator[tuple[str, pd.DataFrame | pa.Table]]:
    """Yield ("option_quotes", one month) as the simulation walks forward, then every other
    table once. Memory holds one month of option rows at a time."""
    mk = _Market(cfg)
    month = None
    chains: list[dict] = []
    for t in range(mk.n_t):
        if t > 0:
            mk.step_returns(t)
        this_month = (mk.sessions[t].year, mk.sessions[t].month)
        if month is not None and this_month != month and chains:
            yield "option_quotes", mk.quotes_table(chains)
            chains = []
        month = this_month
        chains.append(mk.chain(t))
    if chains:
        yield "option_quotes", mk.quotes_table(chains)
    yield "index_members", mk.members
    yield "index_weights", mk.weights()
    yield "events", mk.events
    yield "bars", mk.bars()
    yield "letf_funds", mk.letf()
    yield "short_interest", mk.short_interest()
    yield "truth", mk.truth()


def simulate(cfg: SyntheticConfig = SyntheticConfig()) -> dict[str, pd.DataFrame | pa.Table]:
    """Every table of the synthetic market in memory (small scales), keyed by table name."""
    out: dict[str, list] = {}
    for name, table in simulate_stream(cfg):
        out.setdefault(name, []).append(table)
    return {name: (pa.concat_tables(parts) if isinstance(parts[0], pa.Table) else parts[0])
            for name, parts in out.items()}
