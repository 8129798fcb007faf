"""Dealer gamma exposure (GEX), pure computation on chain arrays.

Convention (ARCHITECTURE.md): default sign model dealers long calls, short puts (+1 calls,
-1 puts); GEX in dollars of hedge per 1% move of the underlying:
    GEX = sign * gamma * open_interest * multiplier * S^2 * 0.01
Per-point GEX divides by 0.01 * S. Time to expiry is ACT/365 from 16:00 ET on the trade date
to 09:30 ET (AM-settled) or 16:00 ET (PM-settled) on the expiration date, measured in
elapsed time (a DST change in between counts its real hour). Rows with T <= 0, no IV or no
open interest carry no gamma.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eventvol.pipelines import bsm
from eventvol.pipelines.columns import run_on_threads, string_codes, string_flag, worker_count
from eventvol.pipelines.ivsource import (DEFAULT_IV_SOURCE, check_source, clean_iv_of_table, floor_codes,
                                        pairing_column, ranked_codes)

SECONDS_PER_YEAR = 365.0 * 86400.0
EASTERN = "America/New_York"

SIGN_MODELS = {
    # name: (call sign, put sign)
    "dealer_long_calls_short_puts": (1.0, -1.0),
    "customer_long_all": (-1.0, -1.0),
}
DEFAULT_SIGN_MODEL = "dealer_long_calls_short_puts"


def _eastern_epoch_seconds_of_days(days: np.ndarray, hhmm: str) -> np.ndarray:
    """UTC epoch seconds (float) of wall-clock `hhmm` US/Eastern on each day number (days
    since 1970-01-01); meant for a few thousand distinct days, not for rows."""
    local = pd.DatetimeIndex(np.asarray(days, np.int64).astype("datetime64[D]").astype("datetime64[ns]")) \
        + pd.Timedelta(hhmm + ":00")
    utc = local.tz_localize(EASTERN).tz_convert("UTC")
    return (utc.asi8 // 1_000_000_000).astype(float)


@functools.lru_cache(maxsize=64)
def _day_range_tables(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """(16:00 ET valuation, 09:30 ET AM settlement) epoch seconds of every day in [lo, hi]
    (day numbers); shared between callers, never modified (the kernels only read them): a pure
    function of the range, so repeated chains and months of one lake reuse it instead of
    redoing the time-zone rule (~1 ms per 2,000 days)."""
    days = np.arange(lo, hi + 1)
    return _eastern_epoch_seconds_of_days(days, "16:00"), _eastern_epoch_seconds_of_days(days, "09:30")


def years_to_expiry_days(trade_day: np.ndarray, expiry_day: np.ndarray, is_am: np.ndarray) -> np.ndarray:
    """`years_to_expiry` from integer day numbers (days since 1970-01-01) and AM flags.

    T depends on (trade day, expiry day, AM) only, so the time-zone rule runs once per distinct
    calendar day (three small tables: 16:00 ET valuation, 09:30 and 16:00 ET settlement) and
    the rows are a table look-up and one subtraction in a numba pass: the same two floats
    subtracted and divided as row-wise arithmetic would, so the same bits."""
    from eventvol.pipelines import nb as kernels

    td = np.ascontiguousarray(trade_day, np.int64)
    ed = np.ascontiguousarray(expiry_day, np.int64)
    am = np.ascontiguousarray(is_am, np.bool_)
    if td.size == 0:
        return np.zeros(0)
    lo = int(min(td.min(), ed.min()))
    hi = int(max(td.max(), ed.max()))
    if hi - lo <= 4 * td.size + 100_000:  # dense day range: index tables by day - lo
        days = np.arange(lo, hi + 1)
        ti, ei = td - lo, ed - lo
    else:  # a few far-apart dates: tables over the distinct days only
        days, inv = np.unique(np.concatenate([td, ed]), return_inverse=True)
        ti, ei = inv[:td.size], inv[td.size:]
    valuation = _eastern_epoch_seconds_of_days(days, "16:00")
    settle_am = _eastern_epoch_seconds_of_days(days, "09:30")
    years = kernels.years_from_day_tables_serial if td.size < kernels.SERIAL_BELOW_ROWS else \
        kernels.years_from_day_tables
    return years(np.ascontiguousarray(ti), np.ascontiguousarray(ei), am,
                                         valuation, settle_am, valuation, SECONDS_PER_YEAR)


def years_to_expiry(trade_date, expiration, settlement) -> np.ndarray:
    """ACT/365 years from 16:00 ET on `trade_date` to settlement on `expiration`
    (`settlement` 'AM'/'PM' strings, or booleans meaning AM: 09:30 ET, else 16:00 ET)."""
    settlement = np.asarray(settlement)
    am = settlement if settlement.dtype == bool else settlement == "AM"
    td = np.asarray(trade_date, dtype="datetime64[D]").astype(np.int64)
    ed = np.asarray(expiration, dtype="datetime64[D]").astype(np.int64)
    td, ed, am = np.broadcast_arrays(td, ed, np.asarray(am, bool))
    return years_to_expiry_days(td.ravel(), ed.ravel(), am.ravel()).reshape(td.shape)


def rate_curves(curves: pa.Table | None) -> tuple[np.ndarray, ...] | None:
    """`rates` rows (trade_date, tenor_days, rate) as the interpolation kernel takes them:
    (curve days, row offset of each day's curve, tenors, rates), sorted by (day, tenor); None
    when there are no curves at all."""
    if curves is None or curves.num_rows == 0:
        return None
    cd = curves.column("trade_date")
    c_day = cd.cast(pa.int32()).to_numpy().astype(np.int64) if not pa.types.is_timestamp(cd.type) \
        else np.asarray(cd.to_numpy(), "datetime64[D]").astype(np.int64)
    c_ten = curves.column("tenor_days").cast(pa.float64()).to_numpy()
    c_rate = curves.column("rate").cast(pa.float64()).to_numpy()
    order = np.lexsort((c_ten, c_day))
    c_day, c_ten, c_rate = c_day[order], c_ten[order], c_rate[order]
    days, first = np.unique(c_day, return_index=True)
    starts = np.append(first, len(c_day)).astype(np.int64)
    return days, starts, np.ascontiguousarray(c_ten), np.ascontiguousarray(c_rate)


def rates_per_row(curves: pa.Table | tuple | None, trade_day: np.ndarray, days_to_expiry: np.ndarray, *,
                  serial: bool = False) -> np.ndarray | None:
    """Continuous rate r (decimal) per row from `rates` rows (trade_date, tenor_days, rate):
    the curve of the row's own trade date, linear in tenor (calendar days) at the row's
    calendar days to expiry, flat beyond the first and last tenor; 0 on trade dates without a
    curve (ARCHITECTURE.md: "r from `rates`, else 0"). None (meaning r = 0 everywhere) when
    there are no curves at all, so a lake without rates computes exactly as before. `curves`
    may be `rate_curves` output already; `serial`: the GIL-free serial kernel (for callers on
    their own threads)."""
    prepared = curves if isinstance(curves, tuple) or curves is None else rate_curves(curves)
    if prepared is None:
        return None
    from eventvol.pipelines import nb as kernels

    interp = kernels.interp_rates_serial if serial or len(trade_day) < kernels.SERIAL_BELOW_ROWS \
        else kernels.interp_rates
    return interp(np.ascontiguousarray(trade_day, np.int64), np.ascontiguousarray(days_to_expiry, np.float64),
                  *prepared)


def dealer_sign(is_call: np.ndarray, model: str = DEFAULT_SIGN_MODEL) -> np.ndarray:
    """+1/-1 per contract under a named sign model."""
    if model not in SIGN_MODELS:
        raise ValueError(f"unknown sign model {model!r}; choose one of {', '.join(SIGN_MODELS)}")
    call_sign, put_sign = SIGN_MODELS[model]
    return np.where(is_call, call_sign, put_sign)


def contract_gex_per_1pct(spot, strike, t_years, iv, open_interest, multiplier, is_call,
                          r=0.0, q=0.0, sign_model: str = DEFAULT_SIGN_MODEL) -> np.ndarray:
    """Dealer GEX per contract row, dollars per 1% move. Unusable rows (T <= 0, IV missing or
    <= 0, OI missing) contribute exactly 0."""
    iv = np.asarray(iv, float)
    oi = np.nan_to_num(np.asarray(open_interest, float), nan=0.0)
    usable = np.isfinite(iv) & (iv > 0) & (np.asarray(t_years) > 0)
    g = bsm.gamma(spot, strike, t_years, np.where(usable, iv, 0.0), r, q)
    spot = np.asarray(spot, float)
    out = dealer_sign(np.asarray(is_call), sign_model) * g * oi * np.asarray(multiplier, float) * spot * spot * 0.01
    return np.where(usable, out, 0.0)


def arrow_numbers(col: pa.ChunkedArray) -> np.ndarray:
    """A numeric column as numpy: integers without nulls stay integers (no copy for one
    chunk), anything else becomes float with NaN for nulls."""
    if pa.types.is_integer(col.type) and col.null_count == 0:
        return col.to_numpy()
    return col.cast(pa.float64()).to_numpy()  # nulls -> NaN


def arrow_days(col: pa.ChunkedArray) -> np.ndarray:
    """Day numbers (int32, days since 1970-01-01) of a date32 column (a view, no cast)."""
    if pa.types.is_date32(col.type):
        return pa.chunked_array([c.view(pa.int32()) for c in col.chunks], pa.int32()).to_numpy()
    return col.cast(pa.int32()).to_numpy()


def flag_codes(tbl: pa.Table, name: str, string_col: str, value: str) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, flag per code) of a boolean column `name` if the table has it (nulls
    False), else of `string_col` == value (dictionary codes, nulls False): the kernels' flags
    without a boolean per row for dictionary strings."""
    if name in tbl.column_names:
        return bool_codes(tbl.column(name).fill_null(False).to_numpy(zero_copy_only=False)), BOOL_LUT
    col = tbl.column(string_col)
    codes, dictionary = string_codes(col)
    lut = np.append(pc.equal(dictionary, value).fill_null(False).to_numpy(zero_copy_only=False).astype(bool), False)
    if col.null_count:
        codes = np.where(col.is_valid().to_numpy(zero_copy_only=False), codes, len(lut) - 1)
    return np.ascontiguousarray(codes, np.int32), lut


@dataclass(frozen=True)
class ChainArrays:
    """Columns of one or many chains, as numpy arrays, sorted so that each group
    (underlying, trade_date) is contiguous."""

    group: np.ndarray  # int group id per row, non-decreasing
    spot: np.ndarray
    strike: np.ndarray
    t_years: np.ndarray | None  # None: computed from trade_day / expiry_day / is_am (see `years`)
    iv: np.ndarray
    open_interest: np.ndarray  # float (NaN = missing) or integer
    multiplier: np.ndarray
    is_call: np.ndarray
    # optional (None when the source lacks them): contracts traded, calendar days from trade
    # date to expiration, continuous rate and yield per row (decimals; None means 0)
    volume: np.ndarray | None = None
    days_to_expiry: np.ndarray | None = None
    r: np.ndarray | None = None
    q: np.ndarray | None = None
    # day numbers (days since 1970-01-01) and AM flags: T is computed from them where needed,
    # inside the kernels, instead of being stored per row
    trade_day: np.ndarray | None = None
    expiry_day: np.ndarray | None = None
    is_am: np.ndarray | None = None
    # where each row's `iv` came from (`pipelines.ivsource`): the source name and an origin code
    # per row (None when the chain was built from IVs given directly)
    iv_source: str | None = None
    iv_origin: np.ndarray | None = None

    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        z = np.zeros(self.spot.shape[0])
        return (z if self.r is None else np.asarray(self.r, float)), (z if self.q is None else np.asarray(self.q, float))

    def years(self) -> np.ndarray:
        """T per row (ACT/365 elapsed, see `years_to_expiry`)."""
        if self.t_years is not None:
            return np.asarray(self.t_years, float)
        return years_to_expiry_days(self.trade_day, self.expiry_day, self.is_am)

    @classmethod
    def from_arrow(cls, tbl: pa.Table, group: np.ndarray, rates: pa.Table | None = None,
                   iv_source: str = DEFAULT_IV_SOURCE) -> "ChainArrays":
        """From chain rows in the canonical option_quotes columns (strings plain or
        dictionary-encoded, numbers in their stored types) or with is_am / is_call booleans
        instead of settlement / option_type. Integer columns without nulls stay integers (no
        copy); with nulls they become float with NaN. T is left to the kernels (`years`).
        `rates`: `rates` table rows for r (see `rates_per_row`); None means r = 0. q is 0: the
        lake has no dividend-yield source yet. `iv_source`: which IV each row gets
        (`pipelines.ivsource`: otm, vendor, solved; `solved` needs bid and ask)."""

        def num(name: str) -> np.ndarray:
            return arrow_numbers(tbl.column(name))

        def flag(name: str, string_col: str, value: str) -> np.ndarray:
            if name in tbl.column_names:
                return tbl.column(name).fill_null(False).to_numpy(zero_copy_only=False)
            return string_flag(tbl.column(string_col), value)

        def day(name: str) -> np.ndarray:
            return arrow_days(tbl.column(name))

        trade_day, expiry_day = day("trade_date"), day("expiration")
        spot, strike, is_call = num("underlying_price"), num("strike"), flag("is_call", "option_type", "C")
        is_am = flag("is_am", "settlement", "AM")
        r = rates_per_row(rates, trade_day, expiry_day.astype(np.int64) - trade_day) if rates is not None else None
        clean = clean_iv_of_table(tbl, check_source(iv_source), group, spot, strike, is_call,
                                  t_years=lambda: years_to_expiry_days(trade_day, expiry_day, is_am), r=r)
        return cls(
            group=group,
            spot=spot,
            strike=strike,
            t_years=None,
            iv=clean.iv,
            open_interest=num("open_interest"),
            multiplier=num("multiplier"),
            is_call=is_call,
            volume=num("volume") if "volume" in tbl.column_names else None,
            r=r,
            trade_day=trade_day,
            expiry_day=expiry_day,
            is_am=is_am,
            iv_source=clean.source,
            iv_origin=clean.origin,
        )


def net_gex(chain: ChainArrays, n_groups: int, sign_model: str = DEFAULT_SIGN_MODEL) -> dict[str, np.ndarray]:
    """Per group: net_gex_per_1pct (dollars per 1% move), net_gex_per_point (dollars per 1
    point), spot and contracts_used (rows with T > 0, valid IV and OI > 0)."""
    t = chain.years()
    gex = contract_gex_per_1pct(chain.spot, chain.strike, t, chain.iv, chain.open_interest,
                                chain.multiplier, chain.is_call, sign_model=sign_model)
    used = (t > 0) & np.isfinite(chain.iv) & (chain.iv > 0) & (np.nan_to_num(chain.open_interest) > 0)
    total = np.bincount(chain.group, weights=gex, minlength=n_groups)
    first = np.searchsorted(chain.group, np.arange(n_groups))
    spot = chain.spot[first]
    return {
        "net_gex_per_1pct": total,
        "net_gex_per_point": total / (0.01 * spot),
        "spot": spot,
        "contracts_used": np.bincount(chain.group, weights=used.astype(float), minlength=n_groups),
    }


# ---------------------------------------------------------------------------------------
# Full positioning: walls, vanna/charm, expiry buckets, 0DTE volume, zero gamma.

POSITIONING_FIELDS = ("net_gex_per_1pct", "net_gex_per_point", "zero_gamma", "call_wall", "put_wall",
                      "net_vex_per_volpt", "net_cex_per_day", "gex_0dte", "gex_le7d", "gex_gt7d",
                      "zero_dte_volume_share", "contracts_used", "spot", "zero_gamma_roots_found")
DEFAULT_GRID = 201  # spots from 0.5 S to 1.5 S, 0.5% of spot apart, to bracket the roots
ROOT_RANGE = (0.5, 1.5)


def group_starts(group: np.ndarray, n_groups: int) -> np.ndarray:
    """Row offsets of each contiguous group, length n_groups + 1."""
    return np.searchsorted(group, np.arange(n_groups + 1)).astype(np.int64)


def _day_tables(chain: ChainArrays):
    """(t, trade_day, expiry_day, is_am, tables) for the kernels: T per row when the chain has
    it, else day numbers and the per-day epoch tables over their range (valuation 16:00 ET,
    AM settlement 09:30 ET), computed once per distinct day. Day numbers stay whenever the
    chain has them (days to expiry come from them)."""
    if chain.t_years is None and chain.trade_day is None:
        raise ValueError("a chain needs t_years or trade_day / expiry_day / is_am")
    no_tables = (np.zeros(1), np.zeros(1), 0, SECONDS_PER_YEAR)
    empty = np.zeros(0, np.int32)
    days = (empty, empty) if chain.trade_day is None else \
        (np.ascontiguousarray(chain.trade_day), np.ascontiguousarray(chain.expiry_day))
    if chain.t_years is not None or len(chain.trade_day) == 0:
        return np.ascontiguousarray(chain.years(), float), *days, np.zeros(0, bool), no_tables
    lo, hi = day_range(days[0], days[1])
    if hi - lo > MAX_TABLE_DAYS:  # dates centuries apart (bad data): per-row T instead of a table
        return np.ascontiguousarray(chain.years(), float), *days, np.zeros(0, bool), no_tables
    return np.zeros(0), *days, np.ascontiguousarray(chain.is_am, bool), day_tables(lo, hi)


MAX_TABLE_DAYS = 200_000


def day_range(trade_day: np.ndarray, expiry_day: np.ndarray) -> tuple[int, int]:
    """(first, last) day number over trade and expiry days."""
    return int(min(trade_day.min(), expiry_day.min())), int(max(trade_day.max(), expiry_day.max()))


def day_tables(lo: int, hi: int) -> tuple:
    """The kernels' `tables` argument for days lo..hi: (16:00 ET valuation, 09:30 ET AM
    settlement, lo, seconds per year)."""
    return (*_day_range_tables(lo, hi), lo, SECONDS_PER_YEAR)


def _kernel_columns(chain: ChainArrays):
    """(volume, days, r, q) as the kernels take them: empty arrays mean "derive" (days from
    the day numbers) or 0 (r, q); volume all NaN when unknown."""
    n = chain.spot.shape[0]
    vol = np.full(n, np.nan) if chain.volume is None else np.ascontiguousarray(chain.volume)
    if chain.days_to_expiry is not None:
        days = np.ascontiguousarray(chain.days_to_expiry, np.int64)
    elif chain.trade_day is not None:
        days = np.zeros(0, np.int64)
    else:
        days = np.full(n, 10**6, np.int64)
    empty = np.zeros(0)
    r = empty if chain.r is None else np.ascontiguousarray(chain.r, float)
    q = empty if chain.q is None else np.ascontiguousarray(chain.q, float)
    return vol, days, r, q


# flags given as booleans: code 0 / 1 per row, looked up in (False, True)
BOOL_LUT = np.array([False, True])


def bool_codes(flags: np.ndarray) -> np.ndarray:
    """0 / 1 int32 codes of a boolean array (the kernels' flag codes, `BOOL_LUT`)."""
    return np.ascontiguousarray(flags, bool).astype(np.int32)


def given_iv_rule() -> tuple:
    """The kernels' `iv_rule` for IVs taken as they are (`nb.IV_GIVEN`)."""
    from eventvol.pipelines import nb as kernels

    none = np.zeros(0, np.int32)
    return kernels.IV_GIVEN, none, np.zeros(1), none, np.zeros(1, np.int32)


def group_blocks(starts: np.ndarray, per_thread: int = 4, total: bool = False) -> list[tuple[int, int]]:
    """[g_lo, g_hi) blocks of groups with about equal rows: `per_thread` per thread (`total`:
    `per_thread` in all), so that a block of big chains does not leave a thread idle; one block
    below SERIAL_BELOW_GROUPS groups."""
    ng = len(starts) - 1
    want = per_thread if total else worker_count() * per_thread
    n_blocks = min(want, ng) if ng >= SERIAL_BELOW_GROUPS else 1
    if n_blocks <= 1:
        return [(0, ng)] if ng else []
    cuts = np.searchsorted(starts, np.linspace(starts[0], starts[-1], n_blocks + 1)[1:-1])
    edges = np.unique(np.concatenate([[0], np.clip(cuts, 0, ng), [ng]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


# fewer groups than this run on the calling thread: one SPX chain is ~2 ms of work, less than
# starting and joining threads on a loaded 2-core machine
SERIAL_BELOW_GROUPS = 8


def run_positioning_groups(starts: np.ndarray, *args) -> np.ndarray:
    """`nb.positioning_groups` over every group of `starts` (its arguments after g_lo, g_hi,
    except `out`), blocks of groups on threads: matrix (n_groups, len(nb.OUT_FIELDS))."""
    from eventvol.pipelines import nb as kernels

    out = np.empty((len(starts) - 1, kernels.N_OUT))

    def run(block: tuple[int, int]) -> None:
        kernels.positioning_groups(starts, block[0], block[1], *args, out)

    run_on_threads(run, group_blocks(starts))
    return out


@dataclass(frozen=True)
class KernelRows:
    """The row arguments of `nb.positioning_groups` for one Arrow table of chains, taken from
    its columns without a per-row Python object or string: numbers zero-copy where the stored
    type allows, string flags as dictionary codes with a flag per code, the `otm` IV rule's
    inputs (vendor floors, root ranks) for the kernel to apply per group."""

    spot: np.ndarray
    strike: np.ndarray
    iv: np.ndarray
    oi: np.ndarray
    mult: np.ndarray
    volume: np.ndarray
    trade_day: np.ndarray
    expiry_day: np.ndarray
    flags: tuple  # (call_code, call_lut, am_code, am_lut)
    iv_rule: tuple  # (mode, floor_code, floor_lut, root_code, root_rank)
    r: np.ndarray  # empty: r = 0

    @classmethod
    def from_arrow(cls, tbl: pa.Table, starts: np.ndarray, iv_source: str = DEFAULT_IV_SOURCE,
                   curves: tuple | None = None) -> "KernelRows":
        """From chain rows as `ChainArrays.from_arrow` takes them, grouped as `starts` says;
        `curves`: `rate_curves` output (None: r = 0). IV sources `otm` and `vendor` are left to
        the kernel (the `vendor` IV is the stored one); `solved` is cleaned here, by
        `ChainArrays.from_arrow` (it solves IVs from mid quotes)."""
        from eventvol.pipelines import nb as kernels

        n = tbl.num_rows
        names = tbl.column_names
        trade_day, expiry_day = arrow_days(tbl.column("trade_date")), arrow_days(tbl.column("expiration"))
        r = rates_per_row(curves, trade_day, expiry_day.astype(np.int64) - trade_day, serial=True) \
            if curves is not None else None
        iv_rule = given_iv_rule()
        if iv_source == "solved":
            group = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
            iv = ChainArrays.from_arrow(tbl, group, curves, "solved").iv
        else:
            iv = tbl.column("iv").cast(pa.float64()).to_numpy()
            if check_source(iv_source) == "otm":
                root_code, root_rank = ranked_codes(pairing_column(tbl), n)
                floor_code, floor_lut = floor_codes(tbl.column("vendor") if "vendor" in names else None, n)
                iv_rule = (kernels.IV_OTM, np.ascontiguousarray(floor_code, np.int32), floor_lut,
                           np.ascontiguousarray(root_code, np.int32), root_rank)
        return cls(
            spot=np.ascontiguousarray(arrow_numbers(tbl.column("underlying_price")), float),
            strike=np.ascontiguousarray(arrow_numbers(tbl.column("strike")), float),
            iv=np.ascontiguousarray(iv, float),
            oi=np.ascontiguousarray(arrow_numbers(tbl.column("open_interest"))),
            mult=np.ascontiguousarray(arrow_numbers(tbl.column("multiplier"))),
            volume=np.ascontiguousarray(arrow_numbers(tbl.column("volume"))) if "volume" in names else np.full(n, np.nan),
            trade_day=np.ascontiguousarray(trade_day),
            expiry_day=np.ascontiguousarray(expiry_day),
            flags=(*flag_codes(tbl, "is_call", "option_type", "C"), *flag_codes(tbl, "is_am", "settlement", "AM")),
            iv_rule=iv_rule,
            r=np.zeros(0) if r is None else r,
        )

    def args(self, tables: tuple | None) -> tuple:
        """`nb.positioning_groups`' row arguments, with T from the day `tables` (None: T per
        row, for dates too far apart for a table)."""
        none = np.zeros(0, np.int64)
        if tables is None:
            call_code, call_lut, am_code, am_lut = self.flags
            t = years_to_expiry_days(self.trade_day, self.expiry_day, am_lut[am_code])
            dates, tables = (t, self.trade_day, self.expiry_day, none), (np.zeros(1), np.zeros(1), 0, SECONDS_PER_YEAR)
        else:
            dates = (np.zeros(0), self.trade_day, self.expiry_day, none)
        return (self.spot, self.strike, self.iv, self.oi, self.mult, self.volume, dates, tables, self.flags,
                self.iv_rule, (self.r, np.zeros(0)))


def positioning_of_tables(tables: Sequence[pa.Table], starts: Sequence[np.ndarray], rates: pa.Table | None = None,
                          sign_model: str = DEFAULT_SIGN_MODEL, iv_source: str = DEFAULT_IV_SOURCE, *,
                          zero_gamma: bool = True, n_grid: int = DEFAULT_GRID) -> dict[str, np.ndarray]:
    """`positioning` of chain rows held in Arrow tables (`loaders.GroupedChains`: table i's
    groups are rows starts[i][g]:starts[i][g+1]), groups in table order, IVs per `iv_source`
    (`pipelines.ivsource`; `otm` applied inside the kernel), r from `rates` rows. The same
    numbers as `positioning(ChainArrays.from_arrow(...))` of the concatenated rows: tables (or
    blocks of groups) run on threads, with T from one set of day tables over every table's
    days."""
    from eventvol.pipelines import nb as kernels

    check_source(iv_source)
    call_sign, put_sign = SIGN_MODELS[_check_model(sign_model)]
    curves = rate_curves(rates)
    spans = [arrow_day_range(t) for t in tables if t.num_rows]
    lo, hi = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else (0, 0)
    day_args = day_tables(lo, hi) if hi - lo <= MAX_TABLE_DAYS else None
    outs = [np.empty((len(s) - 1, kernels.N_OUT)) for s in starts]
    spots: list[np.ndarray] = [np.zeros(0)] * len(tables)
    rest = ((float(call_sign), float(put_sign)), bool(zero_gamma), (int(n_grid), *ROOT_RANGE))

    def rows_of(i: int) -> KernelRows:
        rows = KernelRows.from_arrow(tables[i], starts[i], iv_source, curves)
        spots[i] = rows.spot[starts[i][:-1]]
        return rows

    def run(i: int, rows: KernelRows, a: int, b: int) -> None:
        kernels.positioning_groups(starts[i], a, b, *rows.args(day_args), *rest, outs[i])

    if len(tables) >= worker_count():
        # a table per item: its columns taken and its groups run on the same thread, so one
        # thread's Python work overlaps the other's kernel
        run_on_threads(lambda i: run(i, rows_of(i), 0, len(starts[i]) - 1), range(len(tables)))
    else:  # few tables: their columns first, then blocks of groups (about four per thread)
        rows = run_on_threads(rows_of, range(len(tables)))
        per_table = -(-worker_count() * 4 // max(len(tables), 1))
        items = [(i, a, b) for i, s in enumerate(starts) for a, b in group_blocks(s, per_table, total=True)]
        run_on_threads(lambda item: run(item[0], rows[item[0]], item[1], item[2]), items)
    spot0 = np.concatenate(spots) if spots else np.zeros(0)
    m = np.concatenate(outs) if outs else np.zeros((0, kernels.N_OUT))
    return positioning_fields(m, spot0)


def arrow_day_range(tbl: pa.Table) -> tuple[int, int]:
    """(first, last) day number over a table's trade and expiration days (`day_range` without
    taking the columns)."""
    ends = [pc.min_max(tbl.column(c).cast(pa.int32())) for c in ("trade_date", "expiration")]
    return min(e["min"].as_py() for e in ends), max(e["max"].as_py() for e in ends)


def positioning(chain: ChainArrays, n_groups: int, sign_model: str = DEFAULT_SIGN_MODEL, *,
                zero_gamma: bool = True, n_grid: int = DEFAULT_GRID) -> dict[str, np.ndarray]:
    """Per group (rows contiguous by `chain.group`), arrays of:
    net_gex_per_1pct ($ per 1% move), net_gex_per_point ($ per 1 point), zero_gamma (spot $ of
    the profile root nearest spot in [0.5 S, 1.5 S], NaN if none), call_wall / put_wall (strike
    $ with the largest |call| / |put| GEX summed over expiries), net_vex_per_volpt ($ per vol
    point), net_cex_per_day ($ of delta per calendar day), gex_0dte / gex_le7d / gex_gt7d (GEX
    of contracts expiring 0, 1-7, > 7 calendar days after the trade date), zero_dte_volume_share
    (volume expiring on the trade date / all volume, NaN without volume), contracts_used, spot,
    zero_gamma_roots_found."""
    call_sign, put_sign = SIGN_MODELS[_check_model(sign_model)]
    vol, days, r, q = _kernel_columns(chain)
    t, td, ed, am, tables = _day_tables(chain)
    starts = group_starts(np.asarray(chain.group), n_groups)
    f64 = lambda a: np.ascontiguousarray(a, dtype=float)  # noqa: E731
    spot, strike, iv = (f64(a) for a in (chain.spot, chain.strike, chain.iv))
    flags = (bool_codes(chain.is_call), BOOL_LUT, bool_codes(am), BOOL_LUT)
    m = run_positioning_groups(starts, spot, strike, iv, np.ascontiguousarray(chain.open_interest),
                               np.ascontiguousarray(chain.multiplier), vol, (t, td, ed, days), tables, flags,
                               given_iv_rule(), (r, q), (float(call_sign), float(put_sign)), bool(zero_gamma),
                               (int(n_grid), *ROOT_RANGE))
    first = np.minimum(starts[:-1], max(len(spot) - 1, 0))
    out = positioning_fields(m, spot[first] if len(spot) else np.full(n_groups, np.nan))
    if not zero_gamma:
        del out["zero_gamma"], out["zero_gamma_roots_found"]
    return out


def positioning_fields(m: np.ndarray, spot0: np.ndarray) -> dict[str, np.ndarray]:
    """The `POSITIONING_FIELDS` from the kernel's matrix (`nb.OUT_FIELDS` columns) and the spot
    of each group's first row."""
    from eventvol.pipelines import nb as kernels

    res = {name: m[:, k] for k, name in enumerate(kernels.OUT_FIELDS)}
    with np.errstate(divide="ignore", invalid="ignore"):
        share = res["volume_0dte"] / res["volume_total"]
    return {
        "net_gex_per_1pct": res["net_gex_per_1pct"],
        "net_gex_per_point": res["net_gex_per_1pct"] / (0.01 * spot0),
        "call_wall": res["call_wall"],
        "put_wall": res["put_wall"],
        "net_vex_per_volpt": res["net_vex_per_volpt"],
        "net_cex_per_day": res["net_cex_per_day"],
        "gex_0dte": res["gex_0dte"],
        "gex_le7d": res["gex_le7d"],
        "gex_gt7d": res["gex_gt7d"],
        "zero_dte_volume_share": np.where(res["volume_total"] > 0, share, np.nan),
        "contracts_used": res["contracts_used"],
        "spot": spot0,
        "zero_gamma": res["zero_gamma"],
        "zero_gamma_roots_found": res["zero_gamma_roots_found"],
    }


def _check_model(model: str) -> str:
    if model not in SIGN_MODELS:
        raise ValueError(f"unknown sign model {model!r}; choose one of {', '.join(SIGN_MODELS)}")
    return model


def _single(chain: ChainArrays, sign_model: str):
    from eventvol.pipelines import nb as kernels

    call_sign, put_sign = SIGN_MODELS[_check_model(sign_model)]
    r, q = chain.rates()
    oi = np.nan_to_num(np.asarray(chain.open_interest, float), nan=0.0)
    weight = np.where(chain.is_call, call_sign, put_sign) * oi * np.asarray(chain.multiplier, float)
    f64 = lambda a: np.ascontiguousarray(a, dtype=float)  # noqa: E731
    return kernels, kernels.profile_coefficients(f64(chain.strike), f64(chain.years()), f64(chain.iv), f64(weight),
                                                 f64(r), f64(q))


def gex_profile(chain: ChainArrays, spots, sign_model: str = DEFAULT_SIGN_MODEL) -> np.ndarray:
    """Net GEX per 1% ($) of one chain with every usable contract re-priced at each hypothetical
    spot (its own IV, same T)."""
    kernels, coef = _single(chain, sign_model)
    return kernels.profile(np.ascontiguousarray(spots, dtype=float), *coef)


def zero_gamma_roots(chain: ChainArrays, sign_model: str = DEFAULT_SIGN_MODEL, *, n_grid: int = DEFAULT_GRID,
                     spot: float | None = None) -> np.ndarray:
    """Every root of one chain's re-priced GEX profile in [0.5 S, 1.5 S], ascending ($)."""
    kernels, coef = _single(chain, sign_model)
    s = float(chain.spot[0]) if spot is None else float(spot)
    return kernels.profile_roots(s, *coef, int(n_grid), *ROOT_RANGE)


def nearest_root(roots: np.ndarray, spot: float) -> float:
    """The root nearest spot, NaN when there is none."""
    return float(roots[np.argmin(np.abs(roots - spot))]) if len(roots) else float("nan")
