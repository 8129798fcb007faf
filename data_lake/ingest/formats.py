"""Vendor formats mapped onto the canonical tables (see docs/ingest.md for every rule).

A format is a `Format`: the canonical table it fills, where its header is, the columns it
cannot do without, and `parse(batch, ctx)`, a vectorized function from one block of text rows
to canonical columns (a list of column dicts, because one vendor row can hold two contracts).
Point-in-time columns are set here, from each vendor's publication rules.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eventvol.data_lake import calendars
from eventvol.data_lake.ingest.reader import Batch, IngestError, head_lines, split_csv_line, written_day
from eventvol.data_lake.schemas import UTC_TS

# Roots whose contracts settle on the opening print (SOQ); every other root settles PM.
AM_ROOTS = frozenset({"SPX", "NDX", "RUT", "DJX", "OEX", "XEO", "VIX"})
# Weekly/PM roots that belong to an index underlying.
ROOT_UNDERLYING = {"SPXW": "SPX", "SPXPM": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX",
                   "DJXW": "DJX", "XSPW": "XSP"}
OSI = r"^(?P<root>[A-Z][A-Z0-9]{0,5})(?P<ymd>\d{6})(?P<cp>[CP])(?P<k>\d{8})$"


@dataclass
class Context:
    """What a parser may know besides its rows: the file, its header facts, the lake."""

    path: Path
    ingest_id: str
    lake: object = None
    header: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Layout:
    """One header a vendor has shipped for a format: recognized by `detect` (every one of those
    columns is in the header), then it must hold `required` and is read by `parse`."""

    name: str
    detect: tuple[str, ...]
    required: tuple[str, ...]
    parse: Callable[[Batch, Context], list[dict]]
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Format:
    name: str
    table: str
    vendor: str
    header_line: int
    required: tuple[str, ...]
    parse: Callable[[Batch, Context], list[dict]]
    names: Callable[[Path], list[str] | None] | None = None  # renamed columns, if any
    inspect: Callable[[Path], dict] | None = None  # header facts read before the rows
    # every column `parse` may read; the others are split (field counts stay checked) but not
    # converted to Arrow strings, which is most of the reading time of wide vendor files
    columns: tuple[str, ...] | None = None
    # the layouts the vendor has shipped, tried in order against the header (docs/ingest.md);
    # empty: the single layout given by `required`, `parse` and `columns`
    layouts: tuple[Layout, ...] = ()

    def layout_for(self, path: Path, header: list[str]) -> Layout:
        """The layout of a file with this header; a header matching none is refused, naming
        the first required column missing from the layout it resembles most."""
        if not self.layouts:
            return Layout(self.name, (), self.required, self.parse, self.columns)
        present = set(header)
        for lay in self.layouts:
            if all(c in present for c in lay.detect):
                return lay
        best = max(self.layouts, key=lambda lay: sum(c in present for c in lay.required))
        missing = next(c for c in (*best.detect, *best.required) if c not in present)
        raise IngestError(f"{path}: required column {missing!r} is missing (the header matches no {self.name} "
                          f"layout; closest: {best.name}); refusing the file")


# ---------------------------------------------------------------- shared helpers
@lru_cache(maxsize=4096)
def _day_at_us(day: np.datetime64, hhmm: str, next_session: bool) -> np.datetime64:
    d = calendars.next_session(day) if next_session else pd.Timestamp(day).date()
    return np.datetime64(calendars.market_time_utc(d, hhmm).tz_localize(None), "us")


@lru_cache(maxsize=4096)
def _close_us(day: np.datetime64) -> np.datetime64:
    d = pd.Timestamp(day).date()
    close = calendars.session_close_utc(d) if calendars.is_session(d) else calendars.market_time_utc(d, "16:00")
    return np.datetime64(close.tz_localize(None), "us")


def _per_day(dates: pa.Array, at_day: Callable[[np.datetime64], np.datetime64], plus_us: int = 0) -> pa.Array:
    """UTC timestamps `at_day(day) + plus_us` for each date: the calendar is asked once per
    distinct day (a 5M-row chain holds a few hundred), then the answers are gathered."""
    days = pc.unique(dates).drop_null()
    per_day = np.array([at_day(u) for u in days.to_numpy(zero_copy_only=False).astype("datetime64[D]")],
                       dtype="datetime64[us]") + np.timedelta64(plus_us, "us")
    # a null date finds no day and stays null
    out = pc.take(pa.array(per_day, type=pa.timestamp("us")), pc.index_in(dates, value_set=days))
    return out.cast(UTC_TS)


def _dates_at(dates: pa.Array, hhmm: str, *, next_session: bool = False) -> pa.Array:
    """UTC timestamps of US/Eastern `hhmm` on each date (or on the next NYSE session)."""
    return _per_day(dates, lambda u: _day_at_us(u, hhmm, next_session))


def _session_close(dates: pa.Array, plus_minutes: int = 0) -> pa.Array:
    """Each date's NYSE close (13:00 ET on half days) plus a delay, UTC."""
    return _per_day(dates, _close_us, plus_minutes * 60_000_000)


