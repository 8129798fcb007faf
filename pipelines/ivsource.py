"""A clean implied vol per contract for positioning, with where each value came from.

Sources (`IV_SOURCES`; `DEFAULT_IV_SOURCE` is `otm`):
  - `vendor`: the `iv` column as delivered (a vendor floor such as Cboe's 0.02 included);
  - `otm`: at each (group, root, expiration, strike) the out-of-the-money side's vendor IV
    (the call when strike >= spot, the put below) is used for both the call and the put,
    falling back to the other side where the out-of-the-money IV is missing, not positive
    or at a vendor floor (`VENDOR_IV_FLOORS`); a contract whose pair has no usable IV on
    either side has none;
  - `solved`: as `otm`, but a side without a usable vendor IV gets the IV solved from its
    mid quote ((bid + ask) / 2, both quoted, bid > 0) by `pipelines.iv.implied_vol` with the
    row's T and r first; on a quotes-only file every IV is solved. The forward is implied by
    put-call parity per (group, root, expiration) at the strike where |call mid - put mid| is
    smallest, F = K + e^{rT} (C - P), and enters the solver as the yield q = r - ln(F/S) / T
    (Cboe's VIX recipe): index dividends put F below spot, and solving with F = S e^{rT}
    instead biases call IVs down and put IVs up (SPX 2022-02-04: net GEX off by 17%).
    Expiries without a two-sided call and put at one strike use q = 0.

Pure array code: numba passes over the rows (pairing, choice), numpy elsewhere; no Python
loop over rows. Rows must be grouped by
(underlying, trade_date); within a group the call and the put of a strike are paired whatever
their order (sorted order is checked and used when present, else a lexsort).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from eventvol.pipelines.columns import dictionary_codes

IV_SOURCES = ("otm", "vendor", "solved")
DEFAULT_IV_SOURCE = "otm"

# Values a vendor documents as "no IV could be solved" rather than a volatility: an IV at or
# below the floor is treated as missing. Cboe's quote tables print 0.02 for the in-the-money
# options (mostly puts) their solver cannot price (2,285 of 10,256 put rows of SPX 2022-02-04).
VENDOR_IV_FLOORS = {"cboe": 0.02}

# origin codes per contract (`CleanIV.origin`)
NO_IV = 0
OWN_VENDOR = 1  # the row's own vendor IV
OTHER_SIDE_VENDOR = 2  # the vendor IV of the other side of the same strike
OWN_SOLVED = 3  # solved from the row's own mid quote
OTHER_SIDE_SOLVED = 4  # solved from the other side's mid quote
ORIGINS = {NO_IV: "none", OWN_VENDOR: "own vendor IV", OTHER_SIDE_VENDOR: "other side's vendor IV",
           OWN_SOLVED: "solved from own mid", OTHER_SIDE_SOLVED: "solved from other side's mid"}


@dataclass(frozen=True)
class CleanIV:
    """iv: decimal per row (NaN = none); origin: int8 code per row (`ORIGINS`)."""

    iv: np.ndarray
    origin: np.ndarray
    source: str


def check_source(source: str) -> str:
    if source not in IV_SOURCES:
        raise ValueError(f"unknown IV source {source!r}; choose one of {', '.join(IV_SOURCES)}")
    return source


def ranked_codes(col: pa.ChunkedArray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, rank per code) of a string column, plain or dictionary-encoded, such that
    rank[code] compares like the strings; zeros without the column."""
    if col is None:
        return np.zeros(n, np.int32), np.zeros(1, np.int32)
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    codes, dictionary = dictionary_codes(col)
    rank = np.empty(len(dictionary), np.int32)
    rank[np.asarray(pc.sort_indices(dictionary))] = np.arange(len(dictionary), dtype=np.int32)
    return codes, rank


def _codes(col: pa.ChunkedArray | None, n: int) -> np.ndarray:
    """Code per row of a string column whose order follows the string order (`ranked_codes`)."""
    codes, rank = ranked_codes(col, n)
    return rank[codes] if len(rank) and col is not None else codes


def pairing_column(tbl: pa.Table) -> pa.ChunkedArray | None:
    """The column telling contracts of the same expiration and strike apart: `root`, else
    `settlement` (an AM and a PM root), else none."""
    names = tbl.column_names
    return tbl.column("root") if "root" in names else tbl.column("settlement") if "settlement" in names else None


