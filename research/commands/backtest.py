"""`eventvol backtest NAME`: sweep a strategy's parameters on one vectorbt panel, optionally
walk-forward, and print metrics per parameter set (and, with --json, the per-event trades)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from eventvol.data_lake import Lake
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import LakeOpt, export_frames, out, print_json


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
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write FILE_trades.csv and FILE_metrics.csv (FILE.csv names the pair).")] = None,
    parquet: Annotated[Optional[Path], typer.Option("--parquet", help="Write FILE_trades.parquet and FILE_metrics.parquet.")] = None,
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
    written = export_frames({"trades": res.trades, "metrics": metrics}, csv, parquet)
    if as_json:
        doc = {"strategy": name, "parameter_sets": len(res.params), "metrics": _records(metrics),
               "trades": _records(res.trades)}
        if wf_out:
            doc["walk_forward"] = {"train": wf[0], "test": wf[1], "folds": _records(__import__("pandas").DataFrame(wf_out["folds"])),
                                   "in_sample": wf_out["in_sample"], "out_of_sample": wf_out["out_of_sample"]}
        print_json(doc)
        return
    for line in metrics_lines(name, res, wf_out):
        out.print(line)
    for p in written:
        out.print(f"wrote {p}")


def metrics_lines(name: str, res, wf_out: dict | None) -> list[str]:
    """The terminal rendering of a sweep: a title line, then a table with a header, one row
    per parameter set (varying parameters, trades, hit rate, P&L in dollars as -$1,234.56,
    Sharpe, max drawdown), then the walk-forward rows."""
    from eventvol.research import formatting as F

    n_events = res.trades["event_id"].nunique()
    lines = [f"eventvol backtest {name}: {len(res.params)} parameter set(s) x {n_events:,} events"]
    varying = [c for c in res.params.columns if c != "param_id" and res.params[c].nunique() > 1]
    head = ["set", ", ".join(varying) or "parameters", "trades", "hit rate", "mean P&L", "total P&L",
            "Sharpe/trade", "max drawdown"]
    rows = []
    for r in res.metrics.itertuples(index=False):
        label = ", ".join(f"{c}={getattr(r, c)}" for c in varying) or "defaults"
        rows.append([str(r.param_id), label, f"{int(r.trades):,}", F.pct(r.hit_rate), F.money(r.mean_pnl),
                     F.money(r.total_pnl), F.number(r.sharpe_per_event, 3), F.money(-abs(r.max_drawdown))])
    if wf_out:
        for label in ("in_sample", "out_of_sample"):
            m = wf_out[label]
            rows.append(["wf", f"walk-forward {label.replace('_', '-')}", f"{int(m['trades']):,}", F.pct(m["hit_rate"]),
                         F.money(m["mean_pnl"]), F.money(m["total_pnl"]), "", ""])
    return lines + F.table(head, rows)


def register(app: typer.Typer) -> None:
    app.command()(backtest)
