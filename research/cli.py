"""The `eventvol` command line. Every user-facing failure is one sentence on stderr with a
non-zero exit code (2 for bad input or missing data, 75 for a busy lake), never a traceback."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import click
import typer

from eventvol.data_lake import EventvolError

from eventvol.research.cli_common import LakeOpt, err, out

app = typer.Typer(
    name="eventvol",
    help="Event-driven volatility research: point-in-time option lake, dealer positioning factors, event backtests and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
@app.command()
def demo(
    lake: LakeOpt = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.html and report.pdf.")] = Path("out"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 7,
    scale: Annotated[str, typer.Option(help="Synthetic market size: tiny, small, medium or large (>= 100M option rows).")] = "small",
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="Also write report.pdf.")] = True,
) -> None:
    """Build the synthetic market (if the lake is empty), compute the factors, backtest the
    catalog earnings straddle, run the declared hypotheses and write OUT/report.html,
    report.pdf and earnings_straddle_trades.csv."""
    from eventvol.research.api import demo as run_demo
    from eventvol.research.event_table import gex_split, summarize
    from eventvol.research.progress import status

    t0 = time.perf_counter()
    with status("eventvol demo") as step:
        res = run_demo(lake, out_dir, seed=seed, scale=scale, pdf=pdf, progress=step)
    built = f"built {res.counts['option_quotes']:,} option rows" if res.counts else "used the existing lake"
    out.print(f"eventvol demo: {built} in {res.lake.root}")
    for note in res.warnings:
        err.print(f"eventvol demo: warning: {note}")
    if res.straddle is not None:
        trades = res.straddle.trades
        s = summarize(trades.loc[trades["traded"], "pnl"])
        out.print(f"  earnings straddles traded: {s['events']}, hit rate {s['hit_rate']:.1%}, "
                  f"mean P&L ${s['mean_pnl']:,.2f}, total ${s['total_pnl']:,.2f}")
        for regime, row in gex_split(trades).iterrows():
            out.print(f"  {regime}: {int(row['events'])} events, mean P&L ${row['mean_pnl']:,.2f}")
    out.print(f"  report: {', '.join(str(p) for p in res.paths)}  ({time.perf_counter() - t0:.1f}s)")


# Commands living in their own modules: each module defines `register(app)`.
COMMAND_MODULES = (
    "eventvol.research.commands.gex",  # eventvol gex ...
    "eventvol.research.commands.ingest",  # eventvol ingest ..., eventvol lake ...
    "eventvol.research.commands.factor",  # eventvol factor ...
    "eventvol.research.commands.refresh",  # eventvol refresh ...
    "eventvol.research.commands.backtest",  # eventvol backtest ...
    "eventvol.research.commands.study",  # eventvol study ..., eventvol report ...
)


def _register_commands() -> None:
    import importlib
    import importlib.util

    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(app)


_register_commands()


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=False)
    except EventvolError as exc:
        err.print(f"eventvol: error: {exc}")
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err.print("eventvol: interrupted")
        sys.exit(130)
    except KeyboardInterrupt:
        err.print("eventvol: interrupted")
        sys.exit(130)


if __name__ == "__main__":  # python -m research.cli
    main()
