"""Session-by-session strategies on prices and factors: every (entity, session) where a signal
is formed is an event whose position is opened at that session's close and closed `hold`
sessions later, all simulated on one vectorbt panel like the option events.

- gamma-regime: the index's next session, trend (follow today's return) or reversal (fade it)
  chosen by the sign of net GEX at today's close.
- momentum-crash: the daily winners-minus-losers return (`wml_return`, pipelines.crosssection)
  held plain, vol-scaled (target vol / wml_vol_126d) or de-risked when crowding (comomentum's
  expanding percentile) and dispersion (dispersion_ratio_21d_pct3y) are both high.
- squeeze: long stocks with high short interest / float and a high share of call gamma near
  spot, for `hold` sessions.
Signals read factor values of the entry session only (known at its end-of-day snapshot).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake, NoDataError
from eventvol.strategies import loaders
from eventvol.strategies.engine import simulate_panel
from eventvol.strategies.metrics import metrics_by_param
from eventvol.strategies.option_events import SweepResult, factor_or_nan, require_factors

ACTIONS = ("trend", "reversal", "flat")


@dataclass(frozen=True)
class GammaRegimeParams:
    """negative/positive: what to do the next session when net GEX per 1% (dollars) is below /
    at or above `threshold`; quantity in index units; cost_bps per order on entry notional."""

    negative: str = "trend"
    positive: str = "reversal"
    threshold: float = 0.0
    quantity: float = 1.0
    cost_bps: float = 0.0

    def __post_init__(self):
        for name in ("negative", "positive"):
            if getattr(self, name) not in ACTIONS:
                raise ValueError(f"{name} must be one of {', '.join(ACTIONS)}, not {getattr(self, name)!r}")


@dataclass(frozen=True)
class MomentumCrashParams:
    """variant plain|vol_scaled|derisked; notional in dollars; target_vol annualized; de-risking
    multiplies the position by `derisk_weight` when comomentum's expanding percentile >=
    crowd_pct and dispersion_ratio_21d_pct3y >= disp_pct; max_leverage caps vol scaling."""

    variant: str = "derisked"
    target_vol: float = 0.15
    crowd_pct: float = 0.8
    disp_pct: float = 0.8
    derisk_weight: float = 0.0
    max_leverage: float = 2.0
    notional: float = 1e6

    def __post_init__(self):
        if self.variant not in ("plain", "vol_scaled", "derisked"):
            raise ValueError(f"variant must be one of plain, vol_scaled, derisked, not {self.variant!r}")


@dataclass(frozen=True)
class SqueezeParams:
    """Long `notional` dollars of a stock for `hold` sessions when short_interest_float >=
    si_min and call_gamma_near_spot_share >= gamma_share_min at the entry close."""

    si_min: float = 0.15
    gamma_share_min: float = 0.5
    hold: int = 5
    notional: float = 1e5
    cost_bps: float = 5.0

    def __post_init__(self):
        if self.hold < 1:
            raise ValueError("hold must be at least 1 session")


def _closes(lake: Lake, symbols) -> pd.DataFrame:
    b = loaders.bars_of(lake, symbols)
    if b.empty:
        raise NoDataError(f"the lake holds no bars for {', '.join(sorted(map(str, symbols)))}")
    return b.assign(trade_date=pd.to_datetime(b["trade_date"])).pivot(index="trade_date", columns="symbol", values="close").sort_index()


def _panel(prices: np.ndarray, starts: np.ndarray, cols: np.ndarray, hold: int) -> tuple[np.ndarray, np.ndarray]:
    """Marks (hold+1 rows x events) of price column `cols` from row `starts`, and exit rows."""
    n = len(prices)
    idx = starts[None, :] + np.arange(hold + 1)[:, None]
    ok = idx < n
    mark = np.where(ok, prices[np.minimum(idx, n - 1), cols[None, :]], np.nan)
    exit_row = ok.sum(axis=0) - 1
    return mark, exit_row


def _simulate(blocks: list[pd.DataFrame], marks: list[np.ndarray], exit_rows: list[np.ndarray], param_sets) -> SweepResult:
    rows = max(m.shape[0] for m in marks)
    mark = np.hstack([np.vstack([m, np.full((rows - m.shape[0], m.shape[1]), np.nan)]) for m in marks])
    t = pd.concat(blocks, ignore_index=True)
    exit_row = np.concatenate(exit_rows)
    cols = np.arange(mark.shape[1])
    entry, exit_ = mark[0], mark[exit_row, cols]
    res = simulate_panel(mark, np.nan_to_num(entry, nan=1.0), np.nan_to_num(exit_, nan=1.0), exit_row,
                         t["units"].to_numpy(float), t["fees"].to_numpy(float) / 2,
                         columns=pd.MultiIndex.from_arrays([t["param_id"], t["event_id"]], names=["param_id", "event_id"]))
    t["entry_fill"], t["exit_fill"] = entry, exit_
    t["pnl"] = np.where(t["traded"], res.pnl.to_numpy(), np.nan)
    params = pd.DataFrame([dataclasses.asdict(p) for p in param_sets]).rename_axis("param_id").reset_index()
    return SweepResult(params=params, trades=t, metrics=metrics_by_param(t))


def _daily_events(dates: pd.DatetimeIndex, entity: str, hold: int) -> pd.DataFrame:
    n = len(dates)
    exit_idx = np.minimum(np.arange(n) + hold, n - 1)
    return pd.DataFrame({"event_id": [f"{entity}-{d:%Y%m%d}" for d in dates], "underlying": entity,
                         "entry_session": dates, "exit_session": dates[exit_idx]})


def gamma_regime(lake: Lake, index: str, param_sets: list[GammaRegimeParams]) -> SweepResult:
    """Every index session with a GEX value and a next session is one event."""
    close = _closes(lake, [index])[index].dropna()
    dates = close.index[1:-1]  # needs yesterday's close for today's return and a next session
    ret = (close / close.shift(1) - 1).reindex(dates).to_numpy()
    gex = factor_or_nan(lake, "net_gex_per_1pct", pd.Series(index, index=range(len(dates))), pd.Series(dates))
    if not np.isfinite(gex).any():
        require_factors(lake, ["net_gex_per_1pct"], "gamma-regime")
        raise NoDataError(f"the lake holds no net_gex_per_1pct values for {index}")
    prices = close.to_numpy()[:, None]
    starts = np.arange(1, len(close) - 1)
    mark, exit_row = _panel(prices, starts, np.zeros(len(starts), int), 1)
    base = _daily_events(dates, index, 1).assign(net_gex=gex, return_today=ret)
    blocks, marks, exits = [], [], []
    for pid, p in enumerate(param_sets):
        regime = np.where(gex < p.threshold, "negative", "positive")
        action = np.where(regime == "negative", p.negative, p.positive)
        direction = np.sign(ret) * np.where(action == "trend", 1.0, np.where(action == "reversal", -1.0, 0.0))
        traded = np.isfinite(gex) & np.isfinite(ret) & (direction != 0)
        units = np.where(traded, direction * p.quantity, 0.0)
        fees = np.where(traded, 2 * p.cost_bps / 1e4 * np.abs(units) * mark[0], 0.0)
        blocks.append(base.assign(param_id=pid, regime=regime, action=action, units=units, fees=fees, traded=traded,
                                  skip_reason=np.where(traded, "", np.where(np.isfinite(gex), "flat", "no net GEX at entry"))))
        marks.append(mark)
        exits.append(exit_row)
    return _simulate(blocks, marks, exits, param_sets)


def _expanding_pct(x: np.ndarray) -> np.ndarray:
    """Fraction of the values so far (this one included) that are <= the current value."""
    out = np.full(len(x), np.nan)
    seen: list[float] = []
    for i, v in enumerate(x):
        if np.isfinite(v):
            seen.append(v)
            out[i] = np.mean(np.asarray(seen) <= v)
    return out


def momentum_crash(lake: Lake, index: str, param_sets: list[MomentumCrashParams]) -> SweepResult:
    """Each session's WML position for the next session is one event."""
    needs = ["wml_return", "wml_vol_126d"]
    if any(p.variant == "derisked" for p in param_sets):
        needs += ["comomentum", "dispersion_ratio_21d_pct3y"]
    require_factors(lake, needs, "momentum-crash")
    f = lake.df("SELECT factor, trade_date, value FROM factors WHERE entity = ? AND factor IN ("
                + ", ".join("?" for _ in needs) + ")", [index, *needs])
    if f.empty:
        raise NoDataError(f"the lake holds no momentum factors for index {index}")
    w = f.assign(trade_date=pd.to_datetime(f["trade_date"])).pivot(index="trade_date", columns="factor", values="value").sort_index()
    w = w.reindex(columns=needs)
    ret = w["wml_return"].fillna(0.0).to_numpy()
    level = 100.0 * np.cumprod(1.0 + ret)  # a WML "price": positions earn the next session's wml_return
    dates = w.index[:-1]
    mark, exit_row = _panel(level[:, None], np.arange(len(dates)), np.zeros(len(dates), int), 1)
    vol = w["wml_vol_126d"].to_numpy()[:-1]
    crowd = _expanding_pct(w["comomentum"].to_numpy())[:-1] if "comomentum" in w else np.full(len(dates), np.nan)
    disp = w["dispersion_ratio_21d_pct3y"].to_numpy()[:-1] if "dispersion_ratio_21d_pct3y" in w else np.full(len(dates), np.nan)
    base = _daily_events(pd.DatetimeIndex(dates), index, 1).assign(wml_vol=vol, crowding_pct=crowd, dispersion_pct=disp)
    blocks, marks, exits = [], [], []
    for pid, p in enumerate(param_sets):
        weight = np.ones(len(dates))
        if p.variant in ("vol_scaled", "derisked"):
            weight = np.minimum(p.target_vol / vol, p.max_leverage)
        crowded = (crowd >= p.crowd_pct) & (disp >= p.disp_pct)
        if p.variant == "derisked":
            weight = np.where(crowded, weight * p.derisk_weight, weight)
        traded = np.isfinite(weight) & np.isfinite(mark[1])
        units = np.where(traded, p.notional * np.nan_to_num(weight) / mark[0], 0.0)
        blocks.append(base.assign(param_id=pid, weight=weight, derisked=crowded & (p.variant == "derisked"),
                                  units=units, fees=0.0, traded=traded,
                                  skip_reason=np.where(traded, "", "no WML vol at entry")))
        marks.append(mark)
        exits.append(exit_row)
    return _simulate(blocks, marks, exits, param_sets)


