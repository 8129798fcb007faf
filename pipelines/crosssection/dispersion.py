"""Dispersion family (`dispersion`): constituent/index volatility ratios and realized
correlation per index and session, each with a trailing 3-year percentile rank.

Outputs (entity = index symbol, e.g. SPX):
- dispersion_ratio_{5,21,63}d: equal-weighted mean of members' realized vols over the index's
  realized vol, over members on that date with a full window (ARCHITECTURE definition).
- dispersion_ratio_cw_{5,21,63}d: the same with the index's cap weights as known at the close.
- realized_corr_{5,21}d: the CBOE implied-correlation formula applied to realized vols.
- <each of the above>_pct3y: point-in-time percentile rank over the trailing 756 sessions.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake
from eventvol.pipelines.crosssection import common as cx
from eventvol.pipelines.crosssection import kernels
from eventvol.pipelines.registry import FactorSpec, register

RATIO_WINDOWS = (5, 21, 63)
CORR_WINDOWS = (5, 21)
BASE_OUTPUTS = (
    tuple(f"dispersion_ratio_{w}d" for w in RATIO_WINDOWS)
    + tuple(f"dispersion_ratio_cw_{w}d" for w in RATIO_WINDOWS)
    + tuple(f"realized_corr_{w}d" for w in CORR_WINDOWS)
)
OUTPUTS = BASE_OUTPUTS + tuple(f"{o}_pct3y" for o in BASE_OUTPUTS)
LOOKBACK_SESSIONS = cx.PCT_WINDOW_SESSIONS + max(RATIO_WINDOWS) + 1


# --------------------------------------------------------------------------- pure math
def implied_correlation(index_vol: np.ndarray, member_vol: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """CBOE implied-correlation formula per row:

        rho = (s_I^2 - sum_i w_i^2 s_i^2) / ((sum_i w_i s_i)^2 - sum_i w_i^2 s_i^2)

    (the denominator is 2 sum_{i<j} w_i w_j s_i s_j). `member_vol` and `weights` are
    [rows, members]; NaN vols or weights drop a member; weights are renormalized to sum to 1
    over the members kept. Vols may be annualized or not, as long as all use the same unit."""
    s = np.asarray(member_vol, float)
    w = np.asarray(weights, float)
    ok = np.isfinite(s) & np.isfinite(w) & (w > 0)
    w = np.where(ok, w, 0.0)
    tot = w.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = w / tot
        ws = np.where(ok, w * s, 0.0)
        diag = (ws * ws).sum(axis=-1)
        cross = ws.sum(axis=-1) ** 2 - diag
        rho = (np.asarray(index_vol, float) ** 2 - diag) / cross
    return np.where((ok.sum(axis=-1) >= 2) & (cross > 0), rho, np.nan)


def dispersion_ratio(index_vol: np.ndarray, member_vol: np.ndarray, mask: np.ndarray,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Mean of member vols (over `mask` & finite vol, weighted by `weights` when given, else
    equal) divided by the index vol, per row. NaN if no member qualifies."""
    ok = mask & np.isfinite(member_vol)
    if weights is None:
        # equal weights: 1.0 * v == v and a sum of ones is an exact count, so this is the
        # weighted form below bit for bit, without two [rows, names] temporaries
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(ok, member_vol, 0.0).sum(axis=1) / ok.sum(axis=1)
            return np.where(ok.any(axis=1), mean / index_vol, np.nan)
    w = np.asarray(weights, float)
    ok &= np.isfinite(w) & (w > 0)
    w = np.where(ok, w, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * np.where(ok, member_vol, 0.0)).sum(axis=1) / w.sum(axis=1)
        return np.where(ok.any(axis=1), mean / index_vol, np.nan)


def index_dispersion(close: cx.Panel, members: pd.DataFrame, weights: pd.DataFrame, index: str,
                     close_ns: np.ndarray) -> dict[str, np.ndarray]:
    """Every base output of one index as arrays aligned with `close.dates`."""
    lr = cx.log_returns(close.values)
    is_index = close.symbols == index
    mask = cx.member_mask(members, index, close.dates, close.symbols) & ~is_index[None, :]
    cap = cx.weight_panel(weights, index, close.dates, close.symbols, close_ns)
    cap = np.where(mask, cap, np.nan)
    out = {}
    no_index = np.full(len(close.dates), np.nan)
    for w in sorted(set(RATIO_WINDOWS) | set(CORR_WINDOWS)):
        vol = cx.realized_vol(lr, w)
        ivol = no_index if not is_index.any() else vol[:, np.flatnonzero(is_index)[0]].copy()
        # one compiled pass per row: the same numbers as dispersion_ratio (equal and cap
        # weights) and implied_correlation on the masked panels, bit for bit (tested)
        ratio, ratio_cw, corr = kernels.dispersion_rows(vol, ivol, mask, cap, w in CORR_WINDOWS)
        if w in RATIO_WINDOWS:
            out[f"dispersion_ratio_{w}d"] = ratio
            out[f"dispersion_ratio_cw_{w}d"] = ratio_cw
        if w in CORR_WINDOWS:
            # Cap weights where the index publishes them, else equal weights over members.
            out[f"realized_corr_{w}d"] = corr
    return out


def compute(data: dict, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Pure: loaded panels -> long factor rows for trade dates in [start, end]."""
    close: cx.Panel = data["close"]
    parts = []
    for index in data["indexes"]:
        if index not in set(close.symbols):
            continue
        res = index_dispersion(close, data["members"], data["weights"], index, data["close_ns"])
        # every output's 3-year rank in one compiled pass over a [dates, outputs] block
        base = np.column_stack([res[name] for name in BASE_OUTPUTS])
        pct = cx.trailing_percentile_panel(base)
        # rows in the order the family always wrote them: each output, then its rank
        names = [n for name in BASE_OUTPUTS for n in (name, f"{name}_pct3y")]
        block = np.empty((len(close.dates), 2 * len(BASE_OUTPUTS)))
        block[:, 0::2], block[:, 1::2] = base, pct
        parts.append(cx.long_rows_block(names, close.dates, index, block, start, end))
    return cx.concat_rows(parts)


# --------------------------------------------------------------------------- I/O
def load(lake: Lake, start, end) -> dict:
    """Closes of the indexes and every symbol that was ever their member, from the lookback
    start to `end`; all memberships; weight snapshots dated <= end (known_at filtered per
    session in compute)."""
    start, end = pd.Timestamp(start).date(), pd.Timestamp(end).date()
    members = cx.load_members(lake)
    indexes = sorted(members["index"].unique().tolist()) if not members.empty else []
    symbols = sorted(set(members["symbol"]) | set(indexes))
    bars = cx.load_bars(lake, cx.lookback_start(start, LOOKBACK_SESSIONS), end, symbols=symbols)
    close = cx.bars_panel(bars)
    return {"close": close, "members": members, "weights": cx.load_weights(lake, end),
            "indexes": indexes, "close_ns": cx.session_closes_utc_ns(close.dates)}


DISPERSION = register(FactorSpec(
    name="dispersion",
    inputs=("bars", "index_members", "index_weights"),
    outputs=OUTPUTS,
    load=load,
    compute=compute,
    lookback_sessions=LOOKBACK_SESSIONS,
    requires=(("bars",), ("index_members",)),  # cap weights are optional (equal weights stand in)
    batch_months=0,  # price panels are small: a backfill is one load and one compute
    description="constituent/index realized-vol ratios and realized correlation per index",
))
