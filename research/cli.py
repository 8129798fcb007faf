"""The `eventvol` command line. Every user-facing failure is one sentence on stderr with a
non-zero exit code (2 for bad input or missing data, 75 for a busy lake), never a traceback."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import click
import typer

from eventvol.data_lake import EventvolError, Lake
from eventvol.data_lake.store import default_lake_path

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
    earnings straddle, run the declared hypotheses and write OUT/report.html and report.pdf."""
    from eventvol.data_lake.synthetic import build, config_for
    from eventvol.pipelines.refresh import refresh
    from eventvol.pipelines.registry import load_families
    from eventvol.research.progress import status
    from eventvol.research.report import build_research_report
    from eventvol.strategies.earnings_straddle import StraddleParams, run

    t0 = time.perf_counter()
    cfg = config_for(scale, seed=seed)
    root = lake or default_lake_path()
    lk = Lake.open(root, create=True)
    with status("eventvol demo") as step:
        if lk.is_empty():
            step("simulating the synthetic market")
            counts = build(lk, cfg, progress=lambda t: step(f"writing {t}"))
        else:
            counts = None
        # the refresh runner computes only what is due: a rerun on the same lake is quick.
        # The cross-sectional families feed the dashboards and H3-H5; a unit that cannot be
        # computed leaves its hypotheses "not evaluable" instead of failing the demo.
        families = [f for f in ("gex", "dispersion", "momentum", "letf", "squeeze") if f in load_families()]
        result = refresh(lk, factors=families, log=lambda line: step(line.split(" fingerprint=")[0]))
        run_id = result.run_id or "no new factor units"
        if result.failed:
            err.print(f"eventvol demo: warning: {result.error()}")
        step("backtesting the earnings straddle")
        params = StraddleParams()
        trades, failure = None, None
        try:
            trades = run(lk, params).trades
        except EventvolError as exc:
            # the report is the demo's product: a backtest that cannot run on this lake is
            # reported (one line, below) and left out of the report rather than losing it
            failure = f"{type(exc).__name__}: {exc}"
        paths = build_research_report(
            lk, out_dir, trades=trades, pdf=pdf, progress=step,
            title="eventvol demo: event-driven volatility research note",
            extra_provenance={"factor run": run_id, "synthetic seed": seed, "synthetic scale": scale,
                              "straddle": f"fee ${params.fee_per_contract}/contract, quantity {params.quantity}"},
        )
    from eventvol.research.event_table import gex_split, summarize

    built = f"built {counts['option_quotes']:,} option rows" if counts else "used the existing lake"
    out.print(f"eventvol demo: {built} in {lk.root}")
    if trades is not None:
        s = summarize(trades.loc[trades["traded"], "pnl"])
        out.print(f"  earnings straddles traded: {s['events']}, hit rate {s['hit_rate']:.1%}, "
                  f"mean P&L ${s['mean_pnl']:,.2f}, total ${s['total_pnl']:,.2f}")
        for regime, row in gex_split(trades).iterrows():
            out.print(f"  {regime}: {int(row['events'])} events, mean P&L ${row['mean_pnl']:,.2f}")
    else:
        err.print(f"eventvol demo: warning: the earnings straddle backtest failed ({failure}); the report omits it")
    out.print(f"  report: {', '.join(str(p) for p in paths)}  ({time.perf_counter() - t0:.1f}s)")


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