def squeeze(lake: Lake, symbols: list[str] | None, param_sets: list[SqueezeParams]) -> SweepResult:
    """Each (stock, session) meeting the signal at the close is one long event."""
    require_factors(lake, ["short_interest_float", "call_gamma_near_spot_share"], "squeeze")
    f = lake.df("SELECT factor, trade_date, entity, value FROM factors WHERE factor IN "
                "('short_interest_float', 'call_gamma_near_spot_share')")
    if symbols:
        f = f[f["entity"].isin(symbols)]
    sig = f.assign(trade_date=pd.to_datetime(f["trade_date"])).pivot_table(
        index=["entity", "trade_date"], columns="factor", values="value").reset_index()
    close = _closes(lake, sig["entity"].unique())
    col_of = {s: i for i, s in enumerate(close.columns)}
    prices = close.to_numpy()
    blocks, marks, exits = [], [], []
    for pid, p in enumerate(param_sets):
        s = sig[(sig["short_interest_float"] >= p.si_min) & (sig["call_gamma_near_spot_share"] >= p.gamma_share_min)]
        s = s[s["trade_date"].isin(close.index)]
        starts = close.index.get_indexer(s["trade_date"])
        cols = s["entity"].map(col_of).to_numpy(int)
        mark, exit_row = _panel(prices, starts, cols, p.hold)
        units = np.where(np.isfinite(mark[0]), p.notional / mark[0], 0.0)
        ev = pd.DataFrame({"event_id": [f"{e}-{d:%Y%m%d}" for e, d in zip(s["entity"], s["trade_date"])],
                           "underlying": s["entity"].to_numpy(), "entry_session": s["trade_date"].to_numpy(),
                           "exit_session": close.index[np.minimum(starts + p.hold, len(close) - 1)],
                           "short_interest_float": s["short_interest_float"].to_numpy(),
                           "call_gamma_share": s["call_gamma_near_spot_share"].to_numpy()})
        blocks.append(ev.assign(param_id=pid, units=units, fees=2 * p.cost_bps / 1e4 * p.notional,
                                traded=units != 0, skip_reason=""))
        marks.append(mark if mark.shape[1] else np.full((p.hold + 1, 0), np.nan))
        exits.append(exit_row)
    if sum(len(b) for b in blocks) == 0:
        raise NoDataError("no stock met the squeeze signal for any parameter set")
    return _simulate(blocks, marks, exits, param_sets)
