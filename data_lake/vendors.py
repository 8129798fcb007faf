"""Several vendors side by side: one documented rule for which vendor's chain a reader uses.

`vendor` is part of the `option_quotes` key, so a second vendor's rows for the same contract and
day live beside the first vendor's instead of replacing them. Readers must then pick ONE vendor
per (underlying, trade_date) — mixing two vendors' open interest or IVs in one chain would
double-count positions — and they all pick the same way:

- `pick_vendor(rows, preference)` on Arrow or pandas rows (read with `as_of` first, so the pick
  only sees vendors known at that time);
- `vendor_pick_sql(preference)` as a SQL source for readers that query `option_quotes` in DuckDB.

The preference is an ordered list of vendor names (the `vendor` column: cboe-datashop,
optionmetrics, orats, cboe, synthetic). The lake setting (`settings.json`,
`set_vendor_preference`) overrides `DEFAULT_VENDOR_PREFERENCE`; a call's `preference` argument
overrides both. Vendors missing from the list rank after every listed one, alphabetically, so
the pick is always deterministic.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eventvol.data_lake.errors import SchemaError

# Why this order: Cboe DataShop is the exchange's own end-of-day file (15:45 calcs, official OI);
# OptionMetrics IvyDB is the cleaned academic standard; ORATS's values are smoothed (SMV);
# Cboe's website quote table is a delayed snapshot whose IVs carry a 0.02 floor; synthetic data
# is never preferred to a real vendor.
DEFAULT_VENDOR_PREFERENCE: tuple[str, ...] = ("cboe-datashop", "optionmetrics", "orats", "cboe", "synthetic")
SETTINGS_FILE = "settings.json"
KEY_COLUMNS = ("underlying", "trade_date")

Rows = TypeVar("Rows", pa.Table, pd.DataFrame)


def _settings_path(lake) -> Path:
    return Path(lake.root) / SETTINGS_FILE


def _read_settings(lake) -> dict:
    path = _settings_path(lake)
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path} is not a readable JSON settings file ({exc}); fix or delete it") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{path} must hold a JSON object")
    return data


def _check(preference: Sequence[str]) -> tuple[str, ...]:
    if isinstance(preference, str) or not all(isinstance(v, str) and v for v in preference):
        raise SchemaError("a vendor preference is a list of vendor names, e.g. cboe-datashop,optionmetrics,orats")
    out = tuple(preference)
    if len(set(out)) != len(out):
        raise SchemaError(f"the vendor preference names a vendor twice: {', '.join(out)}")
    return out


def vendor_preference(lake=None, preference: Sequence[str] | None = None) -> tuple[str, ...]:
    """The vendor order a read uses: `preference` if given, else the lake's setting, else
    `DEFAULT_VENDOR_PREFERENCE`."""
    if preference is not None:
        return _check(preference)
    if lake is not None:
        stored = _read_settings(lake).get("vendor_preference")
        if stored is not None:
            return _check(stored)
    return DEFAULT_VENDOR_PREFERENCE


def stored_vendor_preference(lake) -> tuple[str, ...] | None:
    """The vendor order stored in the lake's settings, None when it has none (the default
    applies)."""
    stored = _read_settings(lake).get("vendor_preference")
    return None if stored is None else _check(stored)


def set_vendor_preference(lake, preference: Sequence[str] | None) -> Path:
    """Store the lake's vendor order (None restores the default); atomic, under the writer lock."""
    with lake.writer():
        settings = _read_settings(lake)
        if preference is None:
            settings.pop("vendor_preference", None)
        else:
            settings["vendor_preference"] = list(_check(preference))
        path = _settings_path(lake)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(settings, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, path)
        return path


