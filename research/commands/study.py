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


def _print_result(res) -> None:
    r = res.to_dict()
    out.print(f"{r['name']}: {r['title']}")
    out.print(f"  status: {r['status']}")
    if not r.get("evaluable"):
        return
    k = res.scale
    out.print(f"  {res.label}: {_fmt(res.estimate * k)} [{_fmt(res.ci_low * k)}, {_fmt(res.ci_high * k)}]"
              + (f" {res.unit}" if res.unit else "") + f", p = {_fmt(res.p_value)}"
              + (f", BH-adjusted p = {_fmt(res.p_bh)}" if res.p_bh is not None else ""))
    if res.counted_test != res.label:
        out.print(f"  test: {res.counted_test}")
    out.print(f"  verdict (p < 5% with the expected {res.expected} direction): {res.verdict}")
    for key in ("primary", "mechanism"):
        p = r.get(key)
        if p and p["name"] != res.counted_test:
            truth = f"; truth {p['truth']:.4g}, covered: {p['truth_covered']}" if "truth" in p else ""
            out.print(f"  also {p['name']}: {p['estimate']:.4g} [{p['ci_low']:.4g}, {p['ci_high']:.4g}], "
                      f"p = {_fmt(p['p_value'])}{truth}")
        elif r.get(f"{key}_status"):
            out.print(f"  {key} test: {r[key + '_status']}")


def study(
    name: Annotated[Optional[str], typer.Argument(help="Hypothesis name (H1..H6) or 'momentum-regimes'.")] = None,
    lake: LakeOpt = None,
    run_all_: Annotated[bool, typer.Option("--all", help="Run every hypothesis; adds Benjamini-Hochberg adjusted p-values.")] = False,
    events: Annotated[Optional[Path], typer.Option("--events", help="CSV event list (date,symbol[,name]) for H6.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    expected: Annotated[Optional[str], typer.Option("--expected", help="Expected direction: positive, negative or two-sided (default: the hypothesis file's).")] = None,
    window: Annotated[Optional[str], typer.Option("--window", help="CAR window of an event study as FIRST,LAST sessions, e.g. 0,5.")] = None,
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
        if expected is not None or window is not None:
            raise NoDataError("--expected and --window apply to one named study (e.g. eventvol study H6 --events FILE --expected negative), not to --all")
        with status("eventvol study --all") as step:
            results = run_all(lk, specs, events_file=events, progress=step)
        if as_json:
            print_json({"hypotheses": [r.to_dict() for r in results]})
        else:
            for r in results:
                _print_result(r)
        return
    if name is None:
        raise NoDataError(f"name a hypothesis ({', '.join(specs)}, {MOMENTUM}) or pass --all")
    if name not in specs:
        raise NoDataError(f"unknown study {name!r}; choose one of {', '.join(specs)}, {MOMENTUM}")
    r = api.study(lk, name, events=events, expected=expected, car_window=_window(window))
    if as_json:
        print_json(r.to_dict())
    else:
        _print_result(r)


def report(
    lake: LakeOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.html and report.pdf.")] = Path("out"),
    studies: Annotated[Optional[list[str]], typer.Option("--studies", help="Hypotheses to include (repeatable; default all).")] = None,
    events: Annotated[Optional[Path], typer.Option("--events", help="CSV event list for H6.")] = None,
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also write report.pdf (WeasyPrint).")] = True,
) -> None:
    """Write the PM research report (self-contained report.html and report.pdf)."""
    from eventvol.research import api
    from eventvol.research.progress import status

    lk = Lake.open(lake or default_lake_path())
    with status("eventvol report") as step:
        paths = api.report(lk, out_dir, studies=studies, events=events, pdf=pdf, progress=step)
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