def floor_codes(vendor: pa.ChunkedArray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(code per row, IV floor per code) of the vendor column (`VENDOR_IV_FLOORS`; 0 where
    the vendor documents none, for null vendors and without the column)."""
    if vendor is None:
        return np.zeros(n, np.int32), np.zeros(1)
    if not pa.types.is_dictionary(vendor.type):
        vendor = pc.dictionary_encode(vendor)
    codes, dictionary = dictionary_codes(vendor)
    per_code = np.array([VENDOR_IV_FLOORS.get(v, 0.0) for v in dictionary.to_pylist()] + [0.0], float)
    if vendor.null_count:
        codes = np.where(vendor.is_valid().to_numpy(zero_copy_only=False), codes, len(per_code) - 1).astype(np.int32)
    return codes, per_code


def vendor_floors(vendor: pa.ChunkedArray | None, n: int) -> np.ndarray | float:
    """The IV floor per row from its vendor (0 where the vendor documents none)."""
    if vendor is None:
        return 0.0
    if not pa.types.is_dictionary(vendor.type):
        vendor = pc.dictionary_encode(vendor)
    codes, dictionary = dictionary_codes(vendor)
    per_code = np.array([VENDOR_IV_FLOORS.get(v, 0.0) for v in dictionary.to_pylist()], float)
    if not per_code.any():
        return 0.0
    out = per_code[codes]
    if vendor.null_count:
        out = np.where(vendor.is_valid().to_numpy(zero_copy_only=False), out, 0.0)
    return out


def usable_vendor_iv(iv: np.ndarray, floor: np.ndarray | float) -> np.ndarray:
    """The vendor IV where it is a volatility (finite, > 0 and above the vendor's floor), else NaN."""
    iv = np.asarray(iv, float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(iv) & (iv > 0) & (iv > floor)
    return np.where(ok, iv, np.nan)


@nb.njit(cache=True, nogil=True)
def _is_pair_sorted(group, root, expiry, strike, is_call):
    """Rows sorted by (group, root, expiration, strike) with the call before the put."""
    for i in range(group.shape[0] - 1):
        j = i + 1
        if group[j] != group[i]:
            if group[j] < group[i]:
                return False
            continue
        if root[j] != root[i]:
            if root[j] < root[i]:
                return False
            continue
        if expiry[j] != expiry[i]:
            if expiry[j] < expiry[i]:
                return False
            continue
        if strike[j] != strike[i]:
            if strike[j] < strike[i]:
                return False
            continue
        if is_call[j] and not is_call[i]:
            return False
    return True


@nb.njit(cache=True, nogil=True)
def _adjacent_partner(group, root, expiry, strike, is_call):
    """Partner per row of rows sorted as `_is_pair_sorted` checks: runs of exactly two rows with
    the same key, a call then a put."""
    n = group.shape[0]
    partner = np.full(n, -1, np.int64)
    i = 0
    while i < n:
        j = i + 1
        while j < n and group[j] == group[i] and root[j] == root[i] and expiry[j] == expiry[i] \
                and strike[j] == strike[i]:
            j += 1
        if j - i == 2 and is_call[i] and not is_call[i + 1]:
            partner[i] = i + 1
            partner[i + 1] = i
        i = j
    return partner


def pair_partner(group: np.ndarray, root: np.ndarray, expiry: np.ndarray, strike: np.ndarray,
                 is_call: np.ndarray) -> np.ndarray:
    """Index of the row holding the other side (call <-> put) of the same (group, root,
    expiration, strike), -1 where there is none (or where the key is not a single call/put
    pair, e.g. duplicated rows). Rows in the lake's order are paired in one pass; any other
    order goes through a lexsort first."""
    n = len(strike)
    if n < 2:
        return np.full(n, -1, np.int64)
    keys = [np.ascontiguousarray(group, np.int64), np.ascontiguousarray(root, np.int64),
            np.ascontiguousarray(expiry, np.int64), np.ascontiguousarray(strike, np.float64),
            np.ascontiguousarray(is_call, np.bool_)]
    if _is_pair_sorted(*keys):
        return _adjacent_partner(*keys)
    order = np.lexsort((~keys[4], keys[3], keys[2], keys[1], keys[0]))
    p = _adjacent_partner(*(k[order] for k in keys))
    partner = np.full(n, -1, np.int64)
    has = p >= 0
    partner[order[has]] = order[p[has]]
    return partner


@nb.njit(cache=True, nogil=True)
def _otm_choice(own_iv, partner, strike, spot, is_call, solved):
    """`otm_choice` and the origin codes in one pass."""
    n = own_iv.shape[0]
    iv = np.empty(n)
    origin = np.zeros(n, np.int8)
    for i in range(n):
        p = partner[i]
        other = own_iv[p] if p >= 0 else np.nan
        own_is_otm = is_call[i] == (strike[i] >= spot[i])
        otm = own_iv[i] if own_is_otm else other
        if otm == otm:
            v, from_other = otm, not own_is_otm
        else:
            v, from_other = (other, True) if own_is_otm else (own_iv[i], False)
        iv[i] = v
        if v == v:
            if from_other:
                origin[i] = OTHER_SIDE_SOLVED if solved[p] else OTHER_SIDE_VENDOR
            else:
                origin[i] = OWN_SOLVED if solved[i] else OWN_VENDOR
    return iv, origin


def otm_choice(own_iv: np.ndarray, partner: np.ndarray, strike: np.ndarray, spot: np.ndarray,
               is_call: np.ndarray, solved: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(iv, origin code) per row: the out-of-the-money side's IV of the row's pair (call when
    strike >= spot), else the in-the-money side's; a row without a pair keeps its own.
    `solved`: rows whose own IV was solved from the mid (for the origin codes)."""
    n = len(own_iv)
    return _otm_choice(np.ascontiguousarray(own_iv, np.float64), np.ascontiguousarray(partner, np.int64),
                       np.ascontiguousarray(strike, np.float64), np.ascontiguousarray(spot, np.float64),
                       np.ascontiguousarray(is_call, np.bool_),
                       np.zeros(n, np.bool_) if solved is None else np.ascontiguousarray(solved, np.bool_))


def mid_quotes(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """(bid + ask) / 2 where both are quoted, bid > 0 and ask >= bid; NaN elsewhere."""
    b, a = np.asarray(bid, float), np.asarray(ask, float)
    with np.errstate(invalid="ignore"):
        quoted = np.isfinite(b) & np.isfinite(a) & (b > 0) & (a >= b)
    return np.where(quoted, 0.5 * (b + a), np.nan)


def implied_yield(mid: np.ndarray, partner: np.ndarray, is_call: np.ndarray, group: np.ndarray, root: np.ndarray,
                  expiry: np.ndarray, strike: np.ndarray, spot: np.ndarray, t_years: np.ndarray,
                  r: np.ndarray | float = 0.0) -> np.ndarray:
    """The continuous yield q per row (decimal per year) that puts the forward where put-call
    parity says it is: per (group, root, expiration), at the strike with both mids and the
    smallest |C - P|, F = K + e^{rT} (C - P), q = r - ln(F / S) / T; 0 where an expiry has no
    such strike, T <= 0 or F is not positive."""
    n = len(strike)
    t = np.asarray(t_years, float)
    rr = np.broadcast_to(np.asarray(r, float), (n,))
    calls = np.flatnonzero(np.asarray(is_call, bool) & (partner >= 0))
    diff = mid[calls] - mid[partner[calls]]
    ok = np.isfinite(diff) & (t[calls] > 0)
    calls, diff = calls[ok], diff[ok]
    q = np.zeros(n)
    if calls.size == 0:
        return q
    # one id per (group, root, expiration): rows are compared through their key columns
    key = np.stack([np.asarray(group, np.int64), np.asarray(root, np.int64), np.asarray(expiry, np.int64)], axis=1)
    _, expiry_id = np.unique(key, axis=0, return_inverse=True)
    expiry_id = expiry_id.ravel()
    order = np.lexsort((np.abs(diff), expiry_id[calls]))
    first = np.ones(order.size, bool)
    first[1:] = expiry_id[calls][order][1:] != expiry_id[calls][order][:-1]
    best = calls[order[first]]
    best_diff = diff[order[first]]
    with np.errstate(divide="ignore", invalid="ignore"):
        fwd = strike[best] + np.exp(rr[best] * t[best]) * best_diff
        q_best = rr[best] - np.log(fwd / spot[best]) / t[best]
    per_expiry = np.zeros(expiry_id.max() + 1)
    good = np.isfinite(q_best) & (fwd > 0)
    per_expiry[expiry_id[best[good]]] = q_best[good]
    return per_expiry[expiry_id]


def solve_mid_iv(mid: np.ndarray, spot: np.ndarray, strike: np.ndarray, t_years: np.ndarray,
                 is_call: np.ndarray, r: np.ndarray | float = 0.0, q: np.ndarray | float = 0.0,
                 rows: np.ndarray | None = None) -> np.ndarray:
    """IV (decimal; NaN where no solution: no mid quote, expired, price outside the
    no-arbitrage bounds) of the mid quotes (dollars per share), for `rows` (indices; default all)."""
    from eventvol.pipelines.iv import implied_vol

    n = len(strike)
    out = np.full(n, np.nan)
    idx = np.arange(n) if rows is None else np.asarray(rows)
    sel = idx[np.isfinite(mid[idx])]
    if sel.size == 0:
        return out
    pick = lambda x: np.broadcast_to(np.asarray(x, float), (n,))[sel]  # noqa: E731
    vol, _ = implied_vol(mid[sel], pick(spot), pick(strike), pick(t_years), pick(r), pick(q),
                         np.asarray(is_call, bool)[sel])
    out[sel] = vol
    return out


def clean_iv(source: str, *, iv: np.ndarray, group: np.ndarray, root: np.ndarray, expiry: np.ndarray,
             strike: np.ndarray, spot: np.ndarray, is_call: np.ndarray, floor: np.ndarray | float = 0.0,
             bid: np.ndarray | None = None, ask: np.ndarray | None = None, t_years=None,
             r: np.ndarray | float = 0.0) -> CleanIV:
    """The IV per row under `source` (module docstring). `root`: comparable codes of the root
    (or of anything else that tells contracts of the same expiration and strike apart);
    `floor`: per-row vendor floor; `bid`/`ask` (dollars per share), `t_years` and `r` (decimal)
    are needed by `solved` only; `t_years` may be a callable returning the array."""
    check_source(source)
    n = len(strike)
    raw = np.asarray(iv, float)
    if source == "vendor":
        origin = np.where(np.isfinite(raw) & (raw > 0), OWN_VENDOR, NO_IV).astype(np.int8)
        return CleanIV(raw, origin, source)
    own = usable_vendor_iv(raw, floor)
    solved = np.zeros(n, bool)
    partner = pair_partner(group, root, expiry, strike, is_call)
    if source == "solved":
        need = np.flatnonzero(~np.isfinite(own))
        if need.size:
            if bid is None or ask is None or t_years is None:
                raise ValueError("IV source 'solved' needs bid, ask and T per row")
            t = t_years() if callable(t_years) else t_years
            mid = mid_quotes(bid, ask)
            q = implied_yield(mid, partner, is_call, group, root, expiry, strike, spot, t, r)
            s = solve_mid_iv(mid, spot, strike, t, is_call, r, q, rows=need)
            own = own.copy()
            own[need] = s[need]
            solved[need] = np.isfinite(s[need])
    out, origin = otm_choice(own, partner, strike, spot, is_call, solved)
    return CleanIV(out, origin, source)


def clean_iv_of_table(tbl: pa.Table, source: str, group: np.ndarray, spot: np.ndarray, strike: np.ndarray,
                      is_call: np.ndarray, t_years=None, r: np.ndarray | float | None = None) -> CleanIV:
    """`clean_iv` on chain rows in the canonical option_quotes columns (`iv`, `expiration`,
    optional `root` (else `settlement` tells roots apart), `vendor`, `bid`, `ask`)."""
    n = tbl.num_rows
    names = tbl.column_names
    iv = tbl.column("iv").cast(pa.float64()).to_numpy()
    if source == "vendor":
        return clean_iv("vendor", iv=iv, group=group, root=None, expiry=None, strike=strike, spot=spot,
                        is_call=is_call)
    root = _codes(pairing_column(tbl), n)
    exp = tbl.column("expiration")
    expiry = (pa.chunked_array([c.view(pa.int32()) for c in exp.chunks], pa.int32()).to_numpy()
              if pa.types.is_date32(exp.type) else exp.cast(pa.int32()).to_numpy())
    floor = vendor_floors(tbl.column("vendor") if "vendor" in names else None, n)
    price = {k: tbl.column(k).cast(pa.float64()).to_numpy() if k in names else None for k in ("bid", "ask")}
    return clean_iv(source, iv=iv, group=group, root=root, expiry=expiry, strike=strike, spot=spot,
                    is_call=is_call, floor=floor, bid=price["bid"], ask=price["ask"], t_years=t_years,
                    r=0.0 if r is None else r)
