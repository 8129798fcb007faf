"""Synthetic market v1: an index with dated members, stocks, events and option chains, with
one planted mechanism of known strength (dealer-gamma volatility feedback).

Everything is a deterministic function of `SyntheticConfig` (seed included). The simulation
walks session by session because the mechanism is a feedback: session t's option chain sets
net dealer GEX_t (the architecture's convention: dealers long calls, short puts, dollars per
1% move), and the volatility of the return from t to t+1 is multiplied by
`vol_mult_negative_gex` when GEX_t < 0 and by `vol_mult_positive_gex` otherwise.
Open interest on session t's rows is the positions at the close of t-1 (the vendor rule), so
GEX_t uses nothing the market did not know at t's close.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from data_lake import calendars
from data_lake.synthetic.pricing import bs_price_gamma

TICKERS = (
    "ACME BOLT CRUX DYNA ECHO FLUX GRID HALO IONX JADE KITE LUMA MESA NOVA ORBT PIKE QURK "
    "RIFT SOLR TIDE UMBR VOLT WISP XENO YARD ZEST APEX BRIO CORE DUNE EMBR FERN GALE HELM "
    "IRIS JOLT KNOT LYNX MOSS NEXA"
).split()

MULTIPLIER = 100
TICK = 0.05
VENDOR = "synthetic"


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic market. Vols are annualized decimals."""

    seed: int = 7
    start: str = "2023-01-03"
    end: str = "2024-12-31"
    index: str = "SYNX"
    n_stocks: int = 32
    n_members: int = 30
    index_level: float = 4000.0
    market_vol: float = 0.16
    vol_mult_negative_gex: float = 1.30  # planted: vol scale after a negative-GEX session
    vol_mult_positive_gex: float = 0.85  # planted: vol scale after a positive-GEX session
    earnings_move_lo: float = 0.03  # true implied move (stdev of the earnings jump), range
    earnings_move_hi: float = 0.08
    stock_expiries: int = 3  # listed monthlies per stock
    index_monthlies: int = 3
    index_weeklies_days: int = 35
    index_dailies: int = 5
    stock_strike_range: float = 0.30
    index_strike_range: float = 0.12

    def __post_init__(self):
        if not 2 <= self.n_members <= self.n_stocks <= len(TICKERS):
            raise ValueError(f"need 2 <= n_members <= n_stocks <= {len(TICKERS)}")


# ----------------------------------------------------------------------------- calendar helpers
def _expiry_calendar(sessions: pd.DatetimeIndex) -> tuple[np.ndarray, np.ndarray]:
    """Weekly (Friday, or the session before a Friday holiday) and monthly (third Friday)
    expiries over the sessions, as datetime64[D] arrays."""
    days = pd.date_range(sessions[0], sessions[-1] + pd.Timedelta(days=120), freq="W-FRI")
    sess = calendars.sessions(days[0] - pd.Timedelta(days=7), days[-1])
    weekly = np.array([calendars.session_on_or_before(d) for d in days], dtype="datetime64[D]")
    third = days[(days.day >= 15) & (days.day <= 21)]
    monthly = np.array([calendars.session_on_or_before(d) for d in third], dtype="datetime64[D]")
    assert len(sess)  # the calendar covers the extended range
    return np.unique(weekly), np.unique(monthly)


def _years_to_expiry(trade_date: np.datetime64, expiry: np.ndarray, am: np.ndarray) -> np.ndarray:
    """ACT/365 from 16:00 ET on the trade date to 09:30 (AM) or 16:00 (PM) ET on expiry."""
    days = (expiry - trade_date).astype(float)
    return (days - np.where(am, 6.5 / 24.0, 0.0)) / 365.0


def _contract_noise(u: np.ndarray, expiry: np.ndarray, strike: np.ndarray, is_call: np.ndarray, seed: int):
    """A deterministic per-contract factor in [0.6, 1.4] (splitmix64 of the contract key), so
    a contract keeps its idiosyncratic open-interest level from day to day."""
    x = (
        u.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        ^ expiry.astype("int64").astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
        ^ np.round(strike * 100).astype(np.uint64) * np.uint64(0x94D049BB133111EB)
        ^ is_call.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93)
        ^ np.uint64(seed)
    )
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return 0.6 + 0.8 * (x >> np.uint64(11)).astype(float) / float(1 << 53)


