"""Shared pieces of the cross-sectional factor families: panel loading (I/O) and the pure
rolling statistics they are built from.

Panels are wide: rows are sessions (ascending `datetime64[D]`), columns are symbols. Missing
closes are NaN, so a window that touches a gap yields NaN ("members with a full window").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from eventvol.data_lake import Lake, calendars
from eventvol.pipelines.crosssection import kernels
from eventvol.pipelines.registry import FACTOR_ROW_COLUMNS

TRADING_DAYS = 252
PCT_WINDOW_SESSIONS = 3 * TRADING_DAYS  # trailing 3-year window of percentile ranks
PCT_MIN_OBS = 60  # fewer valid past values than this and a percentile rank means little


# --------------------------------------------------------------------------- pure helpers
@dataclass(frozen=True)
class Panel:
    """A wide panel: `dates` (datetime64[D], ascending), `symbols`, `values[dates, symbols]`."""

    dates: np.ndarray
    symbols: np.ndarray
    values: np.ndarray

    def col(self, symbol: str) -> np.ndarray:
        idx = np.flatnonzero(self.symbols == symbol)
        if idx.size == 0:
            return np.full(len(self.dates), np.nan)
        return self.values[:, idx[0]]


def pivot(dates: np.ndarray, symbols: np.ndarray, values: np.ndarray) -> Panel:
    """Long (date, symbol, value) arrays -> a wide Panel (numpy only, no pandas pivot)."""
    d = np.asarray(dates, dtype="datetime64[D]")
    udates, di = np.unique(d, return_inverse=True)
    usyms, si = np.unique(np.asarray(symbols, dtype=object).astype(str), return_inverse=True)
    out = np.full((len(udates), len(usyms)), np.nan)
    out[di, si] = np.asarray(values, float)
    return Panel(udates, usyms.astype(object), out)


def log_returns(close: np.ndarray) -> np.ndarray:
    """Daily log close-to-close returns; row 0 is NaN. Non-positive closes give NaN."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lc = np.log(np.where(close > 0, close, np.nan))
    out = np.full_like(lc, np.nan)
    out[1:] = lc[1:] - lc[:-1]
    return out


