"""The factor registry.

A factor family declares what it reads, what it writes and its unit of work, and splits its
work into `load` (all I/O: the lake rows the units in [start, end] need, lookback included,
each as known at its unit's decision time) and `compute` (pure: loaded data in, long rows
(factor, trade_date, entity, value) out for trade dates in [start, end]). The materializer
and the refresh runner call the two; nothing else touches the lake.

Families live in their own modules, listed in FAMILY_MODULES; each module calls `register`,
which refuses a second family of the same name and an output name another family already
writes (one output, one family: `family_of` and the refresh fingerprints rely on it).
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
    driver: the input table whose trade dates define the units (default inputs[0]);
    version: the version of the family's code; it enters every unit's input fingerprint, so
    bumping it after a change of the math makes the refresh recompute every stored unit;
    requires: groups of input tables; the family can compute only when each group has a table
    holding rows (default: every input is required; e.g. (("bars",), ("short_interest",
    "option_quotes")) needs bars and at least one of the other two); the refresh skips it
    otherwise, with one line naming what is missing;
    batch_months: how many months of due units one refresh task loads and computes at once
    (0: a whole contiguous range, e.g. a backfill; families reading option chains use 1 to
    bound memory);
    batch_rows: when > 0, instead of `batch_months`: a task spans as many consecutive months as
    hold at most `batch_rows` driver-table rows together (a bigger month is a task of its own),
    so memory is bounded by rows and a lake of small months is one load, one compute and one
    write (`gex`: the 24 demo months are one task, not 24).
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
    version: str = "1"
    requires: tuple[tuple[str, ...], ...] | None = None
    batch_months: int = 1
    batch_rows: int = 0

    @property
    def driver_table(self) -> str:
        return self.driver or self.inputs[0]

    @property
    def required_groups(self) -> tuple[tuple[str, ...], ...]:
        """The `requires` groups (default: each input on its own)."""
        return self.requires if self.requires is not None else tuple((t,) for t in self.inputs)


REGISTRY: dict[str, FactorSpec] = {}

FAMILY_MODULES = (
    "eventvol.pipelines.positioning",  # gex: dealer gamma/vanna/charm positioning (option_quotes)
    "eventvol.pipelines.crosssection",  # dispersion, momentum, letf flows, squeeze (bars, members, ...)
)


class RegistryError(ValueError):
    """A family cannot be registered: its name or an output is taken (a programming error)."""


def register(spec: FactorSpec) -> FactorSpec:
    """Add `spec` to the registry. Raises RegistryError when a family of that name exists, when
    one of its outputs is already written by another family (or is another family's name), or
    when its own outputs repeat a name."""
    if spec.name in REGISTRY:
        raise RegistryError(f"factor family {spec.name!r} is already registered")
    if len(set(spec.outputs)) != len(spec.outputs):
        dup = sorted({o for o in spec.outputs if spec.outputs.count(o) > 1})
        raise RegistryError(f"factor family {spec.name!r} lists output {dup[0]!r} twice")
    for other in REGISTRY.values():
        taken = (set(spec.outputs) | {spec.name}) & (set(other.outputs) | {other.name})
        if taken:
            raise RegistryError(f"factor family {spec.name!r} would write {sorted(taken)[0]!r}, "
                                f"which family {other.name!r} already writes")
    unknown = {t for g in spec.required_groups for t in g} - set(spec.inputs)
    if unknown or any(not g for g in spec.required_groups):
        raise RegistryError(f"factor family {spec.name!r} requires {sorted(unknown) or 'an empty group'} "
                            f"outside its inputs {list(spec.inputs)}")
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
