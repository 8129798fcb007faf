"""Earnings straddle: buy the ATM straddle at the close before each earnings reaction
session and sell it at the reaction session's close.

Fills: buy at the ask, sell at the bid (the side a real order hits), plus a fee per contract
on each order. Structure and filter use only what is known at the entry decision time (the
entry session's end-of-day snapshot): the chain, and net GEX computed from that snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake, NoDataError
from eventvol.strategies import loaders
from eventvol.strategies.calendar import event_sessions
from eventvol.strategies.engine import simulate_round_trips
from eventvol.strategies.options import select_atm_straddles, straddle_legs, structure_quotes

GEX_FILTERS = ("none", "negative", "positive")


@dataclass(frozen=True)
class StraddleParams:
    """fee_per_contract in dollars; quantity in straddles (1 straddle = 1 call + 1 put);
    gex_filter trades only events whose net GEX at entry is negative/positive."""

    fee_per_contract: float = 0.65
    quantity: int = 1
    gex_filter: str = "none"

    def __post_init__(self):
        if self.gex_filter not in GEX_FILTERS:
            raise ValueError(f"gex_filter must be one of {', '.join(GEX_FILTERS)}, not {self.gex_filter!r}")


@dataclass
class StraddleResult:
    trades: pd.DataFrame  # one row per event, traded or not
    portfolio: object  # the vectorbt Portfolio over all event columns


TRADE_COLUMNS = [
    "event_id", "symbol", "timing", "entry_session", "reaction_session", "root", "expiration",
    "strike", "entry_spot", "exit_spot", "entry_ask", "exit_bid", "net_gex_per_1pct_at_entry",
    "traded", "skip_reason", "pnl",
]


def _attach_quotes(lake: Lake, ev: pd.DataFrame, straddles: pd.DataFrame) -> pd.DataFrame:
    legs = straddle_legs(straddles.merge(ev[["event_id", "entry_session", "reaction_session"]], on="event_id"))
    at_entry = legs.assign(trade_date=legs["entry_session"])
    at_exit = legs.assign(trade_date=legs["reaction_session"])
    quotes = structure_quotes(loaders.leg_quotes_at(lake, pd.concat([at_entry, at_exit], ignore_index=True)))
    entry = quotes.merge(ev[["event_id", "entry_session"]], left_on=["event_id", "trade_date"],
                         right_on=["event_id", "entry_session"])[["event_id", "ask", "multiplier"]]
    exit_ = quotes.merge(ev[["event_id", "reaction_session"]], left_on=["event_id", "trade_date"],
                         right_on=["event_id", "reaction_session"])[["event_id", "bid"]]
    out = straddles.merge(entry.rename(columns={"ask": "entry_ask"}), on="event_id", how="left")
    return out.merge(exit_.rename(columns={"bid": "exit_bid"}), on="event_id", how="left")


def run(lake: Lake, params: StraddleParams = StraddleParams(), *, symbols: list[str] | None = None) -> StraddleResult:
    """Backtest every earnings event in the lake at once."""
    ev = event_sessions(loaders.load_events(lake, ("earnings",)))
    if symbols:
        ev = ev[ev["symbol"].isin(symbols)]
    # an event can be traded only if it was announced before the entry decision
    ev = ev[ev["known_at"] <= ev["entry_time"]].reset_index(drop=True)
    if ev.empty:
        raise NoDataError("the lake holds no earnings events with known timing to trade")
    decision_ts = ev["entry_time"] + pd.Timedelta(minutes=15)  # the EOD snapshot's availability
    wanted = pd.DataFrame({"event_id": ev["event_id"], "underlying": ev["symbol"],
                           "trade_date": ev["entry_session"], "decision_ts": decision_ts})
    chains = loaders.chains_at(lake, wanted)
    straddles = select_atm_straddles(chains, ev)
    priced = _attach_quotes(lake, ev, straddles) if not straddles.empty else straddles
    t = ev.merge(priced, on="event_id", how="left")
    spot = lake.df("SELECT symbol, trade_date, close FROM bars")
    t = t.merge(spot.rename(columns={"symbol": "symbol", "trade_date": "reaction_session", "close": "exit_spot"}),
                on=["symbol", "reaction_session"], how="left")
    t["net_gex_per_1pct_at_entry"] = loaders.factor_at(
        lake, "net_gex_per_1pct", pd.DataFrame({"entity": t["symbol"], "trade_date": t["entry_session"]}))
    t["skip_reason"] = _skip_reasons(t, params)
    t["traded"] = t["skip_reason"] == ""
    mult = t["multiplier"].fillna(100).astype(float)
    qty = pd.Series(np.where(t["traded"], params.quantity, 0), index=t["event_id"], dtype=float)
    res = simulate_round_trips(
        entry_price=pd.Series((t["entry_ask"] * mult).to_numpy(float), index=t["event_id"]),
        exit_price=pd.Series((t["exit_bid"] * mult).to_numpy(float), index=t["event_id"]),
        quantity=qty,
        fees_per_order=pd.Series(2 * params.quantity * params.fee_per_contract, index=t["event_id"]),
    )
    t["pnl"] = np.where(t["traded"], res.pnl.to_numpy(), np.nan)
    return StraddleResult(trades=t[TRADE_COLUMNS].sort_values(["reaction_session", "event_id"]).reset_index(drop=True),
                          portfolio=res.portfolio)


def _skip_reasons(t: pd.DataFrame, params: StraddleParams) -> pd.Series:
    reason = pd.Series("", index=t.index, dtype=object)
    gex = t["net_gex_per_1pct_at_entry"]
    if params.gex_filter == "negative":
        reason = reason.mask(~(gex < 0), "gex filter: net GEX not negative at entry")
    elif params.gex_filter == "positive":
        reason = reason.mask(~(gex > 0), "gex filter: net GEX not positive at entry")
    reason = reason.mask(t["exit_bid"].isna(), "no exit quote")
    reason = reason.mask(t["entry_ask"].isna(), "no entry quote")
    reason = reason.mask(t["strike"].isna(), "no straddle listed after the event")
    return reason