def _underlying_of(root: pa.Array) -> pa.Array:
    keys = pa.array(list(ROOT_UNDERLYING))
    idx = pc.index_in(root, value_set=keys)
    mapped = pc.take(pa.array(list(ROOT_UNDERLYING.values())), idx)
    return pc.coalesce(mapped, root)


def _settlement_of(root: pa.Array) -> pa.Array:
    return pc.if_else(pc.is_in(root, value_set=pa.array(sorted(AM_ROOTS))), "AM", "PM")


def _option_type(b: Batch, name: str) -> pa.Array:
    """'C'/'P' from C, P, Call, Put (any case); anything else quarantines its row."""
    raw = b.cols[name]
    if pc.all(pc.is_in(raw, value_set=pa.array(["C", "P"]))).as_py():
        return raw  # already canonical (the usual case): no trimming, upper-casing or mapping
    t = pc.utf8_upper(b.text(name))
    t = pc.if_else(pc.is_in(t, value_set=pa.array(["CALL", "C"])), "C",
                   pc.if_else(pc.is_in(t, value_set=pa.array(["PUT", "P"])), "P", t))
    bad = pc.invert(pc.is_in(t, value_set=pa.array(["C", "P"]))).to_numpy(zero_copy_only=False)
    b.reject(bad, name, "unknown option type", b.text(name))
    return t


def _null_if(arr: pa.Array, cond) -> pa.Array:
    return pc.if_else(cond, pa.scalar(None, arr.type), arr)


def _const(n: int, value, typ) -> pa.Array:
    return pa.array(np.full(n, value) if typ != pa.string() else [value] * n, type=typ) if n else pa.array([], typ)


def _parse_osi(b: Batch, name: str, label: str) -> dict:
    """Root, expiration, type and strike (dollars) from an OSI symbol such as SPXW220207C02400000."""
    sym = b.text(name)
    parts = pc.extract_regex(pc.fill_null(sym, ""), OSI)
    bad = pc.invert(pc.match_substring_regex(pc.fill_null(sym, ""), OSI)).to_numpy(zero_copy_only=False)
    b.reject(bad, label, "not an OSI contract symbol", sym)
    root = pc.struct_field(parts, "root")
    ymd = pc.binary_join_element_wise("20", pc.struct_field(parts, "ymd"), "")
    exp = pc.cast(pc.strptime(ymd, format="%Y%m%d", unit="s", error_is_null=True), pa.date32())
    # strptime rolls an impossible day over (230229 -> 2023-03-01): refuse it instead
    rolled = pc.fill_null(pc.not_equal(pc.day(exp), written_day(ymd, "%Y%m%d")), False)
    rolled = pc.or_(rolled, pc.and_(pc.is_null(exp), pc.invert(pa.array(bad)))).to_numpy(zero_copy_only=False)
    b.reject(rolled, label, "impossible calendar date in the contract symbol", sym)
    exp = _null_if(exp, pa.array(rolled))
    k = pc.divide(pc.cast(_null_if(pc.struct_field(parts, "k"), pa.array(bad)), pa.float64()), 1000.0)
    cp = pc.struct_field(parts, "cp")
    return {"root": _null_if(root, pa.array(bad)), "expiration": exp, "strike": k,
            "option_type": _null_if(cp, pa.array(bad))}


# ---------------------------------------------------------------- Cboe quote table
QT_NAMES = ["expiration_text", "c_symbol", "c_last", "c_net", "c_bid", "c_ask", "c_volume", "c_iv",
            "c_delta", "c_gamma", "c_oi", "strike", "p_symbol", "p_last", "p_net", "p_bid", "p_ask",
            "p_volume", "p_iv", "p_delta", "p_gamma", "p_oi"]
QT_HEADER = ["Expiration Date", "Calls", "Last Sale", "Net", "Bid", "Ask", "Volume", "IV", "Delta",
             "Gamma", "Open Interest", "Strike", "Puts", "Last Sale", "Net", "Bid", "Ask", "Volume",
             "IV", "Delta", "Gamma", "Open Interest"]


def _quotetable_inspect(path: Path) -> dict:
    """Spot and snapshot time from lines 2-3; trade date = last NYSE session on or before it."""
    lines = head_lines(path, 4)
    got = split_csv_line(lines[3])
    for want in QT_HEADER:
        if want not in got:
            raise IngestError(f"{path}: required column {want!r} is missing from the header on line 4; refusing the file")
    m = re.search(r"Last:\s*([-+0-9.]+)", lines[1])
    if not m:
        raise IngestError(f"{path}: line 2 has no 'Last: <spot>'; refusing the file")
    try:
        spot = float(m.group(1))
    except ValueError:
        spot = float("nan")
    if not np.isfinite(spot) or spot <= 0:
        raise IngestError(f"{path}: line 2 'Last: {m.group(1)}' is not a positive spot price; refusing the file")
    m = re.search(r"Date:\s*([A-Za-z]+ \d{1,2},? \d{4}),?\s*(?:at\s*)?(\d{1,2}:\d{2} [AP]M)", lines[2])
    if not m:
        raise IngestError(f"{path}: line 3 has no 'Date: <snapshot time>'; refusing the file")
    try:
        local = pd.Timestamp(dt.datetime.strptime(f"{m.group(1).replace(',', '')} {m.group(2)}", "%B %d %Y %I:%M %p"))
    except ValueError:
        raise IngestError(f"{path}: line 3 snapshot time '{m.group(1)} {m.group(2)}' is not a real date and time; "
                          "refusing the file") from None
    snap = local.tz_localize(calendars.EASTERN).tz_convert("UTC")
    trade_date = calendars.session_on_or_before(local.date())
    return {"spot": spot, "quote_ts": snap, "trade_date": trade_date}


