"""The `eventvol` command line. Every failure is one sentence on stderr with a documented
exit code, never a traceback (`--debug` or EVENTVOL_DEBUG=1 adds it):

  0 success · 1 internal error (a bug: rerun with --debug) · 2 usage error, bad input or
  missing data · 3/4 refresh: inputs missing / a unit failed · 65 a damaged lake file · 74 the system refused an operation (permission,
  read-only place, disk full, not a folder) · 75 the lake is busy (another writer) ·
  130 interrupted."""

from __future__ import annotations

import errno
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer

from eventvol.data_lake import EventvolError, LakeWarning

from eventvol.research.cli_common import LakeOpt, err, out, out_folder

EXIT_INTERNAL, EXIT_USAGE, EXIT_IO, EXIT_INTERRUPTED = 1, 2, 74, 130
# modules of the optional extras (pyproject): a missing one is a usage error, not a bug
OPTIONAL_MODULES = {"weasyprint": ("report", ", or pass --no-pdf"), "distributed": ("dask", ""),
                    "dask": ("dask", "")}

app = typer.Typer(
    name="eventvol",
    help="Event-driven volatility research: point-in-time option lake, dealer positioning factors, event backtests and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:  # the installed distribution's version (as eventvol.__version__)
            number = version("eventvol")
        except PackageNotFoundError:
            number = "0+unknown"
        out.print(f"eventvol {number}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of a failure (also EVENTVOL_DEBUG=1); "
                                                         "accepted anywhere on the command line.")] = False,
) -> None:
    """Event-driven volatility research: point-in-time option lake, dealer positioning factors,
    event backtests and reports."""


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
    report.pdf and trades_earnings-straddle.csv."""
    from eventvol.research.api import demo as run_demo
    from eventvol.research.event_table import gex_split, summarize
    from eventvol.research.progress import status

    t0 = time.perf_counter()
    out_folder(out_dir)
    with status("eventvol demo") as step:
        res = run_demo(lake, out_dir, seed=seed, scale=scale, pdf=pdf, progress=step)
    built = f"built {res.counts['option_quotes']:,} option rows" if res.counts else "used the existing lake"
    out.print(f"eventvol demo: {built} in {res.lake.root}")
    for note in res.warnings:
        err.print(f"eventvol demo: warning: {note}")
    if res.straddle is not None:
        trades = res.straddle.trades
        from eventvol.research.formatting import money

        s = summarize(trades.loc[trades["traded"], "pnl"])
        out.print(f"  earnings straddles traded: {s['events']}, hit rate {s['hit_rate']:.1%}, "
                  f"mean P&L {money(s['mean_pnl'])}, total {money(s['total_pnl'])}")
        for regime, row in gex_split(trades).iterrows():
            out.print(f"  {regime}: {int(row['events'])} events, mean P&L {money(row['mean_pnl'])}")
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


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _os_error_sentence(exc: OSError) -> str:
    """An OSError as one sentence naming the file: 'no space left on device writing X'."""
    name = exc.filename or getattr(exc, "filename2", None)
    where = f" ({name})" if name else ""
    if exc.errno == errno.ENOSPC:
        return f"no space left on device{where}; free space and rerun (the lake keeps its previous state)"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"permission denied or read-only file system{where}: {exc.strerror}"
    if exc.errno == errno.EISDIR:
        return f"{name or 'a path'} is a directory, not a file"
    if exc.errno == errno.ENOTDIR:
        return f"{name or 'a path'} (or a folder above it) is a file, not a folder"
    if exc.errno == errno.EEXIST:
        return f"{name or 'a path'} already exists and is not a folder that can be used"
    if exc.errno == errno.ENOENT:
        return f"no such file or folder{where}"
    text = exc.strerror or _one_line(exc) or type(exc).__name__
    return f"{text[0].lower() + text[1:]}{where}"


def describe_failure(exc: BaseException) -> tuple[int, str]:
    """(exit code, one sentence) for any exception reaching the CLI boundary."""
    import duckdb

    if isinstance(exc, EventvolError):
        return exc.exit_code, _one_line(exc)
    if isinstance(exc, typer.TyperException):  # typer 0.29's own click exceptions
        code = getattr(exc, "exit_code", EXIT_USAGE) or EXIT_USAGE
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx is not None else "eventvol"
        message = _one_line(exc.format_message()).rstrip(".")
        return code, f"{message[:1].lower() + message[1:]} (see `{where} --help`)"
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in OPTIONAL_MODULES:
        extra, hint = OPTIONAL_MODULES[exc.name.split(".")[0]]
        return EXIT_USAGE, f"this needs the optional package {exc.name.split('.')[0]}: pip install 'eventvol[{extra}]'{hint}"
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(exc, OSError):
        return EXIT_IO, _os_error_sentence(exc)
    if isinstance(exc, duckdb.IOException):
        return EXIT_IO, _one_line(exc)
    if isinstance(exc, MemoryError):
        return EXIT_IO, "out of memory; try a smaller date range or scale"
    return EXIT_INTERNAL, (f"internal error {type(exc).__name__}: {_one_line(exc)[:300]} "
                           "(rerun with --debug for the traceback and report it)")


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    if issubclass(category, LakeWarning):
        err.print(f"eventvol: warning: {_one_line(message)}", markup=False)
    else:  # a library's warning: one line too, never a code excerpt
        err.print(f"eventvol: warning: {category.__name__}: {_one_line(message)}", markup=False)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app inside the one error boundary."""
    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:cut] or os.environ.get("EVENTVOL_DEBUG", "") not in ("", "0")
    args = [a for i, a in enumerate(args) if not (a == "--debug" and i < cut)]
    warnings.showwarning = _warning_line
    try:
        # without standalone mode typer returns a typer.Exit's code (Ctrl-C becomes 130)
        code = app(args=args, prog_name="eventvol", standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the boundary: everything becomes one sentence
        if exc.__class__.__name__ == "NoArgsIsHelpError":  # `eventvol` / `eventvol lake` alone
            err.print(exc.format_message(), markup=False)  # type: ignore[attr-defined]
            sys.exit(EXIT_USAGE)
        code, sentence = describe_failure(exc)
        if debug:
            import traceback

            traceback.print_exception(exc, file=sys.stderr)
        err.print(f"eventvol: error: {sentence}", markup=False)
        sys.exit(code)
    if isinstance(code, int) and code:
        if code == EXIT_INTERRUPTED:
            err.print("eventvol: error: interrupted", markup=False)
        sys.exit(code)


if __name__ == "__main__":  # python -m eventvol.research.cli
    main()
