"""Study kinds and mechanism estimators as plug-ins, registered like factor families.

A *study kind* (`kind = "event_study"` in a hypothesis file) turns a `StudyData` and a
`HypothesisSpec` into a dict with a `primary` test (name, estimate, ci_low, ci_high, p_value)
plus whatever it wants shown (CAAR path, regimes, regression table) and optionally a per-
observation `frame`. A *mechanism estimator* (`[mechanism] estimator = "..."`) returns one
test dict of the same shape. Both declare the TOML keys they read, so a file with an unknown
key is refused with the file and the key named (research/studies/spec.py).

The built-in plug-ins live in the modules of KIND_MODULES; a new one is a module of its own
that calls `register_kind` / `register_mechanism` when imported (see docs/extending.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

KIND_MODULES = (
    "eventvol.research.studies.kinds.event_study",
    "eventvol.research.studies.kinds.regression",
    "eventvol.research.studies.kinds.regime_test",
    "eventvol.research.studies.kinds.mechanisms",
)


@dataclass(frozen=True)
class StudyKind:
    """A registered study kind.

    name: the `kind` value in hypothesis files; run(data, spec, options) -> dict with at
    least `primary` (see the module docstring); tables: TOML table name -> the keys it may
    hold; keys: extra top-level keys (e.g. `regressors`); validate(spec, where): optional
    extra checks raising `SpecError`; options are run-time inputs such as `events_file`.
    """

    name: str
    run: Callable[..., dict]
    tables: dict[str, frozenset]
    keys: frozenset = frozenset()
    validate: Callable | None = None
    description: str = ""


@dataclass(frozen=True)
class MechanismEstimator:
    """A registered mechanism estimator: run(data, spec, params) -> test dict (name,
    estimate, ci_low, ci_high, p_value, n, ...; a `frame` key, one row per observation, is
    taken out into StudyResult.frame); params: the `[mechanism]` keys it reads besides
    estimator / truth / truth_minus; frame(result) optionally builds that frame from the
    result instead."""

    name: str
    run: Callable[..., dict]
    params: frozenset = frozenset()
    description: str = ""
    frame: Callable[[dict], pd.DataFrame] | None = None


KINDS: dict[str, StudyKind] = {}
MECHANISMS: dict[str, MechanismEstimator] = {}


def register_kind(name: str, run: Callable[..., dict], *, tables: dict[str, Iterable[str]],
                  keys: Iterable[str] = (), validate: Callable | None = None, description: str = "") -> StudyKind:
    """Register (or replace, when a module is reloaded) the study kind `name`."""
    kind = StudyKind(name, run, {k: frozenset(v) for k, v in tables.items()}, frozenset(keys), validate, description)
    KINDS[name] = kind
    return kind


def register_mechanism(name: str, run: Callable[..., dict], *, params: Iterable[str] = (), description: str = "",
                       frame: Callable[[dict], pd.DataFrame] | None = None) -> MechanismEstimator:
    """Register (or replace) the mechanism estimator `name`."""
    est = MechanismEstimator(name, run, frozenset(params), description, frame)
    MECHANISMS[name] = est
    return est


def load_kinds() -> dict[str, StudyKind]:
    """Import the built-in plug-in modules so that both registries are complete."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    return KINDS


def estimate_dict(name: str, estimate: float, ci_low: float, ci_high: float, p_value: float, n: int,
              **extra: Any) -> dict:
    """The shape every primary or mechanism test returns."""
    return {"name": name, "estimate": float(estimate), "ci_low": float(ci_low), "ci_high": float(ci_high),
            "p_value": float(p_value), "n": int(n), **extra}
