"""Strategies by CLI name: parameter dataclass, defaults and how to run a sweep of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from eventvol.data_lake import Lake, NoDataError
from eventvol.strategies.option_events import OptionEventParams, SweepResult, run_sweep, tradable_events
from eventvol.strategies.sweep import ParamError, param_grid, values_of
from eventvol.strategies.timeseries import (GammaRegimeParams, MomentumCrashParams, SqueezeParams, gamma_regime,
                                   momentum_crash, squeeze)

MACRO_KINDS = ("FOMC", "CPI", "NFP")


@dataclass(frozen=True)
class Strategy:
    name: str
    summary: str
    params: type
    defaults: dict
    run: Callable[[Lake, list, dict], SweepResult]  # (lake, param sets, context) -> result


def index_symbol(lake: Lake, given: str | None = None) -> str:
    """The index to trade: `given`, else the only index in `index_members`."""
    if given:
        return given
    names = sorted(set(lake.df("SELECT DISTINCT \"index\" FROM index_members")["index"].astype(str)))
    if len(names) != 1:
        raise NoDataError("name the index to trade with --underlying (the lake holds "
                          f"{len(names)} indexes: {', '.join(names) or 'none'})")
    return names[0]


def _earnings(lake, ps, ctx):
    return run_sweep(lake, tradable_events(lake, ("earnings",), symbols=ctx.get("symbols")), ps)


def _macro(lake, ps, ctx):
    kinds = tuple(ctx.get("kinds") or MACRO_KINDS)
    return run_sweep(lake, tradable_events(lake, kinds, underlying=index_symbol(lake, ctx.get("underlying"))), ps)


STRATEGIES: dict[str, Strategy] = {s.name: s for s in [
    Strategy("earnings-straddle", "long or short ATM straddle from the pre-event close to the reaction close, "
             "filtered by GEX regime and implied vs historical move", OptionEventParams,
             {"structure": "straddle", "side": "long"}, _earnings),
    Strategy("macro-strangle", "short 25-delta index strangle into FOMC/CPI/NFP for the vol crush, filtered by "
             "net GEX and VEX", OptionEventParams, {"structure": "strangle", "side": "short", "delta": 0.25}, _macro),
    Strategy("gamma-regime", "index next-session trend vs reversal by dealer gamma regime", GammaRegimeParams, {},
             lambda lake, ps, ctx: gamma_regime(lake, index_symbol(lake, ctx.get("underlying")), ps)),
    Strategy("momentum-crash", "WML de-risked by crowding and dispersion, against plain and vol-scaled momentum",
             MomentumCrashParams, {}, lambda lake, ps, ctx: momentum_crash(lake, index_symbol(lake, ctx.get("underlying")), ps)),
    Strategy("squeeze", "long stocks with high short interest and call gamma near spot", SqueezeParams, {},
             lambda lake, ps, ctx: squeeze(lake, ctx.get("symbols"), ps)),
]}

CONTEXT_KEYS = ("underlying", "symbols", "kinds")  # one value (or list) for the whole run, not swept


def run_strategy(lake: Lake, name: str, grid: dict[str, list[str]]) -> SweepResult:
    """Run strategy `name` over the cartesian product of `grid` (CLI strings allowed); a grid
    value that is not a list is one value ({"side": "long"} is one parameter set)."""
    if name not in STRATEGIES:
        raise ParamError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    s = STRATEGIES[name]
    grid = dict(grid)
    ctx = {}
    for key in CONTEXT_KEYS:
        if key in grid:
            vals = values_of(grid.pop(key))
            ctx[key] = vals[0] if key == "underlying" else list(vals)
    return s.run(lake, param_grid(s.params, grid, s.defaults, strategy=name), ctx)
