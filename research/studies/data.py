"""Lake reads for the studies (the only I/O of research.studies): session returns, events,
factor values as of each event's decision time. Everything returned is plain pandas/numpy."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake, NoDataError, calendars


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
    """Long (trade_date, symbol, close) -> wide simple returns
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
    return parse_events(lake.read("events", where=where, params=list(kinds), as_of=as_of))


def read_event_file(path) -> pd.DataFrame:
    """A user event list: CSV with columns `date` (YYYY-MM-DD, the reaction session) and
    `symbol`, optional `name`. Errors name the file, row and column."""
    from pathlib import Path

    p = Path(path)
    if not p.exists():
        raise NoDataError(f"event file {p} does not exist")
    if not p.is_file():
        raise NoDataError(f"event file {p} is a folder, not a CSV file")
    with open(p, "rb") as fh:
        head = fh.read(1 << 16)
    nul = head.find(b"\0")
    if nul >= 0:
        raise NoDataError(f"event file {p} is binary (a NUL byte at offset {nul}), "
                          "not a CSV with columns date, symbol[, name]")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(head) < 1 << 16 or exc.start < len(head) - 4:  # not a character cut by the sample
            row = head[:exc.start].count(b"\n") + 1
            raise NoDataError(f"event file {p} is not UTF-8 text (byte {exc.start}, row {row} cannot be decoded)") from None
    try:
        raw = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise NoDataError(f"event file {p} is not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise NoDataError(f"event file {p} is not a readable CSV ({' '.join(str(exc).split())})") from None
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


# ----------------------------------------------------------------------------- StudyData
EVENT_COLUMNS = ["event_id", "kind", "symbol", "reaction_session", "payload_obj"]


def parse_events(events: pd.DataFrame) -> pd.DataFrame:
    """Raw `events` rows -> payload parsed into `payload_obj`, reaction_session datetime,
    ordered by (reaction_session, event_id)."""
    ev = events.copy()
    if "payload_obj" not in ev.columns:
        ev["payload_obj"] = [json.loads(p) if isinstance(p, str) and p else {} for p in ev.get("payload", [])]
    ev["reaction_session"] = pd.to_datetime(ev["reaction_session"])
    return ev.sort_values(["reaction_session", "event_id"], kind="stable").reset_index(drop=True)


class StudyData:
    """What a study kind or mechanism estimator may read, as plain pandas. Two
    implementations: `LakeData` (a lake, point in time) and `MemoryData` (in-memory tables,
    e.g. `data_lake.synthetic.simulate`, for the size study and tests); kinds never touch
    the lake themselves, so the CLI, the report and the size study run the same code.

    Subclasses implement market_symbol, bars, events, factor, factor_names, table and truth.
    """

    def market_symbol(self) -> str:
        """The index whose members are studied (the market of the market model)."""
        raise NotImplementedError

    def bars(self, symbols=None) -> pd.DataFrame:
        """Long (trade_date datetime64[ns], symbol, close) bars; empty when none."""
        raise NotImplementedError

    def events(self, kinds=None) -> pd.DataFrame:
        """Events of the given kinds (all when None) as `parse_events` returns them; an empty
        frame with EVENT_COLUMNS when there are none."""
        raise NotImplementedError

    def factor(self, name: str) -> pd.DataFrame:
        """(trade_date datetime64, entity, value) rows of one factor, sorted by entity then date."""
        raise NotImplementedError

    def factor_names(self) -> set[str]:
        raise NotImplementedError

    def table(self, name: str) -> pd.DataFrame | None:
        """Another table (e.g. short_interest), None when absent."""
        raise NotImplementedError

    def truth(self, mechanism: str, parameter: str) -> float | None:
        """A planted value of the synthetic market's `truth` table; None on real data."""
        raise NotImplementedError

    def returns(self, symbols=None) -> pd.DataFrame:
        """Simple close-to-close returns, sessions x symbols on the NYSE grid."""
        bars = self.bars(symbols)
        return pd.DataFrame() if bars.empty else returns_from_bars(bars)

    def closes(self) -> pd.DataFrame:
        """Sessions x symbols closes on the NYSE grid (every symbol)."""
        bars = self.bars()
        return pd.DataFrame() if bars.empty else close_panel(bars)

    def require_factors(self, names) -> None:
        """Raise NotEvaluable naming the first factor that is missing."""
        from eventvol.research.studies.spec import NotEvaluable

        have = self.factor_names()
        for n in names:
            if n not in have:
                raise NotEvaluable(f"factor {n!r} is not in the lake (materialize its family first)")


class LakeData(StudyData):
    """StudyData over a lake (the only I/O of the studies)."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self._factors: dict[str, pd.DataFrame] = {}

    def market_symbol(self) -> str:
        return market_symbol(self.lake)

    def bars(self, symbols=None) -> pd.DataFrame:
        return bars_frame(self.lake, symbols)

    def events(self, kinds=None) -> pd.DataFrame:
        if not self.lake.files("events"):
            return pd.DataFrame(columns=EVENT_COLUMNS)
        if kinds is None:
            return parse_events(self.lake.read("events"))
        return load_events(self.lake, list(kinds))

    def factor(self, name: str) -> pd.DataFrame:
        if name not in self._factors:
            self._factors[name] = factor_frame(self.lake, name)
        return self._factors[name]

    def factor_names(self) -> set[str]:
        return factor_names(self.lake)

    def table(self, name: str) -> pd.DataFrame | None:
        return self.lake.read(name) if self.lake.files(name) else None

    def truth(self, mechanism: str, parameter: str) -> float | None:
        return truth_value(self.lake, mechanism, parameter)


class MemoryData(StudyData):
    """StudyData over in-memory tables named like the lake's (bars, events, index_members,
    short_interest, truth, ...). `factors` maps a factor name to its rows (trade_date,
    entity, value) or to a zero-argument function computing them (called once, when a
    study first asks)."""

    def __init__(self, tables: dict, factors: dict | None = None, market: str | None = None):
        self.tables = tables
        self._factor_src = dict(factors or {})
        self._factors: dict[str, pd.DataFrame] = {}
        self._market = market

    def market_symbol(self) -> str:
        if self._market:
            return self._market
        members = self.tables.get("index_members")
        if members is None or len(members) == 0:
            raise NoDataError("the data have no index_members rows, so there is no market index for the market model")
        return str(sorted(set(members["index"]))[0])

    def bars(self, symbols=None) -> pd.DataFrame:
        b = self.tables.get("bars")
        if b is None or len(b) == 0:
            return pd.DataFrame(columns=["trade_date", "symbol", "close"])
        b = b[["trade_date", "symbol", "close"]]
        if symbols is not None:
            b = b[b["symbol"].isin(set(symbols))]
        return b.assign(trade_date=pd.to_datetime(b["trade_date"]).astype("datetime64[ns]")).reset_index(drop=True)

    def events(self, kinds=None) -> pd.DataFrame:
        ev = self.tables.get("events")
        if ev is None or len(ev) == 0:
            return pd.DataFrame(columns=EVENT_COLUMNS)
        if kinds is not None:
            ev = ev[ev["kind"].isin(list(kinds))]
        return parse_events(ev)

    def factor(self, name: str) -> pd.DataFrame:
        if name not in self._factors:
            if name not in self._factor_src:
                self.require_factors([name])
            src = self._factor_src[name]
            f = src() if callable(src) else src
            f = f[["trade_date", "entity", "value"]].assign(trade_date=pd.to_datetime(f["trade_date"]))
            self._factors[name] = f.sort_values(["entity", "trade_date"], kind="stable").reset_index(drop=True)
        return self._factors[name]

    def factor_names(self) -> set[str]:
        return set(self._factor_src)

    def table(self, name: str) -> pd.DataFrame | None:
        t = self.tables.get(name)
        return None if t is None else t

    def truth(self, mechanism: str, parameter: str) -> float | None:
        t = self.tables.get("truth")
        if t is None or len(t) == 0:
            return None
        row = t[(t["mechanism"] == mechanism) & (t["parameter"] == parameter)]
        return float(row["value"].iloc[0]) if len(row) else None
