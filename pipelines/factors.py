"""Factor definitions and their materialization into the lake's `factors` table.

A factor is declared with its inputs, outputs and unit of work, and computed by a pure
function of in-memory frames; `materialize` does the I/O, one month partition at a time so
memory stays bounded on large lakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow as pa

from data_lake import Lake
from data_lake.store import new_run_id
from pipelines import gex as gexmod
from pipelines.loaders import group_ids, load_chains, month_ranges


@dataclass(frozen=True)
class FactorSpec:
    """A registered factor family: what it reads, what it writes, how it is computed."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    unit: str  # "trade_date" or "trade_date,underlying"
    compute: Callable[[pa.Table], pd.DataFrame]  # input rows -> long factor rows


def gex_factor_rows(chains: pa.Table, sign_model: str = gexmod.DEFAULT_SIGN_MODEL) -> pd.DataFrame:
    """Long rows (factor, trade_date, entity, value) of net GEX per (underlying, trade_date)
    from chain rows sorted by (underlying, trade_date)."""
    gid, keys = group_ids(chains)
    if keys.empty:
        return pd.DataFrame(columns=["factor", "trade_date", "entity", "value"])
    res = gexmod.net_gex(gexmod.ChainArrays.from_arrow(chains, gid), len(keys), sign_model)
    parts = [
        pd.DataFrame({"factor": name, "trade_date": keys["trade_date"].to_numpy(),
                      "entity": keys["underlying"].to_numpy(), "value": np.asarray(res[name], float)})
        for name in ("net_gex_per_1pct", "net_gex_per_point", "contracts_used", "spot")
    ]
    return pd.concat(parts, ignore_index=True)


GEX = FactorSpec(
    name="gex",
    inputs=("option_quotes",),
    outputs=("net_gex_per_1pct", "net_gex_per_point", "contracts_used", "spot"),
    unit="trade_date,underlying",
    compute=gex_factor_rows,
)

REGISTRY: dict[str, FactorSpec] = {GEX.name: GEX}


def materialize(lake: Lake, factor: FactorSpec = GEX, *, start=None, end=None,
                progress: Callable[[str], None] | None = None) -> tuple[str, int]:
    """Compute `factor` month by month and upsert it into `factors`. Returns (run_id, rows)."""
    run_id = new_run_id()
    started = datetime.now(timezone.utc)
    parts = []
    with lake.writer():
        # inputs stream month by month; the (small) factor rows are written in one transaction
        for lo, hi in month_ranges(lake, factor.inputs[0], start, end):
            if progress:
                progress(f"{factor.name} {lo:%Y-%m}")
            parts.append(factor.compute(load_chains(lake, start=lo, end=hi)))
        rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        written = 0
        if not rows.empty:
            rows["run_id"] = run_id
            written = lake.write("factors", rows).rows
        lake.record_run(f"factor:{factor.name}", status="ok", started_at=started, rows_written=written,
                        params={"start": start, "end": end}, run_id=run_id)
    return run_id, written


def read_factor(lake: Lake, name: str, *, entity: str | None = None, start=None, end=None) -> pd.DataFrame:
    """Rows (trade_date, entity, value) of one factor output, ordered by entity and date."""
    clauses, params = ["factor = ?"], [name]
    if entity is not None:
        clauses.append("entity = ?")
        params.append(entity)
    if start is not None:
        clauses.append("trade_date >= ?")
        params.append(pd.Timestamp(start).date())
    if end is not None:
        clauses.append("trade_date <= ?")
        params.append(pd.Timestamp(end).date())
    return lake.read("factors", columns=["trade_date", "entity", "value"], where=" AND ".join(clauses), params=params)
