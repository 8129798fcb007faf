"""Events to sessions: BMO/AMC/INTRADAY, weekends, NYSE holidays and half days, UNKNOWN timing."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from eventvol.data_lake import calendars
from eventvol.strategies.calendar import event_sessions


def _ev(rows):
    return pd.DataFrame([{"event_id": i, "scheduled_ts": calendars.market_time_utc(d, hhmm), "timing": tm}
                         for i, (d, hhmm, tm) in enumerate(rows)])


def test_bmo_amc_weekends_holidays_and_half_days():
    ev = event_sessions(_ev([
        ("2023-03-15", "07:00", "BMO"),   # Wed BMO: reacts Wed, enters Tue close
        ("2023-03-17", "16:05", "AMC"),   # Fri AMC: reacts Mon
        ("2023-07-04", "07:00", "BMO"),   # holiday BMO: reacts Wed 5th, enters the 3rd (half day)
        ("2023-11-22", "16:05", "AMC"),   # AMC before Thanksgiving: reacts the Friday half day
        ("2023-09-20", "14:00", "INTRADAY"),  # FOMC: reacts that session
    ])).set_index("event_id")
    assert ev.loc[0, "reaction_session"] == dt.date(2023, 3, 15) and ev.loc[0, "entry_session"] == dt.date(2023, 3, 14)
    assert ev.loc[1, "reaction_session"] == dt.date(2023, 3, 20) and ev.loc[1, "entry_session"] == dt.date(2023, 3, 17)
    assert ev.loc[2, "reaction_session"] == dt.date(2023, 7, 5) and ev.loc[2, "entry_session"] == dt.date(2023, 7, 3)
    # the pre-event close on a half day is 13:00 ET
    assert ev.loc[2, "entry_time"] == pd.Timestamp("2023-07-03 13:00", tz="America/New_York").tz_convert("UTC")
    assert ev.loc[3, "reaction_session"] == dt.date(2023, 11, 24)
    assert ev.loc[4, "reaction_session"] == dt.date(2023, 9, 20) and ev.loc[4, "entry_session"] == dt.date(2023, 9, 19)
    assert ev.loc[0, "entry_time"] == pd.Timestamp("2023-03-14 20:00", tz="UTC")


def test_unknown_timing_is_flagged_and_left_out_by_default():
    raw = _ev([("2023-03-15", "07:00", "BMO"), ("2023-03-16", "12:00", "UNKNOWN")])
    assert list(event_sessions(raw)["event_id"]) == [0]
    both = event_sessions(raw, include_unknown=True).set_index("event_id")
    assert not both.loc[1, "timing_known"] and both.loc[1, "reaction_session"] is None
    assert both.loc[0, "timing_known"]


def test_session_cache_on_disk_equals_the_calendar_and_a_bad_file_is_recomputed(tmp_path, monkeypatch):
    from eventvol.data_lake import calendars

    fresh = calendars.nyse().sessions.values.astype("datetime64[D]")
    path = tmp_path / "__pycache__" / "sessions.npy"
    monkeypatch.setattr(calendars, "_sessions_cache_path", lambda: path)
    calendars._session_array.cache_clear()
    try:
        assert (calendars._session_array() == fresh).all() and path.exists()  # computed, then stored
        calendars._session_array.cache_clear()
        assert (calendars._session_array() == fresh).all()  # read back
        path.write_bytes(b"not an array")
        calendars._session_array.cache_clear()
        assert (calendars._session_array() == fresh).all()  # a damaged file is recomputed and replaced
        assert (np.load(path) == fresh).all() and len(fresh) > 11_000
        assert calendars.sessions("2024-12-23", "2024-12-27").strftime("%m-%d").tolist() == \
            ["12-23", "12-24", "12-26", "12-27"]
    finally:
        calendars._session_array.cache_clear()
