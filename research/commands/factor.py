"""`eventvol factor`: one factor's values from the lake's `factors` table, materializing the
factor's family first when the requested range is not there yet."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from eventvol.data_lake import Lake, NoDataError
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import CsvOpt, LakeOpt, ParquetOpt, export_frames, out, parse_date, print_json


def factor(
    name: Annotated[str, typer.Option("--name", help="Factor output name, e.g. dispersion_ratio_21d.")],
    lake: LakeOpt = None,
    entity: Annotated[Optional[str], typer.Option("--entity", help="Entity (index or symbol), e.g. SPX.")] = None,
    start: Annotated[Optional[str], typer.Option("--start", help="First trade date YYYY-MM-DD.")] = None,
    end: Annotated[Optional[str], typer.Option("--end", help="Last trade date YYYY-MM-DD.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of {trade_date, entity, value}.")] = False,
    csv: CsvOpt = None,
    parquet: ParquetOpt = None,
) -> None:
    """Values of one factor, computed and stored in the lake first if they are missing."""
    from eventvol.research import api
    from eventvol.research.progress import status

    lo = parse_date(start, "--start") if start else None
    hi = parse_date(end, "--end") if end else None
    if lo and hi and lo > hi:
        raise NoDataError(f"--start {lo} is after --end {hi}")
    lk = Lake.open(lake or default_lake_path())
    with status(f"eventvol factor {name}") as step:
        rows = api.factor_rows(lk, name, entity=entity, start=lo, end=hi, progress=step)
    records = [{"trade_date": d.isoformat(), "entity": e, "value": float(v)}
               for d, e, v in zip(rows["trade_date"], rows["entity"], rows["value"])]
    frame = rows[["trade_date", "entity", "value"]].reset_index(drop=True)
    written = export_frames({name: frame}, csv, parquet)
    if as_json:
        print_json(records)
        return
    from eventvol.research import formatting as F

    unit = F.FACTOR_UNITS.get(name)
    head = ["trade date", "entity", f"{name}" + (f" ({unit})" if unit else "")]
    for line in F.table(head, [[r["trade_date"], r["entity"], F.factor_value(name, r["value"])] for r in records]):
        out.print(line)
    for p in written:
        out.print(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.command()(factor)
