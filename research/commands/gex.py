"""`eventvol gex`: dealer positioning of one underlying on one trade date."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

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
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Write the positioning chart (GEX by strike, re-priced profile, spot, zero gamma, walls) to FILE.png, .svg or .pdf.")] = None,
) -> None:
    """Dealer positioning of one underlying on one trade date: net GEX, zero gamma, walls,
    vanna and charm exposure, GEX by expiry bucket, 0DTE volume share."""
    import warnings

    from eventvol.pipelines.positioning import PositioningWarning
    from eventvol.research import api

    api.check_gex_options(iv_source, sign_model, grid, names=("--iv-source", "--sign-model", "--grid"))
    if plot is not None and plot.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise NoDataError(f"--plot {plot} must name a .png, .svg or .pdf file")
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
    if plot is not None:
        from eventvol.research.charts import positioning_chart, save
        from eventvol.research.positioning import positioning_view

        if not plot.parent.is_dir():
            raise NoDataError(f"--plot {plot}: the folder {plot.parent} does not exist")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PositioningWarning)
            view = positioning_view(lk, underlying, d, sign_model, n_grid=grid, iv_source=iv_source)
        save(positioning_chart(view), plot)
    if as_json:
        print_json(summary)
        return
    for line in summary_lines(summary):
        out.print(line)
    if plot is not None:
        out.print(f"wrote {plot}")


# (label, unit formatter) of each summary field in terminal output
def _fields():
    from eventvol.research import formatting as F

    return {
        "net_gex_per_1pct": ("net GEX", F.gex_bn),
        "net_gex_per_point": ("net GEX per point", lambda v: f"{F.usd_scaled(v)} per 1 point"),
        "spot": ("spot", F.level),
        "zero_gamma": ("zero gamma", F.level),
        "call_wall": ("call wall (strike)", F.level),
        "put_wall": ("put wall (strike)", F.level),
        "net_vex_per_volpt": ("net vanna (VEX)", lambda v: f"{F.usd_scaled(v)} per vol point"),
        "net_cex_per_day": ("net charm (CEX)", lambda v: f"{F.usd_scaled(v)} of delta per day"),
        "gex_0dte": ("GEX expiring today", F.gex_bn),
        "gex_le7d": ("GEX expiring 1-7 days", F.gex_bn),
        "gex_gt7d": ("GEX expiring > 7 days", F.gex_bn),
        "zero_dte_volume_share": ("0DTE volume share", F.pct),
        "contracts_used": ("contracts used", lambda v: f"{v:,}"),
        "zero_gamma_roots_found": ("zero-gamma roots found", lambda v: f"{v:,}"),
    }


def summary_lines(summary: dict) -> list[str]:
    """The terminal rendering of a positioning summary: a regime line, then one labelled
    field per line with its unit, then (if present) the roots and the profile as a table."""
    from eventvol.research import formatting as F

    lines = [f"{summary['underlying']} {summary['trade_date']}: "
             + F.regime_statement(summary.get("spot"), summary.get("zero_gamma"), summary.get("net_gex_per_1pct"))]
    fields = _fields()
    for k, v in summary.items():
        if k in fields:
            label, fmt = fields[k]
            lines.append(f"{label:>24}: {fmt(v)}")
        elif k == "zero_gamma_roots":
            lines.append(f"{'zero-gamma roots':>24}: {', '.join(F.level(x) for x in v) or 'none'}")
        elif k not in ("profile", "underlying", "trade_date"):
            lines.append(f"{k.replace('_', ' '):>24}: {v}")
    if "profile" in summary:
        p = summary["profile"]
        lines.append("")
        lines.append(f"{'spot ($)':>14}  {'net GEX ($bn per 1%)':>22}")
        for s, g in zip(p["spots"], p["net_gex_per_1pct"]):
            lines.append(f"{s:>14,.2f}  {g / 1e9:>22,.3f}")
    return lines


def register(app: typer.Typer) -> None:
    app.command()(gex)
