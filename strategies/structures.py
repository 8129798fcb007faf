"""Option structures chosen from the chain known at entry (pure pandas/numpy).

A structure is a set of legs with signed weights per one unit held long:
- straddle: +1 ATM call, +1 ATM put
- strangle: +1 call and +1 put nearest |delta| = `delta` (e.g. 0.25)
- calendar: +1 far call, -1 near call at the ATM strike (a debit)
- iron_condor: +1 inner strangle at `delta`, -1 wings at `wing_delta` (a debit when held
  long; the usual credit condor is `side=short`)
Holding a structure short flips every weight. Keeping the "long" unit a debit keeps its value
mostly positive, which is how the engine prices it.

Expiry rule: the first expiration strictly after the reaction session (alive at the exit
close), or, with `expiry_days=N`, the first expiration at least N calendar days after the
entry session. Strike rule: ATM = the strike nearest the entry spot among strikes quoted on
both sides with a positive ask (ties: the lower strike); delta targets use Black-Scholes
deltas from the snapshot's IV (vendor deltas when present).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eventvol.pipelines import bsm, gex

STRUCTURES = ("straddle", "strangle", "calendar", "iron_condor")
LEG_COLUMNS = ["event_id", "leg", "underlying", "root", "expiration", "settlement", "strike",
               "option_type", "weight", "entry_spot", "implied_move"]


def years_to_expiry(trade_date, expiration, settlement) -> np.ndarray:
    """ACT/365 years from 16:00 ET on `trade_date` to 09:30 (AM) or 16:00 (PM) ET on expiry, in
    elapsed time (a DST change in between counts its real hour): the pipelines' convention
    (`pipelines.gex.years_to_expiry`), so a strangle's BSM deltas use the same T as the
    positioning factors."""
    return gex.years_to_expiry(pd.to_datetime(pd.Series(trade_date)).to_numpy("datetime64[D]"),
                               pd.to_datetime(pd.Series(expiration)).to_numpy("datetime64[D]"),
                               pd.Series(settlement).astype(str).to_numpy())


def with_delta(chain: pd.DataFrame) -> pd.DataFrame:
    """Add `delta_used`: the vendor delta when present, else BSM from the row's IV (r=q=0)."""
    t = years_to_expiry(chain["trade_date"], chain["expiration"], chain["settlement"])
    is_call = (chain["option_type"] == "C").to_numpy()
    vol = chain["iv"].to_numpy(float) if "iv" in chain else np.full(len(chain), np.nan)
    g = bsm.greeks(chain["underlying_price"].to_numpy(float), chain["strike"].to_numpy(float),
                   t, np.nan_to_num(vol, nan=0.0), is_call=is_call)
    model = np.where(np.isfinite(vol) & (vol > 0), g["delta"], np.nan)
    vendor = chain["delta"].to_numpy(float) if "delta" in chain else np.full(len(chain), np.nan)
    return chain.assign(delta_used=np.where(np.isfinite(vendor), vendor, model))


def _pick_expiry(c: pd.DataFrame, expiry_days: int | None) -> pd.DataFrame:
    if expiry_days is None:
        ok = c["expiration"] > c["reaction_session"]
    else:
        ok = c["expiration"] >= c["entry_session"] + pd.to_timedelta(expiry_days, "D")
    c = c[ok]
    first = c.groupby("event_id")["expiration"].transform("min")
    return c[c["expiration"] == first]


def _atm(c: pd.DataFrame) -> pd.DataFrame:
    """Per event: the ATM (root, expiration, strike) with both sides quoted, plus the
    straddle mid over spot (the implied move)."""
    both = c.groupby(["event_id", "root", "expiration", "strike"])["option_type"].transform("nunique") == 2
    c = c[both].assign(distance=lambda x: (x["strike"] - x["underlying_price"]).abs())
    c = c.sort_values(["event_id", "distance", "strike", "root", "option_type"], kind="mergesort")
    best = c.drop_duplicates("event_id", keep="first")[["event_id", "root", "expiration", "strike"]]
    rows = c.merge(best, on=["event_id", "root", "expiration", "strike"])
    mid = ((rows["bid"] + rows["ask"]) / 2).groupby(rows["event_id"]).sum()
    spot = rows.groupby("event_id")["underlying_price"].first()
    return best.set_index("event_id").assign(implied_move=mid / spot, entry_spot=spot).reset_index()


