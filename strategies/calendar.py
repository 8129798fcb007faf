"""Events to sessions (ARCHITECTURE.md conventions).

A before-open (BMO) report reacts on its own session (or the next session if it falls on a
non-session day); an after-close (AMC) report reacts on the next session; INTRADAY events
react on their session. The pre-event close is the last close before the reaction session.
UNKNOWN timing is flagged and left out by default.
"""

from __future__ import annotations

import pandas as pd

from eventvol.data_lake import calendars

TRADABLE_TIMINGS = ("BMO", "AMC", "INTRADAY")


def reaction_session(scheduled_ts: pd.Timestamp, timing: str):
    """The session whose close-to-close return first contains the event, or None."""
    local_day = pd.Timestamp(scheduled_ts).tz_convert(calendars.EASTERN).date()
    if timing in ("BMO", "INTRADAY"):
        return calendars.session_on_or_after(local_day)
    if timing == "AMC":
        return calendars.next_session(local_day)
    return None


def event_sessions(events: pd.DataFrame, include_unknown: bool = False) -> pd.DataFrame:
    """Add `reaction_session`, `entry_session` (pre-event close) and `entry_time` (that
    close, UTC) to an events frame; drop UNKNOWN timing unless asked (flagged either way)."""
    out = events.copy()
    out["timing_known"] = out["timing"].isin(TRADABLE_TIMINGS)
    if not include_unknown:
        out = out[out["timing_known"]]
    out["reaction_session"] = [reaction_session(ts, tm) for ts, tm in zip(out["scheduled_ts"], out["timing"])]
    out["entry_session"] = [calendars.previous_session(d) if d is not None else None for d in out["reaction_session"]]
    out["entry_time"] = [calendars.session_close_utc(d) if d is not None else pd.NaT for d in out["entry_session"]]
    return out.reset_index(drop=True)
