"""The deterministic synthetic market: the embedded default when no vendor data exists."""

from __future__ import annotations

from collections.abc import Callable

from eventvol.data_lake.synthetic.config import SCALES, SyntheticConfig, config_for
from eventvol.data_lake.synthetic.market import simulate, simulate_stream


def build(lake, cfg: SyntheticConfig = SyntheticConfig(), progress: Callable[[str], None] | None = None) -> dict[str, int]:
    """Simulate the market and write it through the lake's validated write path, one option
    month partition at a time, under one writer lock. Returns rows written per table."""
    counts: dict[str, int] = {}
    with lake.writer():
        for name, table in simulate_stream(cfg):
            if progress:
                progress(name if name != "option_quotes" else f"option_quotes {counts.get(name, 0):,} rows")
            counts[name] = counts.get(name, 0) + lake.write(name, table).rows
    return counts


__all__ = ["SCALES", "SyntheticConfig", "config_for", "simulate", "simulate_stream", "build"]
