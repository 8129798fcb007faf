"""`eventvol gex`: dealer positioning of one underlying on one trade date."""

from __future__ import annotations

from typing import Annotated

import typer

from eventvol.data_lake import Lake, NoDataError
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import LakeOpt, err, out, parse_date, print_json


def gex(
    underlying: Annotated[str, typer.Option("--underlying", help="Underlying symbol, e.g. SPX.")],
    date: Annotated[str, typer.Option("--date", help="Trade date YYYY-MM-DD.")],
    lake: LakeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    sign_model: Annotated[str, typer.Option("--sign-model", help="Dealer sign model.")] = "dealer_long_calls_short_puts",
    profile: Annotated[bool, typer.Option("--profile", help="Add the re-priced GEX profile (GEX at a grid of spots).")] = False,
    all_roots: Annotated[bool, typer.Option("--all-roots", help="Add every zero-gamma root in [0.5 S, 1.5 S].")] = False,
    grid: Annotated[int, typer.Option("--grid", help="Spots in the bracketing grid / profile over [0.5 S, 1.5 S].")] = 201,
    iv_source: Annotated[str, typer.Option("--iv-source", help="Implied vols: otm (out-of-the-money side per strike, "
                                           "vendor floors dropped), vendor (as delivered), solved (otm, solving "
                                           "missing IVs from mid quotes).")] = "otm",
) -> None:
    """Dealer positioning of one underlying on one trade date: net GEX, zero gamma, walls,
    vanna and charm exposure, GEX by expiry bucket, 0DTE volume share."""
    import warnings

    from eventvol.pipelines.gex import SIGN_MODELS
    from eventvol.pipelines.ivsource import IV_SOURCES
    from eventvol.pipelines.positioning import PositioningWarning
    from eventvol.research import api

    if iv_source not in IV_SOURCES:
        raise NoDataError(f"unknown --iv-source {iv_source!r}; choose one of {', '.join(IV_SOURCES)}")
    if sign_model not in SIGN_MODELS:
        raise NoDataError(f"unknown --sign-model {sign_model!r}; choose one of {', '.join(SIGN_MODELS)}")
    if grid < 3:
        raise NoDataError(f"--grid must be at least 3 spots, not {grid}")
    d = parse_date(date)
    lk = Lake.open(lake or default_lake_path())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PositioningWarning)  # said once below, as one line on stderr
        summary = api.gex(lk, underlying, d, sign_model=sign_model, all_roots=all_roots, n_grid=grid,
                          iv_source=iv_source).to_dict()
        summary["trade_date"] = d.isoformat()
        if profile:
            p = api.gex_profile(lk, underlying, d, sign_model=sign_model, n_grid=grid, iv_source=iv_source)
            summary["profile"] = {"spots": p["spot"].tolist(), "net_gex_per_1pct": p["net_gex_per_1pct"].tolist()}
    if "warning" in summary:
        err.print(f"warning: {summary['warning']}")
    if as_json:
        print_json(summary)
        return
    for k, v in summary.items():
        if k == "profile":
            out.print(f"{'profile':>22}:")
            for s, g in zip(v["spots"], v["net_gex_per_1pct"]):
                out.print(f"{s:>22,.2f}  {g:,.0f}")
        elif isinstance(v, float):
            out.print(f"{k:>22}: {v:,.2f}")
        else:
            out.print(f"{k:>22}: {v}")


def register(app: typer.Typer) -> None:
    app.command()(gex)
