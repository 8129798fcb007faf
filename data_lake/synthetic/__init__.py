"""The deterministic synthetic market: the embedded default when no vendor data exists."""

from __future__ import annotations

from data_lake.synthetic.market import SyntheticConfig, simulate

WRITE_ORDER = ("index_members", "index_weights", "events", "bars", "option_quotes", "truth")


def build(lake, cfg: SyntheticConfig = SyntheticConfig(), progress=None) -> dict[str, int]:
    """Simulate the market and write it through the lake's validated write path.
    Returns rows written per table. `progress(table)` is called before each table's write."""
    tables = simulate(cfg)
    counts = {}
    with lake.writer():
        for name in WRITE_ORDER:
            if progress:
                progress(name)
            counts[name] = lake.write(name, tables[name]).rows
    return counts


__all__ = ["SyntheticConfig", "simulate", "build"]
