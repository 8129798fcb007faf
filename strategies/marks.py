"""Marks of option structures every session from bid/ask, fills, settlement (pure pandas).

Fill models, as a fraction `k` of the half-spread paid away from the mid on every leg:
`mid` (k=0), `worst` (k=1: buy at the ask, sell at the bid) and `fraction` (0 <= k <= 1).
For a structure with leg weights w_i, buying one unit fills at
    sum_i w_i * mid_i + k * sum_i |w_i| * half_spread_i
and selling one unit at the same with `- k * ...`: each leg hits its own side.

A leg with no quote on a session carries its last quote (status `stale`), never zero. On and
after its expiration a leg is worth its intrinsic value on the settlement price (AM roots:
that day's open from `bars`; PM roots: the close) with no spread (status `settled`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eventvol.data_lake import calendars

FILL_MODELS = ("mid", "worst", "fraction")
STATUS = ("quote", "stale", "settled", "missing")


def half_spread_fraction(fill: str, fraction: float = 0.5) -> float:
    """The k of a fill model (see module docstring)."""
    if fill == "mid":
        return 0.0
    if fill == "worst":
        return 1.0
    if fill == "fraction":
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fill fraction must be within [0, 1], not {fraction}")
        return float(fraction)
    raise ValueError(f"fill must be one of {', '.join(FILL_MODELS)}, not {fill!r}")


def schedule(events: pd.DataFrame, hold: int = 0) -> pd.DataFrame:
    """One row per (event_id, row) from the entry session (row 0) through the exit session,
    `hold` sessions after the reaction session: event_id, row, session, exit_session."""
    parts = []
    for eid, entry, reaction in zip(events["event_id"], events["entry_session"], events["reaction_session"]):
        days = calendars.sessions(entry, pd.Timestamp(reaction) + pd.Timedelta(days=10 + 2 * hold))
        days = days[: 2 + hold] if pd.Timestamp(entry) != pd.Timestamp(reaction) else days[: 1 + hold]
        parts.append(pd.DataFrame({"event_id": eid, "row": np.arange(len(days)), "session": days}))
    if not parts:
        return pd.DataFrame(columns=["event_id", "row", "session", "exit_session"])
    out = pd.concat(parts, ignore_index=True)
    out["exit_session"] = out.groupby("event_id")["session"].transform("max")
    return out


def mark_legs(legs: pd.DataFrame, sched: pd.DataFrame, quotes: pd.DataFrame,
              settle: pd.DataFrame) -> pd.DataFrame:
    """Every leg on every scheduled session: bid, ask, mid, half_spread, status, multiplier.

    `quotes`: event_id, leg, trade_date, bid, ask, multiplier (rows only where quoted);
    `settle`: symbol, trade_date, open, close (bars of the underlyings)."""
    grid = legs.merge(sched[["event_id", "row", "session"]], on="event_id")
    q = quotes.rename(columns={"trade_date": "session"})
    q = q.assign(session=pd.to_datetime(q["session"]))
    grid = grid.assign(session=pd.to_datetime(grid["session"]), expiration=pd.to_datetime(grid["expiration"]))
    g = grid.merge(q[["event_id", "leg", "session", "bid", "ask", "multiplier"]], on=["event_id", "leg", "session"], how="left")
    g = g.sort_values(["event_id", "leg", "row"], kind="mergesort").reset_index(drop=True)
    quoted = g["bid"].notna() & g["ask"].notna()
    g["status"] = np.where(quoted, "quote", "missing")
    # carry the last quote forward within a leg; flag it stale
    carried = g[["bid", "ask", "multiplier"]].where(quoted).groupby([g["event_id"], g["leg"]]).ffill()
    stale = ~quoted & carried["bid"].notna()
    g[["bid", "ask", "multiplier"]] = carried
    g.loc[stale, "status"] = "stale"
    # settlement on and after expiration
    s = settle.assign(trade_date=pd.to_datetime(settle["trade_date"]))
    px = g[["underlying", "expiration", "settlement"]].merge(
        s.rename(columns={"symbol": "underlying", "trade_date": "expiration"}), on=["underlying", "expiration"], how="left")
    settle_px = np.where(px["settlement"].to_numpy() == "AM", px["open"].to_numpy(float), px["close"].to_numpy(float))
    is_call = (g["option_type"] == "C").to_numpy()
    intrinsic = np.where(is_call, np.maximum(settle_px - g["strike"].to_numpy(float), 0.0),
                         np.maximum(g["strike"].to_numpy(float) - settle_px, 0.0))
    expired = (g["session"] >= g["expiration"]).to_numpy()
    g.loc[expired, ["bid", "ask"]] = np.c_[intrinsic[expired], intrinsic[expired]]
    g.loc[expired, "status"] = np.where(np.isfinite(intrinsic[expired]), "settled", "missing")
    g["multiplier"] = g.groupby(["event_id", "leg"])["multiplier"].transform(lambda m: m.ffill().bfill()).fillna(100.0)
    g["mid"] = (g["bid"] + g["ask"]) / 2
    g["half_spread"] = (g["ask"] - g["bid"]) / 2
    return g


def structure_marks(marked: pd.DataFrame) -> pd.DataFrame:
    """Per (event_id, row): the structure's mid and absolute half-spread per unit held long,
    in dollars per structure (x multiplier), the number of contracts per unit, and flags:
    `stale` (some leg carried), `missing` (some leg never quoted: no price)."""
    m = marked
    mult = m["multiplier"].astype(float)
    w = m["weight"].astype(float)
    parts = pd.DataFrame({
        "event_id": m["event_id"], "row": m["row"], "session": m["session"],
        "mid": w * m["mid"] * mult, "half_spread": w.abs() * m["half_spread"] * mult,
        "contracts": w.abs(), "stale": m["status"] == "stale", "missing": m["status"] == "missing",
        "settled": m["status"] == "settled",
    })
    g = parts.groupby(["event_id", "row"], sort=True)
    out = g.agg(session=("session", "first"), mid=("mid", lambda s: s.sum(min_count=len(s))),
                half_spread=("half_spread", lambda s: s.sum(min_count=len(s))), contracts=("contracts", "sum"),
                stale=("stale", "any"), missing=("missing", "any"), settled=("settled", "all"))
    out.loc[out["missing"], ["mid", "half_spread"]] = np.nan
    return out.reset_index()
