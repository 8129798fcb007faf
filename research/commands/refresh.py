"""`eventvol refresh`: the scheduled, incremental factor refresh (see pipelines/refresh.py).

Exit codes: 0 every due unit computed (or nothing was due; families without inputs and
sessions without data in a sparse lake are skipped, not failures); 2 bad arguments; 3 inputs of
a due session after the last recorded one are missing (data not arrived: retry later);
4 computing a unit failed; 75 another refresh or writer holds the lake (EX_TEMPFAIL).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pandas as pd
import typer

from eventvol.data_lake import Lake, calendars
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import LakeOpt, err, out, parse_date, print_json


def _date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    if value == "today":
        # The last session on or before today's date in New York: what a nightly job is due.
        today = pd.Timestamp.now(tz=calendars.EASTERN).date()
        return calendars.session_on_or_before(today)
    return parse_date(value, option)


def refresh(
    lake: LakeOpt = None,
    factors: Annotated[str | None, typer.Option("--factors", help="Comma-separated families or factor names (default: all).")] = None,
    start: Annotated[str | None, typer.Option("--start", help="First trade date YYYY-MM-DD (default: the first date with data).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last trade date YYYY-MM-DD or 'today' (default: the last date with data).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="local or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Dask scheduler address (default: a LocalCluster).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Recompute every unit in range.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout (log lines go to stderr).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log a line per unit, not only per family and month.")] = False,
) -> None:
    """Compute the factor units that are missing or whose inputs changed, in batches; the log
    has a line per family and month (a line per unit with --verbose)."""
    from eventvol.pipelines.refresh import refresh as run_refresh
    from eventvol.research.progress import status

    names = [f.strip() for f in factors.split(",") if f.strip()] if factors else None
    lo, hi = _date(start, "--start"), _date(end, "--end")
    lk = Lake.open(lake or default_lake_path())
    log_console = err if as_json else out

    def log(line: str) -> None:
        log_console.print(f"{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ} {line}", markup=False)

    with status("eventvol refresh") as step:
        def log_and_step(line: str) -> None:
            log(line)
            step(line)

        result = run_refresh(lk, factors=names, start=lo, end=hi, force=force, engine=engine,
                             scheduler=scheduler, verbose=verbose, log=log_and_step)
    summary = result.summary()
    if as_json:
        print_json(summary)
    else:
        out.print(f"refresh: {summary['units_computed']} computed, {summary['units_skipped']} skipped, "
                  f"{summary['units_failed']} failed, {summary['rows_written']} rows in {summary['seconds']:.2f}s "
                  f"(engine {summary['engine']}, run {summary['run_id'] or 'none: nothing was due'})")
    error = result.error()
    if error is not None:
        raise error


def register(app: typer.Typer) -> None:
    app.command()(refresh)
