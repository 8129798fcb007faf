"""Lake reads for the studies (the only I/O of research.studies): session returns, events,
factor values as of each event's decision time. Everything returned is plain pandas/numpy."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake, NoDataError, calendars


def returns_panel(lake: Lake, symbols=None) -> pd.DataFrame:
    """Simple close-to-close returns, rows = sessions (datetime64[ns], ascending), columns =
    symbols; the first session of each symbol and any gap are NaN. Bars are raw closes, so a
    split shows as a return (the synthetic market has none)."""
    bars = bars_frame(lake, symbols)
    return pd.DataFrame() if bars.empty else returns_from_bars(bars)


def bars_frame(lake: Lake, symbols=None) -> pd.DataFrame:
    """Long (trade_date datetime64[ns], symbol, close) bars of `symbols` (all when None); an
    empty frame when there are none."""
    where, params = None, None
    if symbols is not None:
        symbols = sorted(set(symbols))
        where = "symbol IN (" + ",".join("?" * len(symbols)) + ")"
        params = symbols
    tbl = lake.read_arrow("bars", columns=["trade_date", "symbol", "close"], where=where, params=params)
    if tbl.num_rows == 0:
        return pd.DataFrame(columns=["trade_date", "symbol", "close"])
    return pd.DataFrame({
        "trade_date": tbl["trade_date"].to_numpy().astype("datetime64[ns]"),
        "symbol": tbl["symbol"].to_numpy(zero_copy_only=False).astype(str),
        "close": tbl["close"].to_numpy(),
    })


def close_panel(bars: pd.DataFrame) -> pd.DataFrame:
    """Long (trade_date, symbol, close) -> sessions x symbols closes on the NYSE grid."""
    df = bars.assign(trade_date=pd.to_datetime(bars["trade_date"]).astype("datetime64[ns]"))
    wide = df.pivot(index="trade_date", columns="symbol", values="close").sort_index()
    sess = calendars.sessions(wide.index[0], wide.index[-1])
    return wide.reindex(sess.tz_localize(None) if sess.tz is not None else sess)


def returns_from_bars(df: pd.DataFrame) -> pd.DataFrame:
    """Pure part of `returns_panel`: long (trade_date, symbol, close) -> wide simple returns
    on the NYSE session grid."""
    wide = close_panel(df)
    return wide / wide.shift(1) - 1.0


def market_symbol(lake: Lake) -> str:
    """The index the lake's members belong to (the market of the market model)."""
    rows = lake.df('SELECT DISTINCT "index" FROM index_members ORDER BY 1')
    if rows.empty:
        raise NoDataError("the lake has no index_members rows, so there is no market index for the market model")
    return str(rows.iloc[0, 0])


def load_events(lake: Lake, kinds: list[str], as_of=None) -> pd.DataFrame:
    """Events of the given kinds (known at `as_of` if given), with the payload parsed into
    a dict column `payload_obj`, ordered by reaction session."""
    where = "kind IN (" + ",".join("?" * len(kinds)) + ")"
    ev = lake.read("events", where=where, params=list(kinds), as_of=as_of)
    ev["payload_obj"] = [json.loads(p) if isinstance(p, str) and p else {} for p in ev["payload"]]
    ev["reaction_session"] = pd.to_datetime(ev["reaction_session"])
    return ev.sort_values(["reaction_session", "event_id"], kind="stable").reset_index(drop=True)


def read_event_file(path) -> pd.DataFrame:
    """A user event list: CSV with columns `date` (YYYY-MM-DD, the reaction session) and
    `symbol`, optional `name`. Errors name the file, row and column."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise NoDataError(f"event file {p} does not exist")
    raw = pd.read_csv(p, dtype=str, keep_default_na=False)
    for col in ("date", "symbol"):
        if col not in raw.columns:
            raise NoDataError(f"event file {p} has no column {col!r} (need date, symbol[, name])")
    rows = []
    for i, r in enumerate(raw.itertuples(index=False), start=2):  # row 1 is the header
        try:
            d = dt.date.fromisoformat(r.date.strip())
        except ValueError:
            raise NoDataError(f"event file {p} row {i} column 'date': {r.date!r} is not a date YYYY-MM-DD") from None
        if not r.symbol.strip():
            raise NoDataError(f"event file {p} row {i} column 'symbol' is empty")
        name = getattr(r, "name", "") or f"{r.symbol.strip()} {d}"
        rows.append(dict(event_id=name, kind="user", symbol=r.symbol.strip(),
                         reaction_session=pd.Timestamp(calendars.session_on_or_after(d)), payload_obj={}))
    return pd.DataFrame(rows, columns=["event_id", "kind", "symbol", "reaction_session", "payload_obj"])


def factor_frame(lake: Lake, factor: str) -> pd.DataFrame:
    """(trade_date datetime64, entity, value) rows of one factor, sorted by entity then date."""
    f = lake.read("factors", columns=["trade_date", "entity", "value"], where="factor = ?", params=[factor])
    f["trade_date"] = pd.to_datetime(f["trade_date"])
    return f.sort_values(["entity", "trade_date"], kind="stable").reset_index(drop=True)


def factor_names(lake: Lake) -> set[str]:
    if not lake.files("factors"):
        return set()
    return set(lake.df("SELECT DISTINCT factor FROM factors")["factor"])


def value_as_of(factor: pd.DataFrame, entity: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """For each (entity, decision date) the factor value of the latest trade_date <= the
    decision date (the pre-event close), NaN when none: never a later value."""
    out = np.full(len(entity), np.nan)
    for ent, g in factor.groupby("entity", sort=False):
        sel = np.flatnonzero(np.asarray(entity) == ent)
        if not len(sel):
            continue
        d = g["trade_date"].to_numpy()
        pos = np.searchsorted(d, np.asarray(decision, "datetime64[ns]")[sel], side="right") - 1
        ok = pos >= 0
        out[sel[ok]] = g["value"].to_numpy()[pos[ok]]
    return out


def pre_event_close(reaction: pd.Series) -> np.ndarray:
    """The last session before each reaction session (the decision time of a conditioning
    factor), as datetime64[ns]."""
    return np.array([np.datetime64(calendars.previous_session(d.date()), "ns") for d in pd.to_datetime(reaction)])


def truth_value(lake: Lake, mechanism: str, parameter: str) -> float | None:
    if not lake.files("truth"):
        return None
    t = lake.read("truth", where="mechanism = ? AND parameter = ?", params=[mechanism, parameter])
    return float(t["value"].iloc[0]) if len(t) else None
