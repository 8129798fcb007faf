"""Option chains of the synthetic market: listing calendar, strikes, the IV surface, quotes
and open interest accumulated from customer flow."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eventvol.data_lake import calendars

TICK = 0.05


def expiry_calendar(first: pd.Timestamp, last: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """Weekly (Friday, or the session before a Friday holiday) and monthly (third Friday)
    expiries, as sorted datetime64[D] arrays."""
    fridays = pd.date_range(first, last + pd.Timedelta(days=150), freq="W-FRI")
    weekly = np.array([calendars.session_on_or_before(d) for d in fridays], dtype="datetime64[D]")
    third = fridays[(fridays.day >= 15) & (fridays.day <= 21)]
    monthly = np.array([calendars.session_on_or_before(d) for d in third], dtype="datetime64[D]")
    return np.unique(weekly), np.unique(monthly)


def years_to_expiry(trade_date: np.datetime64, expiry: np.ndarray, am: np.ndarray) -> np.ndarray:
    """ACT/365 from 16:00 ET on the trade date to 09:30 (AM) or 16:00 (PM) ET on expiry
    (wall-clock hours; the pipelines measure elapsed time, which differs only across DST)."""
    days = (expiry - trade_date).astype(float)
    return (days - np.where(am, 6.5 / 24.0, 0.0)) / 365.0


def strike_step(price) -> np.ndarray:
    """Listed strike spacing by price tier, dollars."""
    p = np.asarray(price, float)
    return np.select([p < 25, p < 60, p < 150, p < 400, p < 1000], [0.5, 1.0, 2.5, 5.0, 10.0], 25.0)


def contract_keys(u, expiry, strike, is_call, is_am) -> np.ndarray:
    """A unique int64 per contract (underlying, expiry, settlement, strike, type), used to
    carry open interest from one session to the next."""
    day = expiry.astype("datetime64[D]").astype(np.int64) - 7000  # fits 16 bits until ~2049
    cents = np.round(np.asarray(strike) * 100).astype(np.int64)
    return ((((u.astype(np.int64) << 16) | day) << 2 | (is_am.astype(np.int64) << 1) | is_call.astype(np.int64)) << 30) | cents


def contract_noise(keys: np.ndarray, seed: int) -> np.ndarray:
    """A deterministic per-contract factor in [0.6, 1.4] (splitmix64 of the contract key)."""
    x = keys.astype(np.uint64) ^ np.uint64(seed * 0x9E3779B97F4A7C15 % (1 << 64))
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return 0.6 + 0.8 * (x >> np.uint64(11)).astype(float) / float(1 << 53)


class ChainBuilder:
    """Lists each session's contracts: stocks (monthlies, one vectorized grid for all
    stocks) and the index (dailies incl. 0DTE, weeklies, PM and AM monthlies)."""

    STOCK_HALF_STRIKES = 25

    def __init__(self, cfg, sessions: pd.DatetimeIndex):
        self.cfg = cfg
        self.sess = sessions.values.astype("datetime64[D]")
        self.weekly, self.monthly = expiry_calendar(sessions[0], sessions[-1])
        ext = calendars.sessions(sessions[0], sessions[-1] + pd.Timedelta(days=15))
        self.ext_sessions = ext.values.astype("datetime64[D]")

    def stock_contracts(self, t: int, spot: np.ndarray) -> dict[str, np.ndarray]:
        cfg, d = self.cfg, self.sess[t]
        exp = self.monthly[self.monthly >= d][: cfg.stock_expiries]
        n_e, h = len(exp), self.STOCK_HALF_STRIKES
        step = strike_step(spot)
        grid = (np.round(spot / step)[:, None] + np.arange(-h, h + 1)[None, :]) * step[:, None]  # (n_s, 2h+1)
        keep = (np.abs(grid / spot[:, None] - 1.0) <= cfg.stock_strike_range) & (grid > 0)
        u_idx, k_idx = np.nonzero(keep)
        strikes = grid[u_idx, k_idx]
        m = len(strikes)
        return dict(
            u=np.tile(np.repeat(u_idx, 2), n_e).astype(np.int32),
            strike=np.tile(np.repeat(strikes, 2), n_e),
            is_call=np.tile(np.array([True, False]), m * n_e),
            expiration=np.repeat(exp, 2 * m),
            is_am=np.zeros(2 * m * n_e, bool),
            kind_weight=np.full(2 * m * n_e, 3.0),
        )

    def index_contracts(self, t: int, spot: float, u: int) -> dict[str, np.ndarray]:
        cfg, d = self.cfg, self.sess[t]
        i = np.searchsorted(self.ext_sessions, d)
        daily = self.ext_sessions[i: i + cfg.index_dailies]
        weekly = self.weekly[(self.weekly >= d) & (self.weekly <= d + np.timedelta64(cfg.index_weeklies_days, "D"))]
        monthly = self.monthly[self.monthly >= d][: cfg.index_monthlies]
        pm = np.union1d(np.union1d(daily, weekly), monthly)  # the PM-settled weekly root
        am = monthly[monthly > d]  # AM monthlies stop trading before their settlement morning
        exp = np.concatenate([pm, am])
        is_am = np.concatenate([np.zeros(len(pm), bool), np.ones(len(am), bool)])
        weight = np.where(is_am, 3.0, np.where(np.isin(exp, weekly), 1.0, 0.5))
        step = 25.0
        strikes = np.arange(np.ceil(spot * (1 - cfg.index_strike_range) / step),
                            np.floor(spot * (1 + cfg.index_strike_range) / step) + 1) * step
        n_e, n_k = len(exp), len(strikes)
        return dict(
            u=np.full(2 * n_e * n_k, u, np.int32),
            strike=np.tile(np.repeat(strikes, 2), n_e),
            is_call=np.tile(np.array([True, False]), n_e * n_k),
            expiration=np.repeat(exp, 2 * n_k),
            is_am=np.repeat(is_am, 2 * n_k),
            kind_weight=np.repeat(weight, 2 * n_k),
        )


def iv_surface(atm, spot, strike, t, jump_var, skew) -> np.ndarray:
    """Smile and term structure: diffusive ATM vol with a short-end premium, plus scheduled
    jump variance (earnings, macro) spread over the life of every expiry spanning the event,
    then skew and curvature in standardized moneyness."""
    te = np.maximum(t, 1.0 / 365.0)
    base = atm * (1.0 + 0.12 * np.exp(-te / 0.08))
    total = np.sqrt(base**2 + jump_var / te)
    x = np.log(strike / spot) / (total * np.sqrt(te))
    smile = 1.0 + skew * x + 0.015 * x * x
    return np.clip(total * smile, 0.5 * total, 3.0 * total).clip(0.04, 5.0)


def quote(mid, t, moneyness) -> tuple[np.ndarray, np.ndarray]:
    """Bid/ask on a 0.05 grid around the model mid; wider for short-dated and far OTM."""
    mid = np.maximum(mid, 0.0)
    half = 0.025 + 0.02 * np.sqrt(mid) * (1 + 0.5 * np.abs(moneyness)) + 0.02 * (t < 7 / 365)
    bid = np.maximum(np.floor((mid - half) / TICK) * TICK, 0.0)
    ask = np.maximum(np.ceil((mid + half) / TICK) * TICK, bid + TICK)
    return np.round(bid, 2), np.round(ask, 2)


class OpenInterestBook:
    """Positions per contract, carried between sessions by key. Each session: published open
    interest = positions after the previous session (the vendor rule), then customer flow
    opens new positions and a share (1 - persistence) of old ones closes."""

    def __init__(self, persistence: float):
        self.persistence = persistence
        self.keys = np.zeros(0, np.int64)
        self.positions = np.zeros(0)

    def published(self, keys: np.ndarray) -> np.ndarray:
        """Open interest of `keys` as of the previous close (0 for new listings)."""
        if not len(self.keys):
            return np.zeros(len(keys))
        i = np.clip(np.searchsorted(self.keys, keys), 0, len(self.keys) - 1)
        return np.where(self.keys[i] == keys, self.positions[i], 0.0)

    def trade(self, keys: np.ndarray, published: np.ndarray, opened: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        self.positions = (self.persistence * published + opened)[order]