def _quotetable_parse(b: Batch, ctx: Context) -> list[dict]:
    n = len(b)
    h = ctx.header
    strike_col = b.number("strike", label="Strike")
    out = []
    for side, label in (("c", "Calls"), ("p", "Puts")):
        osi = _parse_osi(b, f"{side}_symbol", label)
        # the Strike column and the symbol's strike must agree: a x1000 slip is a vendor error
        off = pc.fill_null(pc.greater(pc.abs(pc.subtract(osi["strike"], strike_col)), 0.0005), False)
        b.reject(off.to_numpy(zero_copy_only=False), "Strike", f"strike disagrees with the {label} symbol (off by x1000?)", strike_col)
        iv = b.number(f"{side}_iv", label=f"IV ({label})")
        ts = pa.array([h["quote_ts"].to_pydatetime()] * n, type=UTC_TS)
        out.append({
            "trade_date": pa.array([h["trade_date"]] * n, pa.date32()),
            "quote_ts": ts,
            "available_ts": ts,  # the page shows the chain as of the snapshot
            "underlying": _underlying_of(osi["root"]),
            "root": osi["root"],
            "expiration": osi["expiration"],
            "settlement": _settlement_of(osi["root"]),
            "strike": strike_col,
            "option_type": osi["option_type"],
            "bid": b.number(f"{side}_bid", label=f"Bid ({label})"),
            "ask": b.number(f"{side}_ask", label=f"Ask ({label})"),
            "volume": b.integer(f"{side}_volume", label=f"Volume ({label})"),
            "open_interest": b.integer(f"{side}_oi", label=f"Open Interest ({label})"),
            # Cboe prints IV 0 when it has no model value (e.g. expired same-day rows)
            "iv": _null_if(iv, pc.equal(iv, 0.0)),
            "delta": b.number(f"{side}_delta", label=f"Delta ({label})"),
            "gamma": b.number(f"{side}_gamma", label=f"Gamma ({label})"),
            "underlying_price": pa.array([h["spot"]] * n, pa.float64()),
            "multiplier": _const(n, 100, pa.int32()),
        })
    return out


# ---------------------------------------------------------------- Cboe DataShop EOD summary
EOD_REQUIRED = ("underlying_symbol", "quote_date", "root", "expiration", "strike", "option_type",
                "trade_volume", "bid_eod", "ask_eod", "underlying_bid_eod", "underlying_ask_eod",
                "open_interest")


EOD_COLUMNS = EOD_REQUIRED + ("active_underlying_price_1545", "underlying_bid_1545", "underlying_ask_1545",
                              "implied_volatility_1545", "delta_1545", "gamma_1545", "vega_1545", "theta_1545")


def _mid_if_positive(bid: pa.Array, ask: pa.Array) -> pa.Array:
    ok = pc.and_(pc.greater(bid, 0.0), pc.greater(ask, 0.0))
    return _null_if(pc.divide(pc.add(bid, ask), 2.0), pc.invert(pc.fill_null(ok, False)))


def _positive(b: Batch, name: str) -> pa.Array:
    x = b.number(name)
    return _null_if(x, pc.less_equal(x, 0.0))


def _eod_parse(b: Batch, ctx: Context) -> list[dict]:
    n = len(b)
    has = lambda c: c in b.cols  # noqa: E731
    td = b.date("quote_date")
    root = pc.utf8_upper(b.text("root"))
    und = pc.utf8_ltrim(pc.utf8_upper(b.text("underlying_symbol")), "^")  # ^SPX -> SPX
    calcs = has("implied_volatility_1545")
    eod_mid = _mid_if_positive(b.number("underlying_bid_eod"), b.number("underlying_ask_eod"))
    at_1545 = pa.nulls(n, pa.float64())
    if has("active_underlying_price_1545"):
        at_1545 = _positive(b, "active_underlying_price_1545")
    if has("underlying_bid_1545") and has("underlying_ask_1545"):
        at_1545 = pc.coalesce(at_1545, _mid_if_positive(b.number("underlying_bid_1545"), b.number("underlying_ask_1545")))
    # the underlying price stored beside an IV is the one that IV was solved against: the
    # 15:45 calcs go with the 15:45 underlying; a quotes-only file's EOD quotes with the EOD mid
    spot = pc.coalesce(at_1545, eod_mid) if calcs else pc.coalesce(eod_mid, at_1545)
    row = {
        "trade_date": td,
        "quote_ts": _session_close(td),  # bid/ask are the end-of-day quotes
        "available_ts": _session_close(td, plus_minutes=120),  # DataShop posts EOD files after the close
        "underlying": und,
        "root": root,
        "expiration": b.date("expiration"),
        "settlement": _settlement_of(root),
        "strike": b.number("strike"),
        "option_type": _option_type(b, "option_type"),
        "bid": b.number("bid_eod"),
        "ask": b.number("ask_eod"),
        "volume": b.integer("trade_volume"),
        "open_interest": b.integer("open_interest"),
        "underlying_price": spot,
        "multiplier": _const(n, 100, pa.int32()),
    }
    if spot.null_count:
        b.reject(pc.is_null(spot).to_numpy(zero_copy_only=False), "underlying_bid_eod",
                 "no positive underlying price (EOD bid/ask or 15:45 active price)")
    if calcs:  # the Calcs columns: model values at 15:45
        iv = b.number("implied_volatility_1545")
        row["iv"] = _null_if(iv, pc.equal(iv, 0.0))
        for g in ("delta", "gamma", "vega", "theta"):
            if has(f"{g}_1545"):
                row[g] = b.number(f"{g}_1545")
    return [row]


