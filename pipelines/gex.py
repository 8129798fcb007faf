"""Dealer gamma exposure (GEX), pure computation on chain arrays.

Convention (ARCHITECTURE.md): default sign model dealers long calls, short puts (+1 calls,
-1 puts); GEX in dollars of hedge per 1% move of the underlying:
    GEX = sign * gamma * open_interest * multiplier * S^2 * 0.01
Per-point GEX divides by 0.01 * S. Time to expiry is ACT/365 from 16:00 ET on the trade date
to 09:30 ET (AM-settled) or 16:00 ET (PM-settled) on the expiration date, measured in
elapsed time (a DST change in between counts its real hour). Rows with T <= 0, no IV or no
open interest carry no gamma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipelines import bsm

SECONDS_PER_YEAR = 365.0 * 86400.0
EASTERN = "America/New_York"

SIGN_MODELS = {
    # name: (call sign, put sign)
    "dealer_long_calls_short_puts": (1.0, -1.0),
    "customer_long_all": (-1.0, -1.0),
}
DEFAULT_SIGN_MODEL = "dealer_long_calls_short_puts"


def _eastern_epoch_seconds(dates: np.ndarray, hhmm: str) -> np.ndarray:
    """UTC epoch seconds of wall-clock `hhmm` US/Eastern on each date (vectorized over the
    unique dates only)."""
    days = np.asarray(dates, dtype="datetime64[D]")
    uniq, inv = np.unique(days, return_inverse=True)
    local = pd.DatetimeIndex(uniq.astype("datetime64[ns]")) + pd.Timedelta(hhmm + ":00")
    utc = local.tz_localize(EASTERN).tz_convert("UTC")
    return (utc.asi8 // 1_000_000_000).astype(float)[inv]


def years_to_expiry(trade_date, expiration, settlement) -> np.ndarray:
    """ACT/365 years from 16:00 ET on `trade_date` to settlement on `expiration`
    (`settlement` 'AM'/'PM' strings, or booleans meaning AM: 09:30 ET, else 16:00 ET)."""
    valuation = _eastern_epoch_seconds(trade_date, "16:00")
    settlement = np.asarray(settlement)
    am = settlement if settlement.dtype == bool else settlement == "AM"
    settle = np.where(am, _eastern_epoch_seconds(expiration, "09:30"), _eastern_epoch_seconds(expiration, "16:00"))
    return (settle - valuation) / SECONDS_PER_YEAR


def dealer_sign(is_call: np.ndarray, model: str = DEFAULT_SIGN_MODEL) -> np.ndarray:
    """+1/-1 per contract under a named sign model."""
    if model not in SIGN_MODELS:
        raise ValueError(f"unknown sign model {model!r}; choose one of {', '.join(SIGN_MODELS)}")
    call_sign, put_sign = SIGN_MODELS[model]
    return np.where(is_call, call_sign, put_sign)


def contract_gex_per_1pct(spot, strike, t_years, iv, open_interest, multiplier, is_call,
                          r=0.0, q=0.0, sign_model: str = DEFAULT_SIGN_MODEL) -> np.ndarray:
    """Dealer GEX per contract row, dollars per 1% move. Unusable rows (T <= 0, IV missing or
    <= 0, OI missing) contribute exactly 0."""
    iv = np.asarray(iv, float)
    oi = np.nan_to_num(np.asarray(open_interest, float), nan=0.0)
    usable = np.isfinite(iv) & (iv > 0) & (np.asarray(t_years) > 0)
    g = bsm.gamma(spot, strike, t_years, np.where(usable, iv, 0.0), r, q)
    spot = np.asarray(spot, float)
    out = dealer_sign(np.asarray(is_call), sign_model) * g * oi * np.asarray(multiplier, float) * spot * spot * 0.01
    return np.where(usable, out, 0.0)


@dataclass(frozen=True)
class ChainArrays:
    """Columns of one or many chains, as numpy arrays, sorted so that each group
    (underlying, trade_date) is contiguous."""

    group: np.ndarray  # int group id per row, non-decreasing
    spot: np.ndarray
    strike: np.ndarray
    t_years: np.ndarray
    iv: np.ndarray
    open_interest: np.ndarray
    multiplier: np.ndarray
    is_call: np.ndarray

    @classmethod
    def from_arrow(cls, tbl: pa.Table, group: np.ndarray) -> "ChainArrays":
        """From chain rows in the canonical option_quotes columns."""
        num = lambda name: tbl.column(name).cast(pa.float64()).to_numpy()  # noqa: E731  (nulls -> NaN)
        return cls(
            group=group,
            spot=num("underlying_price"),
            strike=num("strike"),
            t_years=years_to_expiry(tbl.column("trade_date").to_numpy(), tbl.column("expiration").to_numpy(),
                                    pc.equal(tbl.column("settlement"), "AM").to_numpy(zero_copy_only=False)),
            iv=num("iv"),
            open_interest=num("open_interest"),
            multiplier=num("multiplier"),
            is_call=pc.equal(tbl.column("option_type"), "C").to_numpy(zero_copy_only=False),
        )


def net_gex(chain: ChainArrays, n_groups: int, sign_model: str = DEFAULT_SIGN_MODEL) -> dict[str, np.ndarray]:
    """Per group: net_gex_per_1pct (dollars per 1% move), net_gex_per_point (dollars per 1
    point), spot and contracts_used (rows with T > 0, valid IV and OI > 0)."""
    gex = contract_gex_per_1pct(chain.spot, chain.strike, chain.t_years, chain.iv, chain.open_interest,
                                chain.multiplier, chain.is_call, sign_model=sign_model)
    used = (chain.t_years > 0) & np.isfinite(chain.iv) & (chain.iv > 0) & (np.nan_to_num(chain.open_interest) > 0)
    total = np.bincount(chain.group, weights=gex, minlength=n_groups)
    first = np.searchsorted(chain.group, np.arange(n_groups))
    spot = chain.spot[first]
    return {
        "net_gex_per_1pct": total,
        "net_gex_per_point": total / (0.01 * spot),
        "spot": spot,
        "contracts_used": np.bincount(chain.group, weights=used.astype(float), minlength=n_groups),
    }
