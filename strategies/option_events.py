"""Option structures around events, swept over parameter sets on one vectorbt panel.

Point in time: an event is traded only if it was known (`known_at`) by the entry decision,
the structure is chosen from the entry session's chain available by the decision time (that
session's close plus the end-of-day snapshot lag), and filters read factor values of the
entry session (known at its snapshot). Nothing after the entry changes what is entered.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eventvol.data_lake import EventvolError, Lake, NoDataError
from eventvol.strategies import loaders
from eventvol.strategies.calendar import event_sessions
from eventvol.strategies.engine import simulate_panel
from eventvol.strategies.marks import half_spread_fraction, mark_legs, schedule, structure_marks
from eventvol.strategies.metrics import daily_pnl, metrics_by_param
from eventvol.strategies.structures import STRUCTURES, select_structure

SNAPSHOT_LAG = pd.Timedelta(minutes=15)  # EOD snapshot availability after the close
GEX_FACTOR, VEX_FACTOR = "net_gex_per_1pct", "net_vex_per_volpt"
# the trades' columns: the factor values of the entry session, in the factors' units
GEX_COLUMN, VEX_COLUMN = GEX_FACTOR + "_at_entry", VEX_FACTOR + "_at_entry"
REGIME_FILTERS = ("none", "negative", "positive")
MOVE_FILTERS = ("none", "cheap", "rich")


class MissingFactorError(NoDataError):
    """A strategy needs a factor the lake has not materialized."""


@dataclass(frozen=True)
class OptionEventParams:
    """One parameter set. Money in dollars; `quantity` in structures; `expiry_days` 0 means
    the first expiry after the event; `hold` sessions after the reaction session;
    `move_filter` cheap/rich trades when implied move / historical move < / > `move_ratio`."""

    structure: str = "straddle"
    side: str = "long"
    delta: float = 0.25
    wing_delta: float = 0.10
    expiry_days: int = 0
    far_days: int = 28
    hold: int = 0
    fill: str = "worst"
    fill_fraction: float = 0.5
    fee_per_contract: float = 0.65
    quantity: int = 1
    gex_filter: str = "none"
    vex_filter: str = "none"
    move_filter: str = "none"
    move_ratio: float = 1.0

    def __post_init__(self):
        checks = [("structure", STRUCTURES), ("side", ("long", "short")), ("gex_filter", REGIME_FILTERS),
                  ("vex_filter", REGIME_FILTERS), ("move_filter", MOVE_FILTERS)]
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        half_spread_fraction(self.fill, self.fill_fraction)
        if self.quantity <= 0 or self.hold < 0 or self.expiry_days < 0:
            raise ValueError("quantity must be positive and hold, expiry_days non-negative")

    @property
    def structure_key(self) -> tuple:
        """The fields that choose legs and the holding window (one leg/quote load each)."""
        return (self.structure, self.delta, self.wing_delta, self.expiry_days, self.far_days, self.hold)


@dataclass
class SweepResult:
    params: pd.DataFrame  # one row per param_id
    trades: pd.DataFrame  # one row per (param_id, event), traded or not
    metrics: pd.DataFrame  # one row per param_id

    def daily_pnl(self) -> pd.DataFrame:
        """Realized P&L in dollars per session (rows) and param_id (columns); see
        `strategies.metrics.daily_pnl`. (The vectorbt portfolio of the event panel is not
        exposed: its rows are sessions relative to each event, not dates, so its stats()
        would report a meaningless period and a start value of the engine's ample cash.)"""
        return daily_pnl(self.trades)


def tradable_events(lake: Lake, kinds: tuple[str, ...], *, underlying: str | None = None,
                    symbols: list[str] | None = None, include_unknown: bool = False) -> pd.DataFrame:
    """Events of `kinds` with their sessions and the underlying traded (the event's symbol,
    or `underlying` for market-wide events), known before their entry decision."""
    raw = loaders.load_events(lake, kinds)
    if raw.empty:  # nothing to trade: say so (a lake of chains or prices only has no events)
        raise NoDataError(f"the lake has no events of kind {', '.join(kinds)}")
    ev = event_sessions(raw, include_unknown=include_unknown)
    ev = ev[ev["reaction_session"].notna()]
    ev["underlying"] = ev["symbol"].where(ev["symbol"].notna(), underlying) if underlying else ev["symbol"]
    if symbols:
        ev = ev[ev["underlying"].isin(symbols)]
    ev = ev[ev["underlying"].notna() & (ev["known_at"] <= ev["entry_time"])]
    ev = ev.assign(entry_session=pd.to_datetime(ev["entry_session"]), reaction_session=pd.to_datetime(ev["reaction_session"]))
    return ev.sort_values(["entry_session", "event_id"], kind="mergesort").reset_index(drop=True)


def factor_or_nan(lake: Lake, factor: str, entity: pd.Series, trade_date: pd.Series) -> np.ndarray:
    """Factor values per row (NaN where not computed, or when the factor does not exist)."""
    if factor not in loaders.factor_names(lake):
        return np.full(len(entity), np.nan)
    return loaders.factor_at(lake, factor, pd.DataFrame({"entity": entity.to_numpy(), "trade_date": trade_date.to_numpy()})).to_numpy()


def require_factors(lake: Lake, names, strategy: str) -> None:
    """One-sentence error naming the first factor `strategy` needs that the lake lacks."""
    have = loaders.factor_names(lake)
    for name in names:
        if name not in have:
            raise MissingFactorError(f"strategy {strategy} needs factor {name!r}, which the lake has not "
                                     f"materialized (run `eventvol refresh` for it first)")


def historical_move(ev: pd.DataFrame, bars: pd.DataFrame) -> np.ndarray:
    """Mean absolute close-to-close return of the underlying over its earlier events of the
    same kind whose reaction session closed before this event's entry (NaN if none)."""
    b = bars.assign(trade_date=pd.to_datetime(bars["trade_date"])).sort_values(["symbol", "trade_date"])
    b["ret"] = b.groupby("symbol")["close"].pct_change()
    r = ev[["underlying", "reaction_session"]].merge(
        b.rename(columns={"symbol": "underlying", "trade_date": "reaction_session"})[["underlying", "reaction_session", "ret"]],
        how="left", on=["underlying", "reaction_session"])["ret"].abs().to_numpy()
    out = np.full(len(ev), np.nan)
    for i, (u, k, entry) in enumerate(zip(ev["underlying"], ev["kind"], ev["entry_session"])):
        prior = (ev["underlying"] == u).to_numpy() & (ev["kind"] == k).to_numpy() & (ev["reaction_session"] <= entry).to_numpy()
        vals = r[prior & np.isfinite(r)]
        out[i] = vals.mean() if len(vals) else np.nan
    return out


def _skip_reason(p: OptionEventParams, info: dict) -> np.ndarray:
    """Why each event is not traded under `p` ('' = traded); `info` maps names to arrays."""
    n = len(info["entry_mid"])
    reason = np.full(n, "", dtype=object)

    def mask(cond, text):
        reason[(reason == "") & np.asarray(cond, dtype=bool)] = text

    has = np.asarray(info["has_structure"], dtype=bool)
    entry, exit_ = np.asarray(info["entry_mid"], float), np.asarray(info["exit_mid"], float)
    mask(np.isnan(entry) & has, "no entry quote")
    mask(~has, f"no {p.structure} listed for the event")
    mask(np.isnan(exit_) & ~np.isnan(entry), "no exit price")
    # a fill needs a quote of its own session: the last quote carried from an earlier session
    # (a pre-event quote, for an earnings exit) is a mark, never a price an order could get
    mask(np.asarray(info["exit_stale"], dtype=bool), "no exit quote on the exit session")
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, col, factor in (("gex_filter", GEX_COLUMN, "net GEX"), ("vex_filter", VEX_COLUMN, "net VEX")):
            want, x = getattr(p, name), np.asarray(info[col], float)
            if want == "negative":
                mask(~(x < 0), f"{name}: {factor} not negative at entry")
            elif want == "positive":
                mask(~(x > 0), f"{name}: {factor} not positive at entry")
        ratio = np.asarray(info["implied_move"], float) / np.asarray(info["hist_move"], float)
        if p.move_filter == "cheap":
            mask(~(ratio < p.move_ratio), "move_filter: implied move not below the historical move")
        elif p.move_filter == "rich":
            mask(~(ratio > p.move_ratio), "move_filter: implied move not above the historical move")
    return reason


def _group(lake: Lake, ev: pd.DataFrame, p: OptionEventParams):
    """Legs, per-row structure marks and per-event entry info for one structure key."""
    decision = pd.DataFrame({"event_id": ev["event_id"], "underlying": ev["underlying"],
                             "trade_date": ev["entry_session"], "decision_ts": ev["entry_time"] + SNAPSHOT_LAG})
    chains = loaders.chains_at(lake, decision)
    legs = select_structure(chains, ev, p.structure, delta=p.delta, wing_delta=p.wing_delta,
                            expiry_days=p.expiry_days or None, far_days=p.far_days)
    sched = schedule(ev, p.hold)
    span = sched.groupby("event_id")["session"].agg(["min", "max"]).rename(columns={"min": "start", "max": "end"})
    lq = legs.merge(span, left_on="event_id", right_index=True)
    quotes = loaders.leg_quotes_between(lake, lq) if not lq.empty else pd.DataFrame(
        columns=["event_id", "leg", "trade_date", "bid", "ask", "multiplier"])
    settle = loaders.bars_of(lake, ev["underlying"].unique())
    marked = mark_legs(legs, sched, quotes, settle) if not legs.empty else None
    sm = structure_marks(marked) if marked is not None else pd.DataFrame(
        columns=["event_id", "row", "session", "mid", "half_spread", "contracts", "stale", "missing", "settled"])
    return legs, sched, sm, marked


def _group_arrays(ev: pd.DataFrame, legs: pd.DataFrame, sched: pd.DataFrame, sm: pd.DataFrame) -> dict:
    """Per-event arrays (aligned to `ev`) of one structure key: marks, half-spreads, entry and
    exit rows, and the descriptive columns of the trades."""
    ids = ev["event_id"]
    n_rows = int(sched.groupby("event_id")["row"].max().max()) + 1 if len(sched) else 1
    mid = sm.pivot(index="row", columns="event_id", values="mid").reindex(index=range(n_rows), columns=ids).to_numpy()
    hs = sm.pivot(index="row", columns="event_id", values="half_spread").reindex(index=range(n_rows), columns=ids).to_numpy()
    stale = (sm.pivot(index="row", columns="event_id", values="stale").reindex(index=range(n_rows), columns=ids)
             .fillna(False).to_numpy(bool))
    exit_row = sched.groupby("event_id")["row"].max().reindex(ids).fillna(0).astype(int).to_numpy()
    cols = np.arange(len(ev))
    first = legs.drop_duplicates("event_id").set_index("event_id").reindex(ids)
    info = {
        "exit_session": sched.groupby("event_id")["session"].max().reindex(ids).to_numpy(),
        "has_structure": first["root"].notna().to_numpy(), "expiration": first["expiration"].to_numpy(),
        "strikes": legs.groupby("event_id")["strike"].agg(lambda s: "/".join(f"{x:g}" for x in s)).reindex(ids).to_numpy(),
        "entry_spot": first["entry_spot"].to_numpy(), "implied_move": first["implied_move"].to_numpy(),
        "entry_mid": mid[0], "exit_mid": mid[exit_row, cols],
        "stale_quotes": sm.groupby("event_id")["stale"].any().reindex(ids, fill_value=False).to_numpy(),
        "exit_stale": stale[exit_row, cols],
    }
    return {"mid": mid, "m0": mid[0], "h0": hs[0], "mx": mid[exit_row, cols], "hx": hs[exit_row, cols],
            "exit_row": exit_row, "info": info,
            "contracts": sm[sm["row"] == 0].set_index("event_id")["contracts"].reindex(ids).fillna(0).to_numpy()}


def run_sweep(lake: Lake, ev: pd.DataFrame, param_sets: list[OptionEventParams]) -> SweepResult:
    """Backtest every (event, parameter set) pair of `ev` (from `tradable_events`) in one
    vectorbt simulation. P&L per pair in dollars, fees included."""
    if ev.empty:
        raise NoDataError("no events with known timing, known before their entry, to trade")
    if not param_sets:
        raise EventvolError("the sweep has no parameter sets")
    bars = loaders.bars_of(lake, ev["underlying"].unique())
    base = ev[["event_id", "kind", "underlying", "timing", "entry_session", "reaction_session"]].copy()
    base[GEX_COLUMN] = factor_or_nan(lake, GEX_FACTOR, ev["underlying"], ev["entry_session"])
    base[VEX_COLUMN] = factor_or_nan(lake, VEX_FACTOR, ev["underlying"], ev["entry_session"])
    if any(p.vex_filter != "none" for p in param_sets):
        require_factors(lake, [VEX_FACTOR], "with vex_filter")
    base["hist_move"] = historical_move(ev, bars)
    groups: dict[tuple, dict] = {}
    marks, exit_rows, per_param = [], [], []
    factors = {c: base[c].to_numpy(float) for c in (GEX_COLUMN, VEX_COLUMN, "hist_move")}
    for pid, p in enumerate(param_sets):
        if p.structure_key not in groups:  # legs, quotes and marks are shared by all sets of a key
            groups[p.structure_key] = _group_arrays(ev, *_group(lake, ev, p)[:3])
        g = groups[p.structure_key]
        k = half_spread_fraction(p.fill, p.fill_fraction)
        sign = 1.0 if p.side == "long" else -1.0
        reason = _skip_reason(p, {**g["info"], **factors})
        traded = reason == ""
        contracts = g["contracts"] * p.quantity
        per_param.append({
            "param_id": np.full(len(ev), pid), "structure": np.full(len(ev), p.structure, dtype=object),
            "side": np.full(len(ev), p.side, dtype=object), **g["info"],
            # opening long buys (pays up), opening short sells (receives less); closing reverses
            "entry_fill": g["m0"] + sign * k * g["h0"], "exit_fill": g["mx"] - sign * k * g["hx"],
            "contracts": contracts, "skip_reason": reason, "traded": traded,
            "units": np.where(traded, sign * p.quantity, 0.0),
            "fees": np.where(traded, 2 * p.fee_per_contract * contracts, 0.0),
        })
        marks.append(g["mid"])
        exit_rows.append(g["exit_row"])
    n_rows = max(m.shape[0] for m in marks)
    mark = np.hstack([np.vstack([m, np.full((n_rows - m.shape[0], m.shape[1]), np.nan)]) for m in marks])
    # one frame for the whole sweep (building it per parameter set dominates large sweeps)
    cols = {c: np.concatenate([d[c] for d in per_param]) for c in per_param[0]}
    t = pd.concat([base.iloc[np.tile(np.arange(len(ev)), len(param_sets))].reset_index(drop=True),
                   pd.DataFrame(cols)], axis=1)
    t["exit_session"] = pd.to_datetime(t["exit_session"])
    t["expiration"] = pd.to_datetime(t["expiration"])
    exit_rows = np.concatenate(exit_rows)
    filled = lambda a: np.nan_to_num(a.to_numpy(float), nan=0.0)  # untraded columns only
    res = simulate_panel(mark, filled(t["entry_fill"]), filled(t["exit_fill"]), exit_rows, t["units"].to_numpy(float),
                         (t["fees"] / 2).to_numpy(float),
                         columns=pd.MultiIndex.from_arrays([t["param_id"], t["event_id"]], names=["param_id", "event_id"]))
    t["pnl"] = np.where(t["traded"], res.pnl.to_numpy(), np.nan)
    t = t.drop(columns=["has_structure", "exit_stale"])
    params = pd.DataFrame([dataclasses.asdict(p) for p in param_sets]).rename_axis("param_id").reset_index()
    return SweepResult(params=params, trades=t, metrics=metrics_by_param(t))