def simple_returns(close: np.ndarray) -> np.ndarray:
    out = np.full(close.shape, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = close[1:] / close[:-1] - 1.0
    return out


def rolling_std(x: np.ndarray, window: int) -> np.ndarray:
    """Sample std (ddof=1) over the trailing `window` rows, per column; NaN unless all
    `window` values are finite.

    Each window's sums are taken over that window alone (no running cumulative sum), so a
    value depends only on its own window's inputs: bit for bit the same whatever history or
    future the panel holds, which is what point-in-time recomputation in month
    chunks needs. The one-pass formula is accurate for returns (mean << std)."""
    x = np.asarray(x, float)
    squeeze = x.ndim == 1
    if squeeze:
        x = x[:, None]
    if x.shape[1] > 1:
        # compiled loop, same summation order as numpy's strided reduction below (oldest row
        # first for multi-column panels): equal bit for bit, without [rows, cols, window] passes
        return kernels.rolling_std_cols(np.ascontiguousarray(x), int(window), 1.0)
    out = np.full(x.shape, np.nan)
    if x.shape[0] >= window:
        # numpy reduces each window of the strided view on its own (no running sum); for one
        # column that is numpy's pairwise sum, kept so single series keep their exact values
        s1 = np.lib.stride_tricks.sliding_window_view(x, window, axis=0).sum(axis=-1)
        s2 = np.lib.stride_tricks.sliding_window_view(x * x, window, axis=0).sum(axis=-1)
        var = (s2 - s1 * s1 / window) / (window - 1)
        out[window - 1:] = np.sqrt(np.maximum(var, 0.0))  # NaN inputs propagate: no full window
    return out[:, 0] if squeeze else out


def realized_vol(log_ret: np.ndarray, window: int) -> np.ndarray:
    """Annualized realized vol (ARCHITECTURE: ddof=1 std of daily log returns x sqrt(252))."""
    x = np.asarray(log_ret, float)
    if x.ndim == 2 and x.shape[1] > 1:
        # the same product std * sqrt(252), taken inside the kernel (no extra panel pass)
        return kernels.rolling_std_cols(np.ascontiguousarray(x), int(window), float(np.sqrt(TRADING_DAYS)))
    return rolling_std(x, window) * np.sqrt(TRADING_DAYS)


def trailing_percentile(x: np.ndarray, window: int = PCT_WINDOW_SESSIONS,
                        min_obs: int = PCT_MIN_OBS) -> np.ndarray:
    """Point-in-time percentile rank in [0, 1]: the share of finite values among the trailing
    `window` rows (today included) that are <= today's value. NaN when today's value is NaN or
    fewer than `min_obs` finite values are in the window."""
    x = np.asarray(x, float)
    if x.ndim == 1:
        return trailing_percentile_panel(x[:, None], window, min_obs)[:, 0]
    return trailing_percentile_panel(x, window, min_obs)


def trailing_percentile_panel(x: np.ndarray, window: int = PCT_WINDOW_SESSIONS,
                              min_obs: int = PCT_MIN_OBS) -> np.ndarray:
    """`trailing_percentile` of each column of a [rows, series] array in one compiled pass
    (integer counts, so the same numbers as one series at a time)."""
    return kernels.trailing_percentile_cols(np.ascontiguousarray(x, dtype=float), int(window), int(min_obs))


def member_mask(members: pd.DataFrame, index: str, dates: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Boolean [dates, symbols]: symbol is a member of `index` on that date (start_date <=
    D <= end_date, a NULL end_date meaning still a member)."""
    mask = np.zeros((len(dates), len(symbols)), bool)
    pos = {s: i for i, s in enumerate(symbols)}
    m = members[members["index"] == index]
    if m.empty:
        return mask
    col = np.array([pos.get(s, -1) for s in m["symbol"]], dtype=np.int64)
    lo64 = pd.to_datetime(m["start_date"]).to_numpy().astype("datetime64[D]")
    if "known_at" in m.columns:
        # point in time: a membership counts from the first session whose 16:00 ET close is at or
        # after its known_at (a backdated start_date cannot leak); NULL (lakes written before the
        # column) = known at the open of start_date
        known = pd.to_datetime(m["known_at"], utc=True).dt.tz_convert("America/New_York")
        usable = (known - pd.Timedelta(hours=16)).dt.ceil("D").dt.tz_localize(None)
        usable64 = usable.to_numpy().astype("datetime64[D]")
        later = ~np.isnat(usable64) & (usable64 > lo64)
        lo64 = np.where(later, usable64, lo64)
    hi64 = pd.to_datetime(m["end_date"]).to_numpy().astype("datetime64[D]")
    hi64[np.isnat(hi64)] = np.datetime64("9999-12-31", "D")  # NULL end: still a member
    keep = col >= 0
    # each membership is the row span [first, stop) of the ascending dates: one slice each
    first = np.searchsorted(dates, lo64[keep], "left")
    stop = np.searchsorted(dates, hi64[keep], "right")
    for c, a, b in zip(col[keep].tolist(), first.tolist(), stop.tolist()):
        mask[a:b, c] = True
    return mask


def weight_panel(weights: pd.DataFrame, index: str, dates: np.ndarray, symbols: np.ndarray,
                 close_ns: np.ndarray) -> np.ndarray:
    """Index weights [dates, symbols] as known at each session's close: the latest snapshot
    (`as_of`) that is both dated <= D and known (`known_at` <= close of D; a missing known_at
    counts as known on as_of). A snapshot replaces the whole weight vector. NaN where no
    snapshot is known yet."""
    out = np.full((len(dates), len(symbols)), np.nan)
    w = weights[weights["index"] == index]
    if w.empty or len(dates) == 0:
        return out
    pos = {s: i for i, s in enumerate(symbols)}
    as_of = w["as_of"].to_numpy(dtype="datetime64[D]")
    known = pd.to_datetime(w["known_at"], utc=True)
    known_ns = np.where(known.isna().to_numpy(), np.iinfo(np.int64).min, known.astype("int64").to_numpy())
    col = np.array([pos.get(s, -1) for s in w["symbol"]], dtype=np.int64)
    val = w["weight"].to_numpy(float)
    for snap in np.unique(as_of):  # ascending: later snapshots overwrite earlier ones
        rows = np.flatnonzero(as_of == snap)
        first = max(int(np.searchsorted(dates, snap, "left")),
                    int(np.searchsorted(close_ns, known_ns[rows].max(), "left")))
        if first >= len(dates):
            continue
        keep = rows[col[rows] >= 0]
        out[first:, :] = np.nan
        out[first:, col[keep]] = val[keep]
    return out


def long_rows(factor: str, dates: np.ndarray, entity, values: np.ndarray,
              start: dt.date, end: dt.date) -> pd.DataFrame:
    """Long factor rows for dates in [start, end] with finite values."""
    dates = np.asarray(dates, dtype="datetime64[D]")
    values = np.asarray(values, float)
    keep = (dates >= np.datetime64(start, "D")) & (dates <= np.datetime64(end, "D")) & np.isfinite(values)
    if np.ndim(entity) == 0:
        # one entity: build its Arrow strings directly (object -> string inference is slow)
        ent = string_column(np.zeros(int(keep.sum()), np.int64), [str(entity)])
    else:
        ent = np.broadcast_to(np.asarray(entity, dtype=object), values.shape)[keep]
    return pd.DataFrame({"factor": factor, "trade_date": dates[keep], "entity": ent, "value": values[keep]},
                        columns=FACTOR_ROW_COLUMNS)


def long_rows_panel(factor: str, dates: np.ndarray, symbols: np.ndarray, values: np.ndarray,
                    start: dt.date, end: dt.date) -> pd.DataFrame:
    """Long factor rows of a [dates, symbols] panel (entity = symbol) for dates in [start, end]
    with finite values. Entities are built as Arrow strings from column codes: converting a
    million Python strings would cost more than the factor itself."""
    dates = np.asarray(dates, dtype="datetime64[D]")
    inside = (dates >= np.datetime64(start, "D")) & (dates <= np.datetime64(end, "D"))
    keep = inside[:, None] & np.isfinite(values)
    ti, si = np.nonzero(keep)
    return pd.DataFrame({"factor": string_column(np.zeros(len(ti), np.int64), [factor]), "trade_date": dates[ti],
                         "entity": string_column(si, [str(x) for x in symbols]),
                         "value": values[ti, si]}, columns=FACTOR_ROW_COLUMNS)


def long_rows_block(factors, dates: np.ndarray, entity: str, values: np.ndarray,
                    start: dt.date, end: dt.date) -> pd.DataFrame:
    """Long rows of several factors of one entity at once: `values[dates, k]` belongs to
    `factors[k]`; dates in [start, end], finite values only. One frame instead of one per
    factor (frame construction, not arithmetic, dominated the per-index outputs)."""
    dates = np.asarray(dates, dtype="datetime64[D]")
    values = np.asarray(values, float)
    inside = (dates >= np.datetime64(start, "D")) & (dates <= np.datetime64(end, "D"))
    keep = (inside[:, None] & np.isfinite(values)).T  # factor-major, dates ascending within
    ki, ti = np.nonzero(keep)
    return pd.DataFrame({"factor": string_column(ki, [str(f) for f in factors]), "trade_date": dates[ti],
                         "entity": string_column(np.zeros(len(ti), np.int64), [str(entity)]),
                         "value": values[ti, ki]}, columns=FACTOR_ROW_COLUMNS)


def string_column(codes: np.ndarray, names: list[str]) -> pd.Series:
    """pandas string column `names[codes[i]]` (Arrow-backed, NaN as missing value)."""
    return pd.Series(string_array_from_codes(codes, names), dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def string_array_from_codes(codes: np.ndarray, names: list[str]) -> pa.StringArray:
    """Arrow string array `names[codes[i]]`: Arrow's `take` on the few distinct names copies
    bytes in C++, several times faster than casting a dictionary array or going through a
    million Python strings."""
    return pa.array(names, pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def concat_rows(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=FACTOR_ROW_COLUMNS)
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------- I/O helpers
def lookback_start(start, sessions: int) -> dt.date:
    """The session `sessions` NYSE sessions before `start` (clipped to the calendar start)."""
    s = calendars._session_array()
    i = int(np.searchsorted(s, np.datetime64(pd.Timestamp(start).date(), "D"), "left"))
    return pd.Timestamp(s[max(i - sessions, 0)]).date()


def session_closes_utc_ns(dates: np.ndarray) -> np.ndarray:
    """Scheduled close of each session as UTC epoch nanoseconds (13:00 ET on half days; dates
    off the NYSE calendar fall back to 16:00 ET)."""
    idx = pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[ns]"))
    closes = calendars.nyse().closes.reindex(idx)
    fallback = (idx + pd.Timedelta(hours=16)).tz_localize(calendars.EASTERN).tz_convert("UTC")
    closes = closes.dt.tz_convert("UTC") if closes.dt.tz is not None else closes.dt.tz_localize("UTC")
    out = pd.DatetimeIndex(closes).asi8.copy()
    missing = closes.isna().to_numpy()
    out[missing] = fallback.asi8[missing]
    return out


def load_bars(lake: Lake, lo: dt.date, hi: dt.date, columns=("close",), symbols=None) -> pa.Table:
    """Bars (trade_date, symbol, *columns) for trade dates in [lo, hi], sorted by symbol, date."""
    where, params = ["trade_date >= ?", "trade_date <= ?"], [lo, hi]
    if symbols is not None:
        where.append("list_contains(?, symbol)")
        params.append(list(symbols))
    return lake.read_arrow("bars", columns=["trade_date", "symbol", *columns], where=" AND ".join(where), params=params)


def bars_panel(tbl: pa.Table, column: str = "close") -> Panel:
    """Arrow bars -> wide Panel, straight through numpy (pandas string/date conversion is slow)."""
    if tbl.num_rows == 0:
        return Panel(np.zeros(0, "datetime64[D]"), np.zeros(0, object), np.zeros((0, 0)))
    dates = tbl.column("trade_date").to_numpy().astype("datetime64[D]")
    syms = tbl.column("symbol").to_numpy(zero_copy_only=False)
    col = tbl.column(column)
    if pa.types.is_integer(col.type):
        col = col.cast(pa.float64())
    return pivot(dates, syms, col.to_numpy(zero_copy_only=False))


def load_members(lake: Lake) -> pd.DataFrame:
    return lake.read("index_members")


def load_weights(lake: Lake, hi: dt.date) -> pd.DataFrame:
    """Index weights with as_of <= hi; the known_at filter per date happens in compute."""
    return lake.read("index_weights", where="as_of <= ?", params=[hi])
