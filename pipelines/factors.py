"""Materialize registered factor families into the lake's `factors` table, and read them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import pandas as pd

from eventvol.data_lake import Lake
from eventvol.data_lake.store import new_run_id, where_sql
from eventvol.pipelines.loaders import month_ranges
from eventvol.pipelines.registry import FactorSpec, load_families


def compute_range(lake: Lake, spec: FactorSpec, start, end) -> pd.DataFrame:
    """Load then compute one family for trade dates in [start, end]."""
    return spec.compute(spec.load(lake, start, end), start, end)


def materialize(lake: Lake, spec: FactorSpec | str = "gex", *, start=None, end=None,
                progress: Callable[[str], None] | None = None) -> tuple[str, int]:
    """Compute a family month by month (inputs stream one month partition at a time) and
    upsert its rows into `factors` in one transaction. Returns (run_id, rows written)."""
    if isinstance(spec, str):
        spec = load_families()[spec]
    run_id = new_run_id()
    started = datetime.now(timezone.utc)
    parts = []
    with lake.writer():
        for lo, hi in month_ranges(lake, spec.driver_table, start, end):
            if progress:
                progress(f"{spec.name} {lo:%Y-%m}")
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
