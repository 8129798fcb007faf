"""`eventvol study` (hypotheses, momentum regimes) and `eventvol report` (PM report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from eventvol.data_lake import Lake, NoDataError
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import LakeOpt, out, print_json

MOMENTUM = "momentum-regimes"


def _fmt(v, pct=False) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "n/a"
    return f"{v:.2%}" if pct else f"{v:.4g}"


def _print_result(r: dict) -> None:
    out.print(f"{r['name']}: {r['title']}")
    out.print(f"  status: {r['status']}")
    if not r.get("evaluable"):
        return
    p = r["primary"]
    out.print(f"  {p['name']}: estimate {_fmt(p['estimate'])} [{_fmt(p['ci_low'])}, {_fmt(p['ci_high'])}], "
              f"p = {_fmt(p['p_value'])}" + (f", BH-adjusted p = {_fmt(r['p_bh'])}" if r.get("p_bh") is not None else ""))
    out.print(f"  held (p < 5% with the expected {r['expected']} sign): {'yes' if r['held'] else 'no'}")
    if "mechanism" in r:
        m = r["mechanism"]
        truth = f"; truth {m['truth']:.4g}, covered: {m['truth_covered']}" if "truth" in m else ""
        out.print(f"  {m['name']}: {m['estimate']:.4g} [{m['ci_low']:.4g}, {m['ci_high']:.4g}]{truth}")


def study(
    name: Annotated[Optional[str], typer.Argument(help="Hypothesis name (H1..H6) or 'momentum-regimes'.")] = None,
    lake: LakeOpt = None,
    run_all_: Annotated[bool, typer.Option("--all", help="Run every hypothesis; adds Benjamini-Hochberg adjusted p-values.")] = False,
    events: Annotated[Optional[Path], typer.Option("--events", help="CSV event list (date,symbol[,name]) for H6.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Run a declared hypothesis (or all of them) or the Daniel-Moskowitz momentum regimes."""
    from eventvol.research import api
    from eventvol.research.progress import status
    from eventvol.research.studies.registry import load_hypotheses, run_all

    lk = Lake.open(lake or default_lake_path())
    if name == MOMENTUM:
        from eventvol.research.studies.regimes import factor_returns_wide, momentum_regimes

        wide = factor_returns_wide(lk)
        if wide.empty or not {"MktRF", "RF", "Mom"} <= set(wide.columns):
            raise NoDataError("the lake has no monthly MktRF, RF and Mom rows in factor_returns; "
                              "load them with `eventvol ingest ff-monthly FILE`")
        res = momentum_regimes(wide)
        if as_json:
            print_json(res)
            return
        for k, v in res.items():
            if not isinstance(v, dict):
                out.print(f"{k:>24}: {v:.4%}" if isinstance(v, float) else f"{k:>24}: {v}")
        c = res["dm_regression"]["coefficients"]["bear_x_up_x_mkt"]
        out.print(f"{'DM bear x up x mkt':>24}: {c['coef']:.3f} (HAC t = {c['t']:.2f})")
        return
    specs = load_hypotheses()
    if run_all_:
        with status("eventvol study --all") as step:
            results = run_all(lk, specs, events_file=events, progress=step)
        if as_json:
            print_json({"hypotheses": results})
        else:
            for r in results:
                _print_result(r)
        return
    if name is None:
        raise NoDataError(f"name a hypothesis ({', '.join(specs)}, {MOMENTUM}) or pass --all")
    if name not in specs:
        raise NoDataError(f"unknown study {name!r}; choose one of {', '.join(specs)}, {MOMENTUM}")
    r = api.study(lk, name, events=events).to_dict()
    if as_json:
        print_json(r)
    else:
        _print_result(r)


def report(
    lake: LakeOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.html and report.pdf.")] = Path("out"),
    studies: Annotated[Optional[list[str]], typer.Option("--studies", help="Hypotheses to include (repeatable; default all).")] = None,
    events: Annotated[Optional[Path], typer.Option("--events", help="CSV event list for H6.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also write report.pdf (WeasyPrint).")] = True,
    backtest: Annotated[Optional[list[str]], typer.Option("--backtest", help="Add a tear sheet of this catalog strategy (repeatable), e.g. earnings-straddle.")] = None,
    param: Annotated[Optional[list[str]], typer.Option("--param", help="k=v for every --backtest, or NAME:k=v for one (repeatable; one value each).")] = None,
) -> None:
    """Write the PM research report (self-contained report.html and report.pdf) with the
    sections this lake's data allow; the first page lists those left out and why."""
    from eventvol.research import api
    from eventvol.research.progress import status
    from eventvol.research.report import backtest_for_report, backtest_params

    names = list(dict.fromkeys(backtest or []))
    per_name = backtest_params(names, param)
    lk = Lake.open(lake or default_lake_path())
    with status("eventvol report") as step:
        runs = []
        for n in names:
            step(f"backtest {n}")
            runs.append(backtest_for_report(lk, n, per_name[n]))
        paths = api.report(lk, out_dir, studies=studies, events=events, pdf=pdf, progress=step,
                           **({"straddle": False, "backtests": runs} if names else {}))
    for p in paths:
        out.print(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.command()(study)
    app.command()(report)
