"""`eventvol gex`: dealer positioning of one underlying on one trade date."""

from __future__ import annotations

from typing import Annotated

import typer

from data_lake import Lake, NoDataError
from data_lake.store import default_lake_path
from research.cli_common import LakeOpt, out, parse_date, print_json


def gex(
    underlying: Annotated[str, typer.Option("--underlying", help="Underlying symbol, e.g. SPX.")],
    date: Annotated[str, typer.Option("--date", help="Trade date YYYY-MM-DD.")],
    lake: LakeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    sign_model: Annotated[str, typer.Option("--sign-model", help="Dealer sign model.")] = "dealer_long_calls_short_puts",
) -> None:
    """Dealer gamma exposure of one underlying on one trade date."""
    from pipelines.gex import SIGN_MODELS
    from pipelines.positioning import positioning_summary

    if sign_model not in SIGN_MODELS:
        raise NoDataError(f"unknown --sign-model {sign_model!r}; choose one of {', '.join(SIGN_MODELS)}")
    d = parse_date(date)
    lk = Lake.open(lake or default_lake_path())
    summary = positioning_summary(lk, underlying, d, sign_model=sign_model)
    if as_json:
        print_json(summary)
        return
    for k, v in summary.items():
        out.print(f"{k:>20}: {v:,.2f}" if isinstance(v, float) else f"{k:>20}: {v}")


def register(app: typer.Typer) -> None:
    app.command()(gex)
