"""The factor registry.

A factor family declares what it reads, what it writes and its unit of work, and splits its
work into `load` (all I/O: the lake rows the units in [start, end] need, lookback included,
each as known at its unit's decision time) and `compute` (pure: loaded data in, long rows
(factor, trade_date, entity, value) out for trade dates in [start, end]). The materializer
and the refresh runner call the two; nothing else touches the lake.

Families live in their own modules, listed in FAMILY_MODULES; each module calls `register`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

FACTOR_ROW_COLUMNS = ["factor", "trade_date", "entity", "value"]


@dataclass(frozen=True)
class FactorSpec:
    """A registered factor family.

    name: family name (e.g. "gex"); outputs: factor names it writes (e.g. "net_gex_per_1pct");
    inputs: lake tables it reads; unit: "trade_date" (one unit = every entity of one session);
    lookback_sessions: sessions of history before a unit that `load` must include;
    load(lake, start, end) -> data; compute(data, start, end) -> DataFrame[FACTOR_ROW_COLUMNS];
    driver: the input table whose trade dates define the units (default inputs[0]).
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    load: Callable[[Any, dt.date, dt.date], Any]
    compute: Callable[[Any, dt.date, dt.date], pd.DataFrame]
    unit: str = "trade_date"
    lookback_sessions: int = 0
    driver: str | None = None
    description: str = ""

    @property
    def driver_table(self) -> str:
        return self.driver or self.inputs[0]


REGISTRY: dict[str, FactorSpec] = {}

FAMILY_MODULES = (
    "eventvol.pipelines.positioning",  # gex: dealer gamma/vanna/charm positioning (option_quotes)
    "eventvol.pipelines.crosssection",  # dispersion, momentum, letf flows, squeeze (bars, members, ...)
)


def register(spec: FactorSpec) -> FactorSpec:
    REGISTRY[spec.name] = spec
    return spec


def load_families() -> dict[str, FactorSpec]:
    """Import every family module so that the registry is complete."""
    for name in FAMILY_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name)
    return REGISTRY


def family_of(output: str) -> FactorSpec:
    """The family that writes the factor named `output`."""
    for spec in load_families().values():
        if output in spec.outputs or output == spec.name:
            return spec
    from eventvol.data_lake import NoDataError

    raise NoDataError(f"unknown factor {output!r}; known: {', '.join(sorted(o for s in REGISTRY.values() for o in s.outputs))}")