def _ranks_of_names(names: pa.Array, preference: tuple[str, ...]) -> np.ndarray:
    """int64 rank of each (plain string) vendor name: listed first, then the others
    alphabetically."""
    known = pc.index_in(names, value_set=pa.array(preference, pa.string()))
    rank = pc.fill_null(known, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    unknown = rank < 0
    if unknown.any():
        others = np.asarray(names.to_numpy(zero_copy_only=False), dtype=object)[unknown].tolist()
        order = {v: len(preference) + i for i, v in enumerate(sorted(set(others), key=lambda v: (v is None, v or "")))}
        rank[unknown] = [order[v] for v in others]
    return rank


def _per_row(col: pa.Array | pa.ChunkedArray, of_values) -> np.ndarray:
    """`of_values(distinct values) -> numbers` applied per row; a dictionary-encoded column is
    mapped through its dictionaries (one entry per distinct value, no string per row)."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    if not chunks:
        return np.zeros(0, np.int64)
    if not pa.types.is_dictionary(chunks[0].type):
        chunks = [pc.dictionary_encode(c) for c in chunks]
    return np.concatenate([of_values(c.dictionary)[c.indices.to_numpy(zero_copy_only=False)] for c in chunks])


def vendor_rank(vendors: pa.Array | pa.ChunkedArray, preference: Sequence[str]) -> np.ndarray:
    """int64 rank of each row's vendor (0 = most preferred); unlisted vendors rank after the
    listed ones in alphabetical order."""
    preference = _check(preference)
    return _per_row(vendors, lambda names: _ranks_of_names(names, preference))


def pick_vendor(rows: Rows, preference: Sequence[str] | None = None, *, lake=None) -> Rows:
    """The rows of the most preferred vendor present for each (underlying, trade_date); other
    vendors' rows of that chain are dropped. Row order is kept. `rows` (Arrow, plain or
    dictionary-encoded strings, or pandas) needs the columns `underlying`, `trade_date` and
    `vendor`; the order is `vendor_preference(lake, preference)`."""
    is_pandas = isinstance(rows, pd.DataFrame)
    tbl = pa.Table.from_pandas(rows, preserve_index=False) if is_pandas else rows
    missing = [c for c in (*KEY_COLUMNS, "vendor") if c not in tbl.column_names]
    if missing:
        raise SchemaError(f"pick_vendor needs the column {missing[0]!r} in the rows it picks from")
    if tbl.num_rows == 0:
        return rows
    order = vendor_preference(lake, preference)
    rank = vendor_rank(tbl.column("vendor"), order)
    if rank.min() == rank.max():
        return rows  # one vendor (the usual lake): nothing to pick, no copy
    # one int64 per (underlying, trade_date): the underlying's code beside the day number
    names: dict[str, int] = {}
    und = _per_row(tbl.column("underlying"), lambda v: np.array(
        [names.setdefault(x, len(names)) for x in v.to_pylist()], dtype=np.int64))
    day = tbl.column("trade_date").combine_chunks()
    day = day if pa.types.is_date32(day.type) else pc.cast(day, pa.date32(), safe=False)
    day = day.cast(pa.int32()).to_numpy(zero_copy_only=False)
    g, uniq = pd.factorize((und << 32) | (day.astype(np.int64) & 0xFFFFFFFF))  # hash, no sort
    best = np.full(len(uniq), np.iinfo(np.int64).max)
    for r in np.flatnonzero(np.bincount(rank))[::-1]:  # the most preferred vendor present per chain writes last
        best[g[rank == r]] = r
    keep = rank == best[g]
    if is_pandas:
        return rows.loc[keep]
    return tbl.filter(pa.array(keep))


def vendor_rank_sql(preference: Sequence[str] | None = None, *, lake=None, column: str = "vendor") -> str:
    """A SQL expression ranking `column` (0 = most preferred; every unlisted vendor gets the
    same rank after the listed ones: order by (rank, vendor) for the alphabetical tie-break)."""
    order = vendor_preference(lake, preference)
    cases = " ".join(f"WHEN {_lit(v)} THEN {i}" for i, v in enumerate(order))
    return f"(CASE {column} {cases} ELSE {len(order)} END)"


def vendor_pick_sql(preference: Sequence[str] | None = None, *, lake=None, source: str = "option_quotes") -> str:
    """A parenthesized SQL source equal to `pick_vendor` over `source` (a table, view or
    subquery with underlying, trade_date and vendor), e.g.
    ``f"SELECT ... FROM {vendor_pick_sql(lake=lake)} q WHERE q.underlying = ?"``.
    Vendor names are quoted as SQL literals; `source` must be trusted SQL."""
    rank = vendor_rank_sql(preference, lake=lake)
    return (f"(SELECT * EXCLUDE (__vendor_rank) FROM (SELECT *, {rank} AS __vendor_rank FROM {source}) "
            f"QUALIFY dense_rank() OVER (PARTITION BY underlying, trade_date ORDER BY __vendor_rank, vendor) = 1)")


def picked_vendors_sql(preference: Sequence[str] | None = None, *, lake=None, source: str = "option_quotes") -> str:
    """A parenthesized SQL source of (underlying, trade_date, vendor): the vendor `pick_vendor`
    keeps for each chain of `source`. Joining rows on all three columns keeps the picked
    vendor's rows; a hash aggregate, cheaper than `vendor_pick_sql`'s window on large scans."""
    rank = vendor_rank_sql(preference, lake=lake)
    return (f"(SELECT underlying, trade_date, min({{'r': {rank}, 'v': vendor}}).v AS vendor FROM {source} "
            f"GROUP BY underlying, trade_date)")


def _lit(v: str) -> str:
    return "'" + v.replace("'", "''") + "'"
