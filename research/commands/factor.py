"""`eventvol factor`: one factor's values from the lake's `factors` table, materializing the
factor's family first when the requested range is not there yet."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from eventvol.data_lake import Lake, NoDataError
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import LakeOpt, out, parse_date, print_json


def _missing_months(lake: Lake, spec, start, end) -> bool:
    """True when some month of the family's driver table in [start, end] has driver rows but
    no materialized row of any of the family's outputs (a month whose outputs are all
    legitimately empty, e.g. inside every lookback, is recomputed each time: that costs time,
    never correctness)."""
    from eventvol.pipelines.loaders import month_ranges

    months = month_ranges(lake, spec.driver_table, start, end)
    if not months:
        return False
    have = lake.df(
        "SELECT DISTINCT year(trade_date) AS y, month(trade_date) AS m FROM factors "
        "WHERE list_contains(?, factor)", [list(spec.outputs)])
    done = {(int(y), int(m)) for y, m in zip(have["y"], have["m"])}
    return any((lo.year, lo.month) not in done for lo, _ in months)


def factor(
    name: Annotated[str, typer.Option("--name", help="Factor output name, e.g. dispersion_ratio_21d.")],
    lake: LakeOpt = None,
    entity: Annotated[Optional[str], typer.Option("--entity", help="Entity (index or symbol), e.g. SPX.")] = None,
    start: Annotated[Optional[str], typer.Option("--start", help="First trade date YYYY-MM-DD.")] = None,
    end: Annotated[Optional[str], typer.Option("--end", help="Last trade date YYYY-MM-DD.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of {trade_date, entity, value}.")] = False,
) -> None:
    """Values of one factor, computed and stored in the lake first if they are missing."""
    from eventvol.pipelines.factors import materialize, read_factor
    from eventvol.pipelines.refresh import absent_inputs, describe_absent
    from eventvol.pipelines.registry import family_of
    from eventvol.research.progress import status

    lo = parse_date(start, "--start") if start else None
    hi = parse_date(end, "--end") if end else None
    if lo and hi and lo > hi:
        raise NoDataError(f"--start {lo} is after --end {hi}")
    spec = family_of(name)
    lk = Lake.open(lake or default_lake_path())
    absent = absent_inputs(lk, spec)
    if absent:
        raise NoDataError(f"factor {name!r} (family {spec.name!r}) cannot be computed from the lake at {lk.root}: "
                          f"{describe_absent(absent)}")
    if _missing_months(lk, spec, lo, hi):
        with status(f"computing {spec.name}") as step:
            materialize(lk, spec, start=lo, end=hi, progress=step)
    rows = read_factor(lk, name, entity=entity, start=lo, end=hi)
    if rows.empty:
        where = f" for entity {entity!r}" if entity else ""
        raise NoDataError(f"factor {name!r} has no values{where} in the requested range")
    rows = rows.sort_values(["entity", "trade_date"], kind="stable")
    records = [{"trade_date": d.isoformat(), "entity": e, "value": float(v)}
               for d, e, v in zip(rows["trade_date"], rows["entity"], rows["value"])]
    if as_json:
        print_json(records)
        return
    for r in records:
        out.print(f"{r['trade_date']}  {r['entity']:<8} {r['value']:,.6g}")


def register(app: typer.Typer) -> None:
    app.command()(factor)