def _strike_step(price: float) -> float:
    for limit, step in ((25, 0.5), (60, 1.0), (150, 2.5), (400, 5.0), (1000, 10.0)):
        if price < limit:
            return step
    return 25.0


# ----------------------------------------------------------------------------- the market
class _Universe:
    """Static, seed-drawn properties of the stocks and the index."""

    def __init__(self, cfg: SyntheticConfig, rng: np.random.Generator):
        n = cfg.n_stocks
        self.symbols = TICKERS[:n]
        self.price0 = np.round(np.exp(rng.uniform(np.log(30), np.log(600), n)), 2)
        self.shares = np.exp(rng.uniform(np.log(2e8), np.log(5e9), n))
        self.beta = rng.uniform(0.7, 1.4, n)
        self.idio_vol = rng.uniform(0.15, 0.40, n)
        self.iv_premium = rng.uniform(1.02, 1.15, n)
        self.oi_scale = np.round(rng.uniform(2e3, 2e4, n))
        # underlyings 0..n-1 are stocks, n is the index
        self.names = list(self.symbols) + [cfg.index]
        self.step = np.array([_strike_step(p) for p in self.price0] + [25.0])


def _members(cfg: SyntheticConfig, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """Members 0..n_members-1 from the start; halfway, the last two original members leave
    and the two first non-members join (a dated change, as in a real index)."""
    mid = sessions[len(sessions) // 2].date()
    start = sessions[0].date()
    rows = []
    for i in range(cfg.n_stocks):
        sym = TICKERS[i]
        if i < cfg.n_members - 2:
            rows.append((cfg.index, sym, start, None))
        elif i < cfg.n_members:
            rows.append((cfg.index, sym, start, calendars.previous_session(mid)))
        elif i < cfg.n_members + 2:
            rows.append((cfg.index, sym, mid, None))
    return pd.DataFrame(rows, columns=["index", "symbol", "start_date", "end_date"])


def _member_mask(members: pd.DataFrame, symbols, sessions: pd.DatetimeIndex) -> np.ndarray:
    mask = np.zeros((len(sessions), len(symbols)), bool)
    pos = {s: i for i, s in enumerate(symbols)}
    d = sessions.values.astype("datetime64[D]")
    for r in members.itertuples(index=False):
        lo = np.datetime64(r.start_date, "D")
        hi = np.datetime64(r.end_date, "D") if r.end_date is not None else d[-1]
        mask[:, pos[r.symbol]] |= (d >= lo) & (d <= hi)
    return mask


def _earnings(cfg, uni: _Universe, sessions: pd.DatetimeIndex, rng) -> pd.DataFrame:
    """Four reports a year per stock, BMO or AMC, announced 28 days ahead."""
    rows = []
    last = sessions[-1].date()
    for i, sym in enumerate(uni.symbols):
        lag = int(rng.integers(0, 15))
        for year in range(sessions[0].year, sessions[-1].year + 1):
            for month in (1, 4, 7, 10):
                day = calendars.session_on_or_after(dt.date(year, month, 18) + dt.timedelta(days=lag))
                timing = "BMO" if rng.random() < 0.5 else "AMC"
                reaction = day if timing == "BMO" else calendars.next_session(day)
                move = float(rng.uniform(cfg.earnings_move_lo, cfg.earnings_move_hi))
                if day <= sessions[5].date() or reaction > last:
                    continue
                sched = calendars.market_time_utc(day, "07:00" if timing == "BMO" else "16:05")
                rows.append(dict(
                    event_id=f"EARN-{sym}-{day:%Y%m%d}", kind="earnings", symbol=sym,
                    scheduled_ts=sched, timing=timing, reaction_session=reaction,
                    known_at=calendars.market_time_utc(day - dt.timedelta(days=28), "00:00"),
                    source=VENDOR, payload=json.dumps({"true_implied_move": round(move, 6)}),
                ))
    return pd.DataFrame(rows)


def _macro(cfg, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """NFP (first Friday, 08:30 ET), CPI (around the 12th, 08:30 ET), FOMC (third Wednesday
    of eight months, 14:00 ET). Announced 90 days ahead."""
    rows = []
    first, last = sessions[0].date(), sessions[-1].date()
    for period in pd.period_range(sessions[0], sessions[-1], freq="M"):
        y, m = period.year, period.month
        fridays = pd.date_range(dt.date(y, m, 1), periods=7, freq="D")
        nfp = calendars.session_on_or_after(fridays[fridays.day_of_week == 4][0])
        cpi = calendars.session_on_or_after(dt.date(y, m, 12))
        cands = [("NFP", nfp, "08:30", "BMO"), ("CPI", cpi, "08:30", "BMO")]
        if m in (1, 3, 5, 6, 7, 9, 11, 12):
            weds = pd.date_range(dt.date(y, m, 1), periods=28, freq="D")
            cands.append(("FOMC", calendars.session_on_or_after(weds[weds.day_of_week == 2][2]), "14:00", "INTRADAY"))
        for kind, day, hhmm, timing in cands:
            if first < day <= last:
                rows.append(dict(
                    event_id=f"{kind}-{day:%Y%m%d}", kind=kind, symbol=None,
                    scheduled_ts=calendars.market_time_utc(day, hhmm), timing=timing,
                    reaction_session=day,
                    known_at=calendars.market_time_utc(day - dt.timedelta(days=90), "00:00"),
                    source=VENDOR, payload="{}",
                ))
    return pd.DataFrame(rows)


class _ChainBuilder:
    """Builds one session's option chain for every underlying, vectorized per underlying."""

    def __init__(self, cfg, uni: _Universe, sessions: pd.DatetimeIndex):
        self.cfg, self.uni = cfg, uni
        self.sess = sessions.values.astype("datetime64[D]")
        self.weekly, self.monthly = _expiry_calendar(sessions)
        ext = calendars.sessions(sessions[0], sessions[-1] + pd.Timedelta(days=15))
        self.ext_sessions = ext.values.astype("datetime64[D]")

    def expiries(self, u: int, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(expiry, is_am, kind weight) listed on session t for underlying u."""
        d = self.sess[t]
        cfg = self.cfg
        months = self.monthly[self.monthly >= d]
        if u < cfg.n_stocks:
            e = months[: cfg.stock_expiries]
            return e, np.zeros(len(e), bool), np.full(len(e), 3.0)
        i = np.searchsorted(self.ext_sessions, d)
        daily = self.ext_sessions[i : i + cfg.index_dailies]
        weekly = self.weekly[(self.weekly >= d) & (self.weekly <= d + np.timedelta64(cfg.index_weeklies_days, "D"))]
        monthly = months[: cfg.index_monthlies]
        pm = np.union1d(np.union1d(daily, weekly), monthly)  # PM-settled weekly root
        am = monthly[monthly > d]  # AM monthlies stop before their settlement morning
        e = np.concatenate([pm, am])
        is_am = np.concatenate([np.zeros(len(pm), bool), np.ones(len(am), bool)])
        weight = np.where(is_am, 3.0, np.where(np.isin(e, weekly), 1.0, 0.5))
        return e, is_am, weight

    def strikes(self, u: int, spot: float) -> np.ndarray:
        step = self.uni.step[u]
        rng = self.cfg.index_strike_range if u == self.cfg.n_stocks else self.cfg.stock_strike_range
        lo, hi = np.ceil(spot * (1 - rng) / step), np.floor(spot * (1 + rng) / step)
        return np.arange(lo, hi + 1) * step

    def build(self, t: int, spot: np.ndarray) -> dict[str, np.ndarray]:
        parts = []
        for u in range(len(self.uni.names)):
            e, is_am, w = self.expiries(u, t)
            k = self.strikes(u, spot[u])
            ne, nk = len(e), len(k)
            ee = np.repeat(np.tile(e, 1), nk * 2)
            parts.append(dict(
                u=np.full(ne * nk * 2, u, np.int32),
                expiration=ee,
                is_am=np.repeat(is_am, nk * 2),
                kind_weight=np.repeat(w, nk * 2),
                strike=np.tile(np.repeat(k, 2), ne),
                is_call=np.tile(np.array([True, False]), ne * nk),
            ))
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _diffusive_vol(cfg, uni: _Universe, mult: np.ndarray) -> np.ndarray:
    """Implied ATM vol per underlying (stocks, then the index): the current regime's total
    diffusive vol times a variance-risk premium."""
    n_s = cfg.n_stocks
    market = cfg.market_vol * mult[n_s]
    stocks = np.sqrt((uni.idio_vol * mult[:n_s]) ** 2 + (uni.beta * market) ** 2) * uni.iv_premium
    return np.append(stocks, market * 1.10)


def _iv_surface(atm: np.ndarray, spot: np.ndarray, strike: np.ndarray, t: np.ndarray,
                jump_var: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """Smile and term structure: diffusive ATM vol with a short-end premium, plus the event
    jump variance spread over the life of every expiry that spans the event, then a skew and
    a curvature in standardized moneyness."""
    te = np.maximum(t, 1.0 / 365.0)
    base = atm * (1.0 + 0.12 * np.exp(-te / 0.08))
    total = np.sqrt(base**2 + jump_var / te)
    x = np.log(strike / spot) / (total * np.sqrt(te))
    smile = 1.0 + skew * x + 0.015 * x * x
    return np.clip(total * smile, 0.5 * total, 3.0 * total).clip(0.04, 5.0)


def _quote(mid: np.ndarray, t: np.ndarray, moneyness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bid/ask on a 0.05 grid around the model mid; wider for short-dated and far OTM."""
    mid = np.maximum(mid, 0.0)
    half = 0.025 + 0.02 * np.sqrt(mid) * (1 + 0.5 * np.abs(moneyness)) + 0.02 * (t < 7 / 365)
    bid = np.maximum(np.floor((mid - half) / TICK) * TICK, 0.0)
    ask = np.maximum(np.ceil((mid + half) / TICK) * TICK, bid + TICK)
    return np.round(bid, 2), np.round(ask, 2)


def simulate(cfg: SyntheticConfig = SyntheticConfig()) -> dict[str, pd.DataFrame | pa.Table]:
    """Generate every table of the synthetic market, keyed by canonical table name."""
    rng = np.random.default_rng(cfg.seed)
    sessions = calendars.sessions(cfg.start, cfg.end)
    n_t, n_s = len(sessions), cfg.n_stocks
    uni = _Universe(cfg, rng)
    members = _members(cfg, sessions)
    member_mask = _member_mask(members, uni.symbols, sessions)
    earnings = _earnings(cfg, uni, sessions, rng)
    macro = _macro(cfg, sessions)

    # event jumps (stdev) per (session, stock): the true implied move on reaction sessions
    jump_sd = np.zeros((n_t, n_s))
    sess_pos = {d.date(): i for i, d in enumerate(sessions)}
    sym_pos = {s: i for i, s in enumerate(uni.symbols)}
    for r in earnings.itertuples(index=False):
        jump_sd[sess_pos[r.reaction_session], sym_pos[r.symbol]] = json.loads(r.payload)["true_implied_move"]

    # all random draws up front, in a fixed order: determinism does not depend on the loop
    z_mkt = rng.standard_normal(n_t)
    z_idio = rng.standard_normal((n_t, n_s))
    z_jump = rng.standard_normal((n_t, n_s))
    z_oi = rng.standard_normal((n_t, n_s + 1, 2))
    z_bar = rng.standard_normal((n_t, n_s + 1, 3))
    vol_noise = rng.standard_normal((n_t, n_s + 1))

    builder = _ChainBuilder(cfg, uni, sessions)
    n_u = n_s + 1
    spot = np.empty((n_t, n_u))
    spot[0, :n_s] = uni.price0
    spot[0, n_s] = cfg.index_level
    log_oi_level = np.zeros((n_u, 2))  # (call, put) positioning levels, AR(1) in logs
    log_oi_level[:, 1] = 0.15  # customers hold somewhat more puts than calls
    anchor = spot[0].copy()  # where open interest is concentrated: a slow average of spot
    gex = np.zeros((n_t, n_u))
    regime_vol = np.ones((n_t, n_u))
    base_vol = np.append(uni.idio_vol, cfg.market_vol)
    weights = uni.shares * uni.price0
    chains = []

    for t in range(n_t):
        if t > 0:
            mult = np.where(gex[t - 1] < 0, cfg.vol_mult_negative_gex, cfg.vol_mult_positive_gex)
            regime_vol[t] = mult
            m = cfg.market_vol / np.sqrt(252) * mult[n_s] * z_mkt[t]
            e = uni.idio_vol / np.sqrt(252) * mult[:n_s] * z_idio[t]
            j = jump_sd[t] * mult[:n_s] * z_jump[t]
            r = uni.beta * m + e + j
            spot[t, :n_s] = spot[t - 1, :n_s] * np.exp(r)
            w = weights * member_mask[t - 1]
            spot[t, n_s] = spot[t - 1, n_s] * np.sum(w / w.sum() * np.exp(r))
            weights = uni.shares * spot[t, :n_s]
            # positioning as of the previous close (vendors publish yesterday's OI)
            log_oi_level = 0.97 * log_oi_level + 0.08 * z_oi[t - 1] + 0.03 * np.array([0.0, 0.15])
            anchor = 0.9 * anchor + 0.1 * spot[t - 1]
        c = builder.build(t, spot[t])
        u, is_call = c["u"], c["is_call"]
        d = builder.sess[t]
        t_years = _years_to_expiry(d, c["expiration"], c["is_am"])
        s_row = spot[t, u]
        # implied vol prices the next session's regime with a variance premium
        atm = (_diffusive_vol(cfg, uni, regime_vol[t]) * (1 + 0.05 * vol_noise[t]))[u]
        # earnings between today's close and expiry add their jump variance
        jump_var = np.zeros(len(u))
        stock_rows = u < n_s
        for k in np.flatnonzero(jump_sd[t + 1 :].any(axis=0)):
            react = np.flatnonzero(jump_sd[t + 1 :, k])
            if not len(react):
                continue
            r_day = builder.sess[t + 1 + react[0]]
            sel = stock_rows & (u == k) & (c["expiration"] >= r_day)
            jump_var[sel] = jump_sd[t + 1 + react[0], k] ** 2
        skew = np.where(u == n_s, -0.18, -0.08)
        iv = _iv_surface(atm, s_row, c["strike"], t_years, jump_var, skew)
        price, gamma = bs_price_gamma(s_row, c["strike"], t_years, iv, is_call)
        moneyness = np.log(c["strike"] / s_row)
        # open interest: calls above and puts below the anchor, levels from the AR(1)
        center = anchor[u] * np.where(is_call, 1.04, 0.95)
        width = np.where(u == n_s, 0.05, 0.12)
        profile = np.exp(-0.5 * (np.log(c["strike"] / center) / width) ** 2)
        level = np.exp(log_oi_level[u, np.where(is_call, 0, 1)])
        scale = np.append(uni.oi_scale, 8_000.0)[u]
        noise = _contract_noise(u, c["expiration"], c["strike"], is_call, cfg.seed)
        oi = np.round(scale * level * profile * c["kind_weight"] * noise).astype(np.int64)
        oi = np.where(t_years > 0, oi, np.where(c["expiration"] == d, oi, 0))
        zero_dte = c["expiration"] == d
        volume = np.round(oi * np.where(zero_dte, 4.0, 0.12) * noise).astype(np.int64)
        sign = np.where(is_call, 1.0, -1.0)
        gex_row = sign * gamma * oi * MULTIPLIER * s_row**2 * 0.01
        gex[t] = np.bincount(u, weights=gex_row, minlength=n_u)
        bid, ask = _quote(price, t_years, moneyness)
        chains.append(dict(c, t=np.full(len(u), t, np.int32), iv=iv, bid=bid, ask=ask, oi=oi,
                           volume=volume, spot=s_row))

    tables = {
        "option_quotes": _quotes_table(cfg, uni, sessions, chains),
        "bars": _bars(uni, sessions, spot, base_vol, z_bar),
        "index_members": members,
        "index_weights": _weights(cfg, uni, sessions, spot, member_mask),
        "events": pd.concat([earnings, macro], ignore_index=True),
        "truth": _truth(cfg, gex, regime_vol),
    }
    return tables


def _quotes_table(cfg, uni, sessions, chains) -> pa.Table:
    c = {k: np.concatenate([ch[k] for ch in chains]) for k in chains[0]}
    names = np.array(uni.names, dtype=object)
    roots = np.array(list(uni.symbols) + [cfg.index + "W"], dtype=object)[c["u"]]
    roots = np.where(c["is_am"], cfg.index, roots)
    days = sessions.values.astype("datetime64[D]")
    close_utc = np.array([calendars.session_close_utc(d).value // 1000 for d in sessions], dtype="int64")
    quote_ts = close_utc[c["t"]]
    return pa.table({
        "trade_date": pa.array(days[c["t"]], pa.date32()),
        "quote_ts": pa.array(quote_ts, pa.timestamp("us", tz="UTC")),
        "available_ts": pa.array(quote_ts + 15 * 60 * 1_000_000, pa.timestamp("us", tz="UTC")),
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
        "multiplier": pa.array(np.full(len(c["u"]), MULTIPLIER, np.int32)),
        "vendor": pa.array(np.full(len(c["u"]), VENDOR, dtype=object), pa.string()),
        "ingest_id": pa.array(np.full(len(c["u"]), f"synthetic-seed{cfg.seed}", dtype=object), pa.string()),
    })


def _bars(uni, sessions, spot, base_vol, z_bar) -> pd.DataFrame:
    n_t, n_u = spot.shape
    close = np.round(spot, 4)
    prev = np.vstack([close[:1], close[:-1]])
    daily = base_vol / np.sqrt(252)
    open_ = prev * np.exp(0.3 * np.log(close / prev) + 0.1 * daily * z_bar[:, :, 0])
    high = np.maximum(open_, close) * np.exp(np.abs(z_bar[:, :, 1]) * daily * 0.3)
    low = np.minimum(open_, close) * np.exp(-np.abs(z_bar[:, :, 2]) * daily * 0.3)
    volume = np.round(1e6 * np.exp(0.3 * z_bar[:, :, 0])).astype(np.int64)
    return pd.DataFrame({
        "trade_date": np.repeat(sessions.values.astype("datetime64[D]"), n_u),
        "symbol": np.tile(np.array(uni.names, dtype=object), n_t),
        "open": np.round(open_, 4).ravel(), "high": np.round(high, 4).ravel(),
        "low": np.round(low, 4).ravel(), "close": close.ravel(), "volume": volume.ravel(),
    })


def _weights(cfg, uni, sessions, spot, member_mask) -> pd.DataFrame:
    """Cap weights as of the first session of each month, known before that session opens."""
    rows = []
    firsts = pd.Series(sessions).groupby(sessions.to_period("M")).first()
    for d in firsts:
        t = sessions.get_loc(d)
        ref = max(t - 1, 0)
        cap = uni.shares * spot[ref, : cfg.n_stocks] * member_mask[t]
        w = cap / cap.sum()
        for i in np.flatnonzero(member_mask[t]):
            rows.append((cfg.index, uni.symbols[i], d.date(), float(w[i]),
                         calendars.market_time_utc(d, "08:00")))
    return pd.DataFrame(rows, columns=["index", "symbol", "as_of", "weight", "known_at"])


def _truth(cfg, gex, regime_vol) -> pd.DataFrame:
    neg = float((gex[:, -1] < 0).mean())
    rows = [
        ("gex_feedback", "vol_mult_negative_gex", cfg.vol_mult_negative_gex,
         "multiplier on the next session's return vol when net dealer GEX < 0"),
        ("gex_feedback", "vol_mult_positive_gex", cfg.vol_mult_positive_gex,
         "multiplier on the next session's return vol when net dealer GEX >= 0"),
        ("gex_feedback", "vol_ratio_negative_over_positive",
         cfg.vol_mult_negative_gex / cfg.vol_mult_positive_gex, "planted vol ratio"),
        ("gex_feedback", "index_share_negative_gex_sessions", neg, "realized share of sessions"),
        ("market", "index_base_vol", cfg.market_vol, "annualized vol of the market factor"),
        ("earnings", "implied_move_lo", cfg.earnings_move_lo, "lower bound of true implied moves"),
        ("earnings", "implied_move_hi", cfg.earnings_move_hi, "upper bound of true implied moves"),
        ("earnings", "jump_scaled_by_gex_regime", 1.0,
         "earnings jumps are scaled by the same GEX-regime multiplier"),
        ("config", "seed", float(cfg.seed), json.dumps(asdict(cfg), sort_keys=True)),
    ]
    return pd.DataFrame(rows, columns=["mechanism", "parameter", "value", "description"])