def _by_delta(c: pd.DataFrame, option_type: str, target: float) -> pd.DataFrame:
    """Per event: the contract of `option_type` whose |delta| is nearest `target`."""
    s = c[(c["option_type"] == option_type) & c["delta_used"].notna()]
    s = s.assign(err=(s["delta_used"].abs() - target).abs())
    s = s.sort_values(["event_id", "err", "strike"], kind="mergesort")
    return s.drop_duplicates("event_id", keep="first")


def _legs(rows: pd.DataFrame, leg: int, option_type: str, weight: float) -> pd.DataFrame:
    return rows.assign(leg=leg, option_type=option_type, weight=weight)


def select_structure(entry_chains: pd.DataFrame, events: pd.DataFrame, structure: str = "straddle",
                     *, delta: float = 0.25, wing_delta: float = 0.10, expiry_days: int | None = None,
                     far_days: int = 28) -> pd.DataFrame:
    """Legs (LEG_COLUMNS) of one structure per event from the entry-session chain only.

    `entry_chains` carry the `event_id` they were fetched for (see loaders.chains_at);
    `events` has event_id, entry_session and reaction_session. Events without a suitable
    structure are absent from the result."""
    if structure not in STRUCTURES:
        raise ValueError(f"structure must be one of {', '.join(STRUCTURES)}, not {structure!r}")
    if entry_chains.empty:
        return pd.DataFrame(columns=LEG_COLUMNS)
    c = entry_chains.merge(events[["event_id", "entry_session", "reaction_session"]], on="event_id")
    for col in ("expiration", "entry_session", "reaction_session", "trade_date"):
        c[col] = pd.to_datetime(c[col])
    c = c[(c["ask"] > 0) & c["bid"].notna()]
    near = _pick_expiry(c, expiry_days)
    atm = _atm(near)
    keep = ["event_id", "underlying", "root", "expiration", "settlement", "strike"]
    info = atm[["event_id", "entry_spot", "implied_move"]]
    if structure == "straddle":
        base = near.merge(atm[["event_id", "root", "expiration", "strike"]])
        base = base.drop_duplicates(["event_id", "option_type"])[keep + ["option_type"]]
        legs = pd.concat([_legs(base[base.option_type == "C"][keep], 0, "C", 1.0),
                          _legs(base[base.option_type == "P"][keep], 1, "P", 1.0)])
    elif structure in ("strangle", "iron_condor"):
        d = with_delta(near)
        parts = [_legs(_by_delta(d, "C", delta)[keep], 0, "C", 1.0),
                 _legs(_by_delta(d, "P", delta)[keep], 1, "P", 1.0)]
        if structure == "iron_condor":
            if not wing_delta < delta:
                raise ValueError("iron_condor needs wing_delta < delta (wings further out of the money)")
            parts += [_legs(_by_delta(d, "C", wing_delta)[keep], 2, "C", -1.0),
                      _legs(_by_delta(d, "P", wing_delta)[keep], 3, "P", -1.0)]
        legs = pd.concat(parts)
        # every leg found and the wings strictly outside the body, else no structure
        n = legs.groupby("event_id")["leg"].transform("nunique")
        legs = legs[n == (4 if structure == "iron_condor" else 2)]
        if structure == "iron_condor":
            k = legs.pivot_table(index="event_id", columns="leg", values="strike")
            good = k.index[(k[2] > k[0]) & (k[3] < k[1])]
            legs = legs[legs["event_id"].isin(good)]
    else:  # calendar: call at the ATM strike, near expiry short, far expiry long
        near_leg = near.merge(atm[["event_id", "root", "expiration", "strike"]])
        near_leg = near_leg[near_leg["option_type"] == "C"].drop_duplicates("event_id")
        far = c.merge(near_leg[["event_id", "root", "strike", "expiration"]].rename(
            columns={"expiration": "near_exp"}), on=["event_id", "root", "strike"])
        far = far[(far["option_type"] == "C") & (far["expiration"] >= far["near_exp"] + pd.to_timedelta(far_days, "D"))]
        far = far.sort_values(["event_id", "expiration"], kind="mergesort").drop_duplicates("event_id")
        both = set(far["event_id"])
        legs = pd.concat([_legs(far[keep], 0, "C", 1.0),
                          _legs(near_leg[near_leg.event_id.isin(both)][keep], 1, "C", -1.0)])
    legs = legs.merge(info, on="event_id")
    return legs[LEG_COLUMNS].sort_values(["event_id", "leg"], kind="mergesort").reset_index(drop=True)
