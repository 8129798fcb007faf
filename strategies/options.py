"""Option structures from the chain known at entry, and their quotes at later sessions.

Pure pandas on chain rows: the lake I/O lives in `strategies.loaders`."""

from __future__ import annotations

import numpy as np
import pandas as pd

LEG_KEY = ["underlying", "root", "expiration", "strike", "option_type"]


def select_atm_straddles(entry_chains: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """One ATM straddle per event, chosen from the entry-session chain only.

    `entry_chains` are option rows carrying the `event_id` they were fetched for; `events`
    has event_id and reaction_session. Expiry: the first expiration strictly after the
    reaction session (alive at the exit close). Strike: nearest the entry spot among strikes
    quoted on both sides with a positive ask (ties: the lower strike). Returns one row per
    event: event_id, underlying, root, expiration, strike, entry_spot.
    """
    cols = ["event_id", "underlying", "root", "expiration", "strike", "entry_spot"]
    if entry_chains.empty:
        return pd.DataFrame(columns=cols)
    c = entry_chains.merge(events[["event_id", "reaction_session"]], on="event_id")
    c = c[(c["expiration"] > c["reaction_session"]) & (c["ask"] > 0) & c["bid"].notna()]
    first = c.groupby("event_id")["expiration"].transform("min")
    c = c[c["expiration"] == first]
    both = c.groupby(["event_id", "root", "strike"])["option_type"].transform("nunique") == 2
    c = c[both].assign(distance=lambda x: (x["strike"] - x["underlying_price"]).abs())
    c = c.sort_values(["event_id", "distance", "strike", "root"], kind="mergesort")
    best = c.drop_duplicates("event_id", keep="first")
    return best.rename(columns={"underlying_price": "entry_spot"})[cols].reset_index(drop=True)


def straddle_legs(straddles: pd.DataFrame) -> pd.DataFrame:
    """Two legs (call, put) per straddle, one contract each."""
    legs = pd.concat([straddles.assign(option_type="C"), straddles.assign(option_type="P")])
    return legs.sort_values(["event_id", "option_type"], kind="mergesort").reset_index(drop=True)


def structure_quotes(leg_quotes: pd.DataFrame) -> pd.DataFrame:
    """Sum leg bids and asks per (event_id, trade_date) for a long-one-of-each structure.
    A structure with any leg missing its quote gets NaN (never a silent zero)."""
    g = leg_quotes.groupby(["event_id", "trade_date"], sort=True)
    out = g.agg(bid=("bid", lambda s: s.sum(min_count=len(s)) if s.notna().all() else np.nan),
                ask=("ask", lambda s: s.sum(min_count=len(s)) if s.notna().all() else np.nan),
                legs=("option_type", "size"), multiplier=("multiplier", "first"))
    return out.reset_index()