LEGACY_DATES = ("%m/%d/%Y", "%Y-%m-%d")
LEGACY_TIMES = ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%Y-%m-%d %H:%M:%S")
EOD_LEGACY_REQUIRED = ("underlying_symbol", "quote_datetime", "root", "expiration", "strike", "option_type",
                       "trade_volume", "bid", "ask", "underlying_bid", "underlying_ask", "open_interest")
EOD_LEGACY_COLUMNS = EOD_LEGACY_REQUIRED + ("active_underlying_price", "implied_volatility", "delta", "gamma",
                                            "vega", "theta")


def _eastern_to_utc(wall: pa.Array) -> pa.Array:
    """Naive US/Eastern wall-clock timestamps -> UTC (DST-aware)."""
    return pc.assume_timezone(wall, calendars.EASTERN).cast(UTC_TS)


def _eod_legacy_parse(b: Batch, ctx: Context) -> list[dict]:
    """DataShop's legacy layout: one 15:45 snapshot per row (`quote_datetime` M/D/YYYY H:MM:SS
    US/Eastern), the quotes, the underlying and the calcs all taken at that time."""
    n = len(b)
    wall = b.timestamp("quote_datetime", LEGACY_TIMES)
    td = pc.cast(wall, pa.date32())
    root = pc.utf8_upper(b.text("root"))
    spot = _mid_if_positive(b.number("underlying_bid"), b.number("underlying_ask"))
    if "active_underlying_price" in b.cols:
        spot = pc.coalesce(_positive(b, "active_underlying_price"), spot)
    b.reject(pc.is_null(spot).to_numpy(zero_copy_only=False), "underlying_bid",
             "no positive underlying price (active price or underlying bid/ask)")
    row = {
        "trade_date": td,
        "quote_ts": _eastern_to_utc(wall),
        "available_ts": _session_close(td, plus_minutes=120),
        "underlying": pc.utf8_ltrim(pc.utf8_upper(b.text("underlying_symbol")), "^"),
        "root": root,
        "expiration": b.date("expiration", LEGACY_DATES),
        "settlement": _settlement_of(root),
        "strike": b.number("strike"),
        "option_type": _option_type(b, "option_type"),  # c / p
        "bid": b.number("bid"),
        "ask": b.number("ask"),
        "volume": b.integer("trade_volume"),
        "open_interest": b.integer("open_interest"),
        "underlying_price": spot,
        "multiplier": _const(n, 100, pa.int32()),
    }
    if "implied_volatility" in b.cols:
        iv = b.number("implied_volatility")
        row["iv"] = _null_if(iv, pc.equal(iv, 0.0))
        for g in ("delta", "gamma", "vega", "theta"):
            if g in b.cols:
                row[g] = b.number(g)
    return [row]


# ---------------------------------------------------------------- OptionMetrics IvyDB
IVY_MISSING = -99.99
IVY_DATES = ("%Y-%m-%d", "%Y%m%d", "%m/%d/%Y", "%d%b%Y")


def _ivy_symbol(b: Batch) -> pa.Array:
    if "ticker" not in b.cols:
        raise IngestError(f"{b.file}: required column 'ticker' is missing (join SECNMD's ticker by secid); refusing the file")
    return pc.utf8_upper(b.text("ticker"))


def _ivy_missing(arr: pa.Array) -> pa.Array:
    """IvyDB writes -99.99 (and -99 in integer fields) for a missing value."""
    return _null_if(arr, pc.or_(pc.less(pc.abs(pc.add(arr, 99.99)), 1e-9), pc.equal(arr, -99.0)))


def _lake_closes(lake, symbols: list[str], dates: list[dt.date]) -> dict[tuple[str, dt.date], float]:
    if lake is None or not symbols or not lake.files("bars"):
        return {}
    t = lake.query(
        "SELECT symbol, trade_date, close FROM bars WHERE symbol IN (SELECT unnest(?)) "
        "AND trade_date IN (SELECT unnest(?))", [symbols, dates])
    return {(s, d): c for s, d, c in zip(*(t.column(i).to_pylist() for i in range(3)))}


