"""Materialize registered factor families into the lake's `factors` table, and read them."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone

import pandas as pd
import pyarrow.parquet as pq

from eventvol.data_lake import Lake
from eventvol.data_lake.store import new_run_id, partition_of, where_sql
from eventvol.pipelines.loaders import month_ranges
from eventvol.pipelines.registry import FactorSpec, load_families


def compute_range(lake: Lake, spec: FactorSpec, start, end) -> pd.DataFrame:
    """Load then compute one family for trade dates in [start, end]."""
    return spec.compute(spec.load(lake, start, end), start, end)


def month_rows(lake: Lake, table: str) -> dict[int, int]:
    """Rows per month partition of `table` (month index year*12 + month-1), from the Parquet
    footers: no data is read."""
    out: dict[int, int] = defaultdict(int)
    for f in lake.files(table):
        y, m = partition_of(f)
        out[y * 12 + m - 1] += pq.ParquetFile(f).metadata.num_rows
    return dict(out)


def row_blocks(rows_by_month: dict[int, int], batch_rows: int) -> dict[int, int]:
    """Month index -> batch block: consecutive months share a block while their rows add up
    to at most `batch_rows` (a month above it is a block of its own)."""
    out, block, used = {}, 0, 0
    for m in sorted(rows_by_month):
        n = rows_by_month[m]
        if used and used + n > batch_rows:
            block, used = block + 1, 0
        out[m] = block
        used += n
    return out


def family_row_blocks(lake: Lake, spec: FactorSpec, budget: int | None = None) -> dict[int, int] | None:
    """The family's batch blocks by rows (`row_blocks` of its driver table's months under
    `budget`, default `spec.batch_rows`), None for a family batched by calendar months."""
    if spec.batch_rows <= 0:
        return None
    return row_blocks(month_rows(lake, spec.driver_table), budget or spec.batch_rows)


def batch_ranges(months: list[tuple[dt.date, dt.date]], batch_months: int,
                 blocks: dict[int, int] | None = None) -> list[tuple[dt.date, dt.date]]:
    """Merge month ranges (ascending) into the family's batch blocks: `blocks` (month index
    -> block, `row_blocks`) when given, else `batch_months` calendar months per block (0: one
    range over all of them)."""
    if not months:
        return []
    if batch_months <= 0 and blocks is None:
        return [(months[0][0], months[-1][1])]
    out: list[tuple[dt.date, dt.date]] = []
    block = None
    for lo, hi in months:
        m = lo.year * 12 + lo.month - 1
        b = blocks.get(m, -1) if blocks is not None else m // batch_months
        if out and b == block:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
            block = b
    return out


def materialize(lake: Lake, spec: FactorSpec | str = "gex", *, start=None, end=None,
                progress: Callable[[str], None] | None = None) -> tuple[str, int]:
    """Compute a family block by block (`FactorSpec.batch_months` months of inputs at a time,
    `batch_rows` rows, or the whole range) and upsert its rows into `factors` in one transaction. Returns
    (run_id, rows written)."""
    if isinstance(spec, str):
        spec = load_families()[spec]
    run_id = new_run_id()
    started = datetime.now(timezone.utc)
    parts = []
    with lake.writer():
        blocks = family_row_blocks(lake, spec)
        for lo, hi in batch_ranges(month_ranges(lake, spec.driver_table, start, end), spec.batch_months, blocks):
            if progress:
                progress(f"{spec.name} {lo:%Y-%m}" + (f"..{hi:%Y-%m}" if (hi.year, hi.month) != (lo.year, lo.month) else ""))
            parts.append(compute_range(lake, spec, lo, hi))
        rows = pd.concat([p for p in parts if not p.empty], ignore_index=True) if any(not p.empty for p in parts) else pd.DataFrame()
        written = 0
        if not rows.empty:
            rows["run_id"] = run_id
            written = lake.write("factors", rows).rows
        lake.record_run(f"factor:{spec.name}", status="ok", started_at=started, rows_written=written,
                        params={"start": start, "end": end}, run_id=run_id)
    return run_id, written


def read_factor(lake: Lake, name: str, *, entity: str | None = None, start=None, end=None) -> pd.DataFrame:
    """Rows (trade_date, entity, value) of one factor output, ordered by entity and date."""
    where, params = where_sql(equals={"factor": name, "entity": entity}, start=start, end=end)
    return lake.read("factors", columns=["trade_date", "entity", "value"], where=where, params=params)
