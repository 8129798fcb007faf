"""Option structures from the chain known at entry, and their quotes at later sessions.

Pure pandas on chain rows: the lake I/O lives in `strategies.loaders`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eventvol.strategies.structures import select_structure

LEG_KEY = ["underlying", "root", "expiration", "strike", "option_type"]


def select_atm_straddles(entry_chains: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    """One ATM straddle per event, chosen from the entry-session chain only: the straddle
    rule of `strategies.structures.select_structure` (first expiration strictly after the
    reaction session; strike nearest the entry spot among strikes quoted on both sides with a
    positive ask, ties the lower strike). `events` has event_id, entry_session and
    reaction_session. Returns one row per event: event_id, underlying, root, expiration,
    strike, entry_spot."""
    cols = ["event_id", "underlying", "root", "expiration", "strike", "entry_spot"]
    legs = select_structure(entry_chains, events, "straddle")
    one = legs[legs["option_type"] == "C"][cols].reset_index(drop=True)
    one["expiration"] = pd.to_datetime(one["expiration"]).dt.date  # the lake's DATE values
    return one


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