def _opprcd_parse(b: Batch, ctx: Context) -> list[dict]:
    n = len(b)
    td = b.date("date", IVY_DATES)
    und = _ivy_symbol(b)
    if "root" in b.cols:
        root = pc.coalesce(pc.utf8_upper(b.text("root")), und)
    else:  # IvyDB symbol is "ROOT yymmddCstrike": the root is the part before the space
        root = pc.utf8_upper(pc.coalesce(pc.struct_field(pc.extract_regex(pc.fill_null(b.text("symbol"), ""), r"^(?P<r>[^ ]+)"), "r"), und))
    iv = _ivy_missing(b.number("impl_volatility"))
    strike = pc.divide(b.number("strike_price"), 1000.0)  # IvyDB strikes are x1000
    spot = pa.nulls(n, pa.float64())
    closes = _lake_closes(ctx.lake, sorted(set(und.drop_null().to_pylist())), sorted(set(td.drop_null().to_pylist())))
    if closes:
        spot = pa.array([closes.get((s, d)) for s, d in zip(und.to_pylist(), td.to_pylist())], pa.float64())
    if "forward_price" in b.cols:
        spot = pc.coalesce(spot, _ivy_missing(b.number("forward_price")))
    b.reject(pc.is_null(spot).to_numpy(zero_copy_only=False), "forward_price",
             "no underlying price: ingest ivydb-secprd first or provide forward_price")
    flag = next((c for c in ("am_settlement", "am_set_flag") if c in b.cols), None)  # both names shipped
    settle = b.integer(flag) if flag else None
    size = b.integer("contract_size") if "contract_size" in b.cols else pa.nulls(n, pa.int64())
    size = pc.coalesce(_null_if(size, pc.less_equal(size, 0)), 100)
    return [{
        "trade_date": td,
        "quote_ts": _session_close(td),
        # IvyDB is delivered overnight: a row of day D is usable from 06:00 ET the next session.
        # Its open interest is already the previous session's (lagged one day by OptionMetrics),
        # which is the lake's convention, so it is stored as is.
        "available_ts": _dates_at(td, "06:00", next_session=True),
        "underlying": und,
        "root": root,
        "expiration": b.date("exdate", IVY_DATES),
        "settlement": pc.if_else(pc.equal(settle, 1), "AM", "PM") if settle is not None else _settlement_of(root),
        "strike": strike,
        "option_type": _option_type(b, "cp_flag"),
        "bid": b.number("best_bid"),
        "ask": b.number("best_offer"),
        "volume": b.integer("volume"),
        "open_interest": b.integer("open_interest"),
        "iv": iv,
        "delta": _ivy_missing(b.number("delta")) if "delta" in b.cols else None,
        "gamma": _ivy_missing(b.number("gamma")) if "gamma" in b.cols else None,
        # IvyDB vega is per 1.00 of vol and theta per year: convert to per point and per day
        "vega": pc.divide(_ivy_missing(b.number("vega")), 100.0) if "vega" in b.cols else None,
        "theta": pc.divide(_ivy_missing(b.number("theta")), 365.0) if "theta" in b.cols else None,
        "underlying_price": spot,
        "multiplier": pc.cast(size, pa.int32()),
    }]


def _secprd_parse(b: Batch, ctx: Context) -> list[dict]:
    # IvyDB stores the bid/ask midpoint as a negative close when there was no trade
    close = pc.abs(b.number("close"))
    neg = lambda c: _null_if(x := b.number(c), pc.less_equal(x, 0.0)) if c in b.cols else None  # noqa: E731
    return [{"trade_date": b.date("date", IVY_DATES), "symbol": _ivy_symbol(b), "open": neg("open"),
             "high": neg("high"), "low": neg("low"), "close": close,
             "volume": b.integer("volume") if "volume" in b.cols else None}]


DISTR_KIND = {"1": "dividend", "2": "capital_gain", "3": "split", "4": "spinoff", "5": "rights"}


def _distrd_parse(b: Batch, ctx: Context) -> list[dict]:
    ex = b.date("ex_date", IVY_DATES)
    code = b.text("distr_type")
    kind = pc.coalesce(pc.take(pa.array(list(DISTR_KIND.values())),
                               pc.index_in(code, value_set=pa.array(list(DISTR_KIND)))), "other")
    if "cancel_flag" in b.cols:
        b.reject(pc.fill_null(pc.equal(b.text("cancel_flag"), "1"), False).to_numpy(zero_copy_only=False),
                 "cancel_flag", "cancelled distribution")
    declared = b.date("declare_date", IVY_DATES) if "declare_date" in b.cols else pa.nulls(len(b), pa.date32())
    # known at the declaration's close; without one, conservatively at the open of the ex date
    known = pc.coalesce(_session_close(declared), _dates_at(ex, "09:30"))
    adj = _ivy_missing(b.number("adj_factor")) if "adj_factor" in b.cols else pa.nulls(len(b), pa.float64())
    return [{"symbol": _ivy_symbol(b), "ex_date": ex, "kind": kind,
             "ratio": _null_if(adj, pc.invert(pc.equal(kind, "split"))),
             "amount": _ivy_missing(b.number("amount")), "known_at": known}]


def _zerocd_parse(b: Batch, ctx: Context) -> list[dict]:
    # IvyDB zero-curve rates are continuously compounded, in percent
    return [{"trade_date": b.date("date", IVY_DATES), "tenor_days": pc.cast(b.integer("days"), pa.int32()),
             "rate": pc.divide(b.number("rate"), 100.0)}]


