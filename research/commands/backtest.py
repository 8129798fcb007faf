"""`eventvol backtest NAME`: sweep a strategy's parameters on one vectorbt panel, optionally
walk-forward, and print metrics per parameter set (and, with --json, the per-event trades)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from eventvol.data_lake import Lake
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import LakeOpt, out, print_json


def _records(df) -> list[dict]:
    import pandas as pd

    d = df.copy()
    for c in d.columns:
        if pd.api.types.is_datetime64_any_dtype(d[c]):
            d[c] = d[c].dt.strftime("%Y-%m-%d")
    return [{k: (None if (isinstance(v, float) and v != v) else v) for k, v in r.items()}
            for r in d.astype(object).to_dict("records")]


def backtest(
    name: Annotated[str, typer.Argument(help="Strategy: earnings-straddle, macro-strangle, gamma-regime, momentum-crash, squeeze.")],
    lake: LakeOpt = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="key=v1,v2 (repeatable); values broadcast into a sweep.")] = None,
    split: Annotated[Optional[str], typer.Option("--split", help="walk-forward:train=N,test=M (events).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print metrics per parameter set and per-event trades as JSON.")] = False,
) -> None:
    """Backtest a strategy over a parameter sweep (one vectorbt simulation for all of it)."""
    from eventvol.research import api
    from eventvol.research.progress import status
    from eventvol.strategies.sweep import parse_param_options, parse_split

    grid = parse_param_options(param or [])
    wf = parse_split(split)
    lk = Lake.open(lake or default_lake_path())
    with status(f"eventvol backtest {name}") as step:
        step("simulating the sweep")
        res = api.run_backtest(lk, name, grid, split=split)
        wf_out = res.walk_forward
    metrics = res.metrics
    if as_json:
        doc = {"strategy": name, "parameter_sets": len(res.params), "metrics": _records(metrics),
               "trades": _records(res.trades)}
        if wf_out:
            doc["walk_forward"] = {"train": wf[0], "test": wf[1], "folds": _records(__import__("pandas").DataFrame(wf_out["folds"])),
                                   "in_sample": wf_out["in_sample"], "out_of_sample": wf_out["out_of_sample"]}
        print_json(doc)
        return
    n_events = res.trades["event_id"].nunique()
    out.print(f"eventvol backtest {name}: {len(res.params)} parameter sets x {n_events} events")
    varying = [c for c in res.params.columns if c != "param_id" and res.params[c].nunique() > 1]
    for r in metrics.itertuples(index=False):
        label = ", ".join(f"{c}={getattr(r, c)}" for c in varying) or "defaults"
        out.print(f"  [{r.param_id}] {label}: {r.trades} trades, hit {r.hit_rate:.1%}, mean ${r.mean_pnl:,.2f}, "
                  f"total ${r.total_pnl:,.2f}, Sharpe/event {r.sharpe_per_event:.2f}, max DD ${r.max_drawdown:,.2f}")
    if wf_out:
        for label in ("in_sample", "out_of_sample"):
            m = wf_out[label]
            out.print(f"  walk-forward {label.replace('_', '-')}: {m['trades']} trades, hit {m['hit_rate']:.1%}, "
                      f"mean ${m['mean_pnl']:,.2f}, total ${m['total_pnl']:,.2f}")


def register(app: typer.Typer) -> None:
    app.command()(backtest)
