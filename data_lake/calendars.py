"""NYSE sessions (exchange_calendars XNYS, always built with an explicit range) and the
clock conventions of the lake: market times are US/Eastern, stored timestamps are UTC."""

from __future__ import annotations

import datetime as dt
import os
import warnings
from functools import lru_cache
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd

EASTERN = "America/New_York"
CAL_START = "1990-01-02"
CAL_END = "2035-12-31"  # explicit: the library's default range ends in late 2027


@lru_cache(maxsize=1)
def nyse() -> xcals.ExchangeCalendar:
    with warnings.catch_warnings():
        # exchange_calendars 4.13 reads Series.values of tz-aware data (a pandas 3.1
        # deprecation inside the library, not ours)
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xcals.get_calendar("XNYS", start=CAL_START, end=CAL_END)


def _sessions_cache_path() -> Path:
    """Where the session array is kept between processes: beside this module's bytecode,
    named by the calendar library's version and the range (a new version recomputes it)."""
    return Path(__file__).parent / "__pycache__" / f"xnys_sessions_{xcals.__version__}_{CAL_START}_{CAL_END}.npy"


@lru_cache(maxsize=1)
def _session_array() -> np.ndarray:
    """Every NYSE session in [CAL_START, CAL_END] as datetime64[D]. Building the calendar costs
    ~0.25 s, most of a short command's time, so the array is cached on disk (best effort: a
    read-only install computes it every time)."""
    path = _sessions_cache_path()
    try:
        cached = np.load(path, allow_pickle=False)
        if cached.dtype == np.dtype("datetime64[D]") and cached.ndim == 1 and len(cached) > 10_000:
            return cached
    except (OSError, ValueError):
        pass
    out = nyse().sessions.values.astype("datetime64[D]")
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out, allow_pickle=False)
        os.replace(tmp, path)  # whole or not at all, whatever runs beside
    except OSError:
        pass
    return out


def _d64(d) -> np.datetime64:
    return np.datetime64(pd.Timestamp(d).date(), "D")


def sessions(start, end) -> pd.DatetimeIndex:
    """NYSE sessions in [start, end], as tz-naive midnight timestamps."""
    s = _session_array()
    lo, hi = np.searchsorted(s, _d64(start), "left"), np.searchsorted(s, _d64(end), "right")
    return pd.DatetimeIndex(s[lo:hi].astype("datetime64[ns]"))


def is_session(d) -> bool:
    s = _session_array()
    i = np.searchsorted(s, _d64(d))
    return bool(i < len(s) and s[i] == _d64(d))


def session_on_or_before(d) -> dt.date:
    s = _session_array()
    i = np.searchsorted(s, _d64(d), "right") - 1
    return pd.Timestamp(s[i]).date()


def session_on_or_after(d) -> dt.date:
    s = _session_array()
    i = np.searchsorted(s, _d64(d), "left")
    return pd.Timestamp(s[i]).date()


def previous_session(d) -> dt.date:
    """The last session strictly before `d`."""
    s = _session_array()
    i = np.searchsorted(s, _d64(d), "left") - 1
    return pd.Timestamp(s[i]).date()


def next_session(d) -> dt.date:
    """The first session strictly after `d`."""
    s = _session_array()
    i = np.searchsorted(s, _d64(d), "right")
    return pd.Timestamp(s[i]).date()


def session_close_utc(d) -> pd.Timestamp:
    """The scheduled close of session `d` in UTC (13:00 ET on half days)."""
    return nyse().session_close(pd.Timestamp(d).normalize())


def market_time_utc(d, hhmm: str) -> pd.Timestamp:
    """Wall-clock US/Eastern time `hhmm` on date `d`, in UTC."""
    return pd.Timestamp(f"{pd.Timestamp(d).date()} {hhmm}").tz_localize(EASTERN).tz_convert("UTC")