# ---------------------------------------------------------------- ORATS SMV strikes
ORATS_DATES = ("%m/%d/%Y", "%Y-%m-%d")
# ORATS's own column names per layout, under one set of short names
ORATS_HISTORY = dict(td="trade_date", exp="expirDate", stock="stkPx", spot="spot_px", cbid="cBidPx", cask="cAskPx",
                     pbid="pBidPx", pask="pAskPx", cvol="cVolu", coi="cOi", pvol="pVolu", poi="pOi", civ="cMidIv",
                     piv="pMidIv")
ORATS_API = dict(td="tradeDate", exp="expirDate", stock="stockPrice", spot="spotPrice", cbid="callBidPrice",
                 cask="callAskPrice", pbid="putBidPrice", pask="putAskPrice", cvol="callVolume", coi="callOpenInterest",
                 pvol="putVolume", poi="putOpenInterest", civ="callMidIv", piv="putMidIv")
ORATS_REQUIRED = ("ticker", "cOpra", "pOpra", "stkPx", "expirDate", "strike", "cBidPx", "cAskPx",
                  "pBidPx", "pAskPx", "trade_date")
ORATS_OLD_REQUIRED = tuple(c for c in ORATS_REQUIRED if c not in ("cOpra", "pOpra"))
ORATS_API_REQUIRED = ("ticker", "tradeDate", "expirDate", "strike", "stockPrice", "callBidPrice", "callAskPrice",
                      "putBidPrice", "putAskPrice")
# index tickers whose PM-settled weeklies trade under another root; the AM monthly keeps the ticker
WEEKLY_ROOT = {"SPX": "SPXW", "NDX": "NDXP", "RUT": "RUTW", "DJX": "DJXW"}


def _third_friday(d: pa.Array) -> pa.Array:
    """True for the third Friday of its month (the AM-settled index monthly's expiry)."""
    day = pc.day(d)
    return pc.and_(pc.equal(pc.day_of_week(d), 4), pc.and_(pc.greater_equal(day, 15), pc.less_equal(day, 21)))


def _orats_roots(b: Batch, ticker: pa.Array, exp: pa.Array) -> pa.Array:
    """The root of a layout without OPRA symbols: an index ticker's AM monthly keeps the ticker
    and its PM weeklies take the weekly root, told by `expiryTod` (am/pm) where the layout has
    it, else by the expiry (third Friday = monthly); any other ticker is its own root."""
    weekly = pc.take(pa.array(list(WEEKLY_ROOT.values())), pc.index_in(ticker, value_set=pa.array(list(WEEKLY_ROOT))))
    if "expiryTod" in b.cols:
        monthly = pc.fill_null(pc.equal(pc.utf8_lower(b.text("expiryTod")), "am"), False)
    else:
        monthly = pc.fill_null(_third_friday(exp), False)
    return pc.if_else(pc.or_(pc.is_null(weekly), monthly), ticker, weekly)


