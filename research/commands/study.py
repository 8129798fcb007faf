"""`eventvol study` (hypotheses, momentum regimes) and `eventvol report` (PM report)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from eventvol.data_lake import Lake, NoDataError
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import LakeOpt, export_frames, out, out_folder, print_json

MOMENTUM = "momentum-regimes"


def _fmt(v, pct=False) -> str:
    from eventvol.research import formatting as F

    return F.pct(v, 2) if pct else F.number(v, 4)


def _print_result(res) -> None:
    r = res.to_dict()
    out.print(f"{r['name']}: {r['title']}")
    out.print(f"  status: {r['status']}")
    if not r.get("evaluable"):
        return
    from eventvol.research import formatting as F

    def u(v):
        return F.with_unit(v, res.unit, res.scale, 4)

    out.print(f"  {res.label}: {u(res.estimate)} (95% CI {u(res.ci_low)} to {u(res.ci_high)})"
              + f", p = {F.pvalue(res.p_value)}"
              + (f", BH-adjusted p = {F.pvalue(res.p_bh)}" if res.p_bh is not None else ""))
    if res.counted_test != res.label:
        out.print(f"  test: {res.counted_test}")
    out.print(f"  verdict (p < 5% with the expected {res.expected} direction): {res.verdict}")
    for key in ("primary", "mechanism"):
        p = r.get(key)
        if p and p["name"] != res.counted_test:
            truth = f"; truth {_fmt(p['truth'])}, covered: {p['truth_covered']}" if "truth" in p else ""
            out.print(f"  also {p['name']}: {_fmt(p['estimate'])} (95% CI {_fmt(p['ci_low'])} to {_fmt(p['ci_high'])}), "
                      f"p = {F.pvalue(p['p_value'])}{truth}")
        elif r.get(f"{key}_status"):
            out.print(f"  {key} test: {r[key + '_status']}")


def study(
    name: Annotated[Optional[str], typer.Argument(help="Hypothesis name (H1..H7, research/hypotheses/*.toml) or 'momentum-regimes'.")] = None,
    lake: LakeOpt = None,
    run_all_: Annotated[bool, typer.Option("--all", help="Run every hypothesis; adds Benjamini-Hochberg adjusted p-values.")] = False,
    events: Annotated[Optional[Path], typer.Option("--events", help="CSV event list (date,symbol[,name]) for H6.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    expected: Annotated[Optional[str], typer.Option("--expected", help="Expected direction: positive, negative or two-sided (default: the hypothesis file's).")] = None,
    window: Annotated[Optional[str], typer.Option("--window", help="CAR window of an event study as FIRST,LAST sessions, e.g. 0,5.")] = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Write the rows behind each counted test to this CSV (FILE_<name>.csv per study with --all).")] = None,
    parquet: Annotated[Optional[Path], typer.Option("--parquet", help="The same as Parquet.")] = None,
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
        import pandas as pd

        written = export_frames({MOMENTUM: pd.DataFrame([{k: v for k, v in res.items() if not isinstance(v, dict)}])},
                                csv, parquet)
        if as_json:
            print_json(res)
            return
        for k, v in res.items():
            if not isinstance(v, dict):
                out.print(f"{k:>24}: {v:.4%}" if isinstance(v, float) else f"{k:>24}: {v}")
        c = res["dm_regression"]["coefficients"]["bear_x_up_x_mkt"]
        out.print(f"{'DM bear x up x mkt':>24}: {c['coef']:.3f} (HAC t = {c['t']:.2f})")
        for p in written:
            out.print(f"wrote {p}")
        return
    specs = load_hypotheses()
    if run_all_:
        if expected is not None or window is not None:
            raise NoDataError("--expected and --window apply to one named study (e.g. eventvol study H6 --events FILE --expected negative), not to --all")
        with status("eventvol study --all") as step:
            results = run_all(lk, specs, events_file=events, progress=step)
        written = export_frames({r.name: r.frame for r in results if not r.frame.empty}, csv, parquet)
        if as_json:
            print_json({"hypotheses": [r.to_dict() for r in results]})
        else:
            for r in results:
                _print_result(r)
            for p in written:
                out.print(f"wrote {p}")
        return
    if name is None:
        raise NoDataError(f"name a hypothesis ({', '.join(specs)}, {MOMENTUM}) or pass --all")
    if name not in specs:
        raise NoDataError(f"unknown study {name!r}; choose one of {', '.join(specs)}, {MOMENTUM}")
    r = api.study(lk, name, events=events, expected=expected, car_window=_window(window))
    written = export_frames({r.name: r.frame}, csv, parquet) if (csv or parquet) else []
    if as_json:
        print_json(r.to_dict())
    else:
        _print_result(r)
        for p in written:
            out.print(f"wrote {p}")


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

    out_folder(out_dir)
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


def _window(text: str | None) -> tuple[int, int] | None:
    """--window FIRST,LAST -> (first, last)."""
    if text is None:
        return None
    try:
        first, last = (int(x) for x in text.split(","))
    except ValueError:
        raise NoDataError(f"--window must be two whole numbers FIRST,LAST such as 0,5, not {text!r}") from None
    return first, last


def register(app: typer.Typer) -> None:
    app.command()(study)
    app.command()(report)