def _orats_parse_with(names: dict, opra: bool) -> Callable[[Batch, Context], list[dict]]:
    """The ORATS mapping for one layout's column names (`names`), with or without OPRA symbols."""

    def parse(b: Batch, ctx: Context) -> list[dict]:
        n = len(b)
        col = lambda k: names[k]  # noqa: E731
        opt_num = lambda c: b.number(c) if c in b.cols else pa.nulls(n, pa.float64())  # noqa: E731
        td = b.date(col("td"), ORATS_DATES)
        strike = b.number("strike")
        exp = b.date(col("exp"), ORATS_DATES)
        # stkPx/stockPrice is ORATS's implied forward per expiry for index options (the stock
        # price for equities); spot_px/spotPrice is the spot, which is what the lake stores
        stock = b.number(col("stock"))
        spot = _null_if(s := opt_num(col("spot")), pc.fill_null(pc.less_equal(s, 0.0), True))
        spot = pc.coalesce(spot, stock)
        greeks = {g: opt_num(g) for g in ("delta", "gamma", "vega", "theta")}
        ticker = pc.utf8_upper(b.text("ticker"))
        root = None if opra else _orats_roots(b, ticker, exp)
        # ORATS snapshots 14 minutes before the close; the API layout says when (snapShotDate, UTC)
        quote_ts = _session_close(td, plus_minutes=-14)
        if "snapShotDate" in b.cols:
            snap = b.timestamp("snapShotDate", ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S"))
            quote_ts = pc.coalesce(pc.assume_timezone(snap, "UTC").cast(UTC_TS), quote_ts)
        out = []
        for side, label in (("c", "cOpra"), ("p", "pOpra")):
            if opra:  # the ticker SPX holds SPX and SPXW contracts: the root comes from the OPRA symbol
                osi = _parse_osi(b, f"{side}Opra", label)
                off = pc.fill_null(pc.greater(pc.abs(pc.subtract(osi["strike"], strike)), 0.0005), False)
                b.reject(off.to_numpy(zero_copy_only=False), "strike", f"strike disagrees with {label} (off by x1000?)", strike)
                side_root, underlying, cp = osi["root"], _underlying_of(osi["root"]), osi["option_type"]
            else:
                side_root, underlying, cp = root, ticker, _const(n, side.upper(), pa.string())
            iv = opt_num(col(f"{side}iv"))
            out.append({
                "trade_date": td,
                "quote_ts": quote_ts,
                "available_ts": _session_close(td, plus_minutes=60),
                "underlying": underlying,
                "root": side_root,
                "expiration": exp,
                "settlement": _settlement_of(side_root),
                "strike": strike,
                "option_type": cp,
                "bid": b.number(col(f"{side}bid")),
                "ask": b.number(col(f"{side}ask")),
                "volume": b.integer(col(f"{side}vol")) if col(f"{side}vol") in b.cols else None,
                "open_interest": b.integer(col(f"{side}oi")) if col(f"{side}oi") in b.cols else None,
                "iv": _null_if(iv, pc.equal(iv, 0.0)),
                # ORATS greeks are the call's; the put's delta is delta - 1, gamma and vega are equal
                "delta": greeks["delta"] if side == "c" else pc.subtract(greeks["delta"], 1.0),
                "gamma": greeks["gamma"],
                "vega": greeks["vega"],
                "theta": greeks["theta"] if side == "c" else None,
                "underlying_price": spot,
                "multiplier": _const(n, 100, pa.int32()),
            })
        return out

    return parse


_orats_parse = _orats_parse_with(ORATS_HISTORY, opra=True)
ORATS_LAYOUTS = (
    Layout("orats-api", ("tradeDate",), ORATS_API_REQUIRED, _orats_parse_with(ORATS_API, opra=False)),
    Layout("orats-history", ("cOpra", "pOpra"), ORATS_REQUIRED, _orats_parse),
    Layout("orats-history-no-opra", ("trade_date",), ORATS_OLD_REQUIRED, _orats_parse_with(ORATS_HISTORY, opra=False)),
)


# ---------------------------------------------------------------- generic CSVs
def _prices_parse(b: Batch, ctx: Context) -> list[dict]:
    opt = lambda c, f: f(c) if c in b.cols else None  # noqa: E731
    return [{"trade_date": b.date("date"), "symbol": b.text("symbol"), "open": opt("open", b.number),
             "high": opt("high", b.number), "low": opt("low", b.number), "close": b.number("close"),
             "volume": opt("volume", b.integer)}]


MEMBERS_KNOWN_DEFAULT = "09:30"  # no known_at column: a membership is known at the open of its start_date
KNOWN_AT_TIMES = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")


def _known_at(b: Batch, name: str) -> pa.Array:
    """A `known_at` cell: a date (known at that day's 16:00 ET close) or a US/Eastern date and time."""
    wall = b.timestamp(name, KNOWN_AT_TIMES + ("%Y-%m-%d",))
    is_date = pc.fill_null(pc.match_substring_regex(b.text(name), r"^\d{4}-\d{2}-\d{2}$"), False)
    on_day = _dates_at(_null_if(pc.cast(wall, pa.date32()), pc.invert(is_date)), "16:00")
    return pc.if_else(is_date, on_day, _eastern_to_utc(wall))


def _members_parse(b: Batch, ctx: Context) -> list[dict]:
    # an empty end_date means the symbol is still a member
    start = b.date("start_date")
    known = _known_at(b, "known_at") if "known_at" in b.cols else None
    default = _dates_at(start, MEMBERS_KNOWN_DEFAULT)
    return [{"index": b.text("index"), "symbol": b.text("symbol"), "start_date": start,
             "end_date": b.date("end_date") if "end_date" in b.cols else None,
             # an empty known_at cell takes the documented default too
             "known_at": default if known is None else pc.coalesce(known, default)}]


TIMING_HHMM = {"BMO": "08:00", "AMC": "16:05", "INTRADAY": "12:00", "UNKNOWN": "16:05"}
# an ISO date and time, optionally with seconds, fraction and a UTC offset (naive = US/Eastern)
ISO_TS = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?(?:Z|[+-]\d{2}:?\d{2})?$")


def _events_parse(b: Batch, ctx: Context) -> list[dict]:
    n = len(b)
    timing = pc.coalesce(pc.utf8_upper(b.text("timing")) if "timing" in b.cols else pa.nulls(n, pa.string()), "UNKNOWN")
    bad = pc.invert(pc.is_in(timing, value_set=pa.array(list(TIMING_HHMM)))).to_numpy(zero_copy_only=False)
    b.reject(bad, "timing", "timing must be BMO, AMC, INTRADAY or UNKNOWN", timing)
    if "scheduled_ts" in b.cols:
        text = b.text("scheduled_ts").to_pylist()
        ts, badts = [], np.zeros(n, bool)
        for i, s in enumerate(text):
            try:
                if s is None or not ISO_TS.match(s):  # pd.Timestamp would also take "now", "today", "3pm"
                    raise ValueError(s)
                t = pd.Timestamp(s)
                t = t.tz_localize(calendars.EASTERN) if t.tzinfo is None else t  # naive = US/Eastern
                ts.append(t.tz_convert("UTC").to_pydatetime())
            except (ValueError, TypeError):
                ts.append(None)
                badts[i] = s is not None
        b.reject(badts, "scheduled_ts", "not a timestamp", b.text("scheduled_ts"))
        sched = pa.array(ts, UTC_TS)
    elif "date" in b.cols:
        d = b.date("date")
        sched = pa.nulls(n, UTC_TS)
        for tm, hhmm in TIMING_HHMM.items():
            sched = pc.if_else(pc.equal(timing, tm), _dates_at(d, hhmm), sched)
    else:
        raise IngestError(f"{b.file}: required column 'date' or 'scheduled_ts' is missing; refusing the file")
    sym = b.text("symbol") if "symbol" in b.cols else pa.nulls(n, pa.string())
    kind = b.text("kind")
    # reaction session: BMO and intraday react on their own session, AMC and unknown on the next
    react = []
    for s, tm in zip(sched.to_pylist(), timing.to_pylist()):
        if s is None or tm not in TIMING_HHMM:
            react.append(None)
            continue
        day = pd.Timestamp(s).tz_convert(calendars.EASTERN).date()
        react.append(calendars.session_on_or_after(day) if tm in ("BMO", "INTRADAY") and calendars.is_session(day)
                     else calendars.next_session(day) if tm in ("AMC", "UNKNOWN") else calendars.session_on_or_after(day))
    ids = [hashlib.sha256(f"{k}|{s}|{t}".encode()).hexdigest()[:16] if k is not None and t is not None else None
           for k, s, t in zip(kind.to_pylist(), sym.to_pylist(), sched.to_pylist())]
    known = pc.coalesce(_dates_at(b.date("known_date"), "16:00"), sched) if "known_date" in b.cols else sched
    return [{"event_id": pa.array(ids, pa.string()), "kind": kind, "symbol": sym, "scheduled_ts": sched,
             "timing": timing, "reaction_session": pa.array(react, pa.date32()), "known_at": known,
             "source": b.text("source") if "source" in b.cols else None}]


def _letf_parse(b: Batch, ctx: Context) -> list[dict]:
    return [{"trade_date": b.date("trade_date"), "fund": b.text("fund"), "benchmark": b.text("benchmark"),
             "leverage": b.number("leverage"), "aum": b.number("aum")}]


def _short_interest_parse(b: Batch, ctx: Context) -> list[dict]:
    return [{"settlement_date": b.date("settlement_date"), "publish_date": b.date("publish_date"),
             "symbol": b.text("symbol"), "shares_short": b.integer("shares_short"),
             "float_shares": b.integer("float_shares") if "float_shares" in b.cols else None}]


FF_FACTORS = ("MktRF", "SMB", "HML", "Mom", "RF")


def _ff_parse(b: Batch, ctx: Context) -> list[dict]:
    n = len(b)
    period = b.date("month", ("%Y-%m", "%Y%m"))
    out = []
    for f in FF_FACTORS:
        if f in b.cols:
            out.append({"period": period, "factor": pa.array([f] * n, pa.string()), "value": b.number(f)})
    return out


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("cboe-quotetable", "option_quotes", "cboe", 4, tuple(QT_NAMES), _quotetable_parse,
           names=lambda p: QT_NAMES, inspect=_quotetable_inspect),
    Format("cboe-eod", "option_quotes", "cboe-datashop", 1, EOD_REQUIRED, _eod_parse, columns=EOD_COLUMNS,
           layouts=(Layout("datashop-eod", ("quote_date",), EOD_REQUIRED, _eod_parse, EOD_COLUMNS),
                    Layout("datashop-legacy", ("quote_datetime",), EOD_LEGACY_REQUIRED, _eod_legacy_parse,
                           EOD_LEGACY_COLUMNS))),
    Format("ivydb-opprcd", "option_quotes", "optionmetrics", 1,
           ("date", "exdate", "cp_flag", "strike_price", "best_bid", "best_offer", "volume",
            "open_interest", "impl_volatility", "ticker"), _opprcd_parse),
    Format("ivydb-secprd", "bars", "optionmetrics", 1, ("date", "close", "ticker"), _secprd_parse),
    Format("ivydb-distrd", "corporate_actions", "optionmetrics", 1,
           ("ex_date", "distr_type", "amount", "ticker"), _distrd_parse),
    Format("ivydb-zerocd", "rates", "optionmetrics", 1, ("date", "days", "rate"), _zerocd_parse),
    Format("orats-strikes", "option_quotes", "orats", 1, ORATS_REQUIRED, _orats_parse, layouts=ORATS_LAYOUTS),
    Format("prices-csv", "bars", "csv", 1, ("date", "symbol", "close"), _prices_parse),
    Format("members-csv", "index_members", "csv", 1, ("index", "symbol", "start_date"), _members_parse),
    Format("events-csv", "events", "csv", 1, ("kind",), _events_parse),
    Format("letf-csv", "letf_funds", "csv", 1, ("trade_date", "fund", "benchmark", "leverage", "aum"), _letf_parse),
    Format("short-interest-csv", "short_interest", "csv", 1,
           ("settlement_date", "publish_date", "symbol", "shares_short"), _short_interest_parse),
    Format("ff-monthly", "factor_returns", "kenneth-french", 1, ("month",), _ff_parse),
)}
