"""A hypothesis as declared in one TOML file: `HypothesisSpec`, and `load_hypotheses`.

A file names its study `kind` (a registered plug-in, research/studies/kinds/) and fills the
tables that kind declares; a `[mechanism]` table names a registered mechanism estimator and
its parameters. Keys nobody declared are refused with the file and the key named, so a typo
(`car_windw`) fails loudly instead of silently running the default.

`plugins = ["my_package.my_kind"]` (top level) imports modules before the file is checked,
so a hypothesis can use a kind or estimator that lives outside eventvol (docs/extending.md).

Tables every kind accepts:
- `[test]`: `expected` ("positive", "negative" or "two-sided"), `coefficient` (regressions),
  `counted` ("primary" or "mechanism": the test that gives the verdict, the p-value adjusted
  across hypotheses and the one the size study counts; default "primary").
- `[truth]`: `value`, `minus`, `scale`: the planted value of the primary estimate in the
  lake's `truth` table (synthetic market).
- `[mechanism]`: `estimator`, `truth`, `truth_minus` and the estimator's own parameters.
- `[report]`: `unit` (of the counted estimate, in words), `label` (what the estimate is, in
  words), `scale` (multiply the estimate by this to read it in `unit`), `trades` (true: the
  earnings-straddle trades are shown beside this study).
- `[synthetic]`: `off`, the `SyntheticConfig` fields that switch the planted effect behind
  the hypothesis off (the size study), and `null_params`, mechanism parameters used when
  measuring size (e.g. a looser detector so that the null test is not vacuous).
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eventvol.data_lake.errors import EventvolError, NoDataError

HYPOTHESES = Path(__file__).resolve().parents[1] / "hypotheses"
REQUIRED = ("name", "title", "kind", "claim")
EXPECTED = ("positive", "negative", "two-sided")
COMMON_TABLES: dict[str, frozenset] = {
    "test": frozenset({"expected", "coefficient", "counted"}),
    "truth": frozenset({"value", "minus", "scale"}),
    "mechanism": frozenset({"estimator", "truth", "truth_minus"}),
    "report": frozenset({"unit", "label", "scale", "trades"}),
    "synthetic": frozenset({"off", "null_params"}),
}


class SpecError(EventvolError):
    """A hypothesis file is unreadable or declares something no plug-in understands."""


class NotEvaluable(NoDataError):
    """The data a hypothesis needs are missing; becomes its status ("not evaluable: ...")."""


@dataclass(frozen=True)
class HypothesisSpec:
    """One declared hypothesis. `tables` holds every TOML table and extra top-level key the
    kind declares (e.g. `events`, `outcome`, `condition`, `regressors`), already validated."""

    name: str
    title: str
    claim: str
    kind: str
    file: str = ""
    tables: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A table (dict) or extra top-level value, `default` when the file has none."""
        return self.tables.get(key, default)

    def section(self, key: str) -> dict:
        """A table as a dict ({} when absent)."""
        return dict(self.tables.get(key) or {})

    @property
    def expected(self) -> str:
        """Declared direction of the counted estimate: positive, negative or two-sided."""
        return self.section("test").get("expected", "positive")

    @property
    def counted(self) -> str:
        """Which test gives the verdict: "primary" or "mechanism"."""
        return self.section("test").get("counted", "primary")

    @property
    def mechanism(self) -> dict | None:
        return self.section("mechanism") or None

    def with_overrides(self, **tables: dict) -> HypothesisSpec:
        """A copy with keys of some tables replaced, e.g. `with_overrides(test={"expected":
        "negative"}, outcome={"car_window": [0, 5]})` (a table is merged key by key, any
        other value replaced); validated like the file."""
        new = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in self.tables.items()}
        for table, values in tables.items():
            new[table] = {**dict(new.get(table) or {}), **values} if isinstance(values, Mapping) else values
        raw = {"name": self.name, "title": self.title, "claim": self.claim, "kind": self.kind, **new}
        return parse_spec(raw, self.file or "<overrides>")

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "claim": self.claim, "kind": self.kind,
                "file": self.file, **{k: v for k, v in self.tables.items()}}


def parse_spec(raw: Mapping[str, Any], where: str) -> HypothesisSpec:
    """Validate a parsed TOML document against the registered kinds and estimators."""
    from eventvol.research.studies.kinds import KINDS, MECHANISMS, load_kinds

    load_kinds()
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(m, str) for m in plugins):
        raise SpecError(f"hypothesis file {where} key 'plugins' must be a list of module names")
    for module in plugins:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise SpecError(f"hypothesis file {where} names the plugin module {module!r}, which cannot be imported ({exc})") from None
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise SpecError(f"hypothesis file {where} lacks the key {missing[0]!r}")
    for k in REQUIRED:
        if not isinstance(raw[k], str) or not raw[k].strip():
            raise SpecError(f"hypothesis file {where} key {k!r} must be a non-empty string")
    kind = KINDS.get(raw["kind"])
    if kind is None:
        raise SpecError(f"hypothesis file {where} has unknown kind {raw['kind']!r}; use one of {', '.join(KINDS)}")
    allowed_tables = {**COMMON_TABLES, **kind.tables}
    tables = {}
    for key, value in raw.items():
        if key in REQUIRED:
            continue
        if key in kind.keys or key == "plugins":
            tables[key] = value
            continue
        if key not in allowed_tables:
            raise SpecError(f"hypothesis file {where} has unknown key {key!r} for kind {kind.name!r} "
                            f"(known: {', '.join(sorted(set(allowed_tables) | set(kind.keys)))})")
        allowed = set(allowed_tables[key])
        if key == "mechanism":
            est = MECHANISMS.get(value.get("estimator")) if isinstance(value, Mapping) else None
            if est is None:
                raise SpecError(f"hypothesis file {where} table [mechanism] names unknown estimator "
                                f"{value.get('estimator') if isinstance(value, Mapping) else value!r}; "
                                f"use one of {', '.join(MECHANISMS)}")
            allowed |= set(est.params)
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, Mapping):
                raise SpecError(f"hypothesis file {where} key {key!r} must be a table")
            for sub in item:
                if sub not in allowed:
                    raise SpecError(f"hypothesis file {where} has unknown key {sub!r} in [{key}] "
                                    f"(known: {', '.join(sorted(allowed))})")
        tables[key] = [dict(v) for v in value] if isinstance(value, list) else dict(value)
    test = tables.get("test", {})
    if test.get("expected", "positive") not in EXPECTED:
        raise SpecError(f"hypothesis file {where} [test] expected must be one of {', '.join(EXPECTED)}, "
                        f"not {test.get('expected')!r}")
    if test.get("counted", "primary") not in ("primary", "mechanism"):
        raise SpecError(f"hypothesis file {where} [test] counted must be 'primary' or 'mechanism'")
    if test.get("counted") == "mechanism" and "mechanism" not in tables:
        raise SpecError(f"hypothesis file {where} counts the mechanism test but has no [mechanism] table")
    spec = HypothesisSpec(raw["name"], raw["title"], raw["claim"], raw["kind"], Path(where).name, tables)
    if kind.validate:
        kind.validate(spec, where)
    return spec


def read_spec(path: Path) -> HypothesisSpec:
    """One hypothesis file."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"hypothesis file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SpecError(f"hypothesis file {path} cannot be read: {exc.strerror}") from None
    return parse_spec(raw, str(path))


def load_hypotheses(folder: Path | str = HYPOTHESES) -> dict[str, HypothesisSpec]:
    """Every `*.toml` in `folder`, keyed by its `name`, in file-name order; a name used twice
    is refused."""
    out: dict[str, HypothesisSpec] = {}
    for path in sorted(Path(folder).glob("*.toml")):
        spec = read_spec(path)
        if spec.name in out:
            raise SpecError(f"hypothesis file {path} reuses the name {spec.name!r} of {out[spec.name].file}")
        out[spec.name] = spec
    return out


def user_overrides(spec: HypothesisSpec, expected: str | None = None,
                   car_window: tuple[int, int] | list[int] | None = None) -> HypothesisSpec:
    """The spec with a user's expected direction ("positive", "negative", "two-sided") and,
    for an event study, CAR window (first, last session relative to the event; the event
    window widens to hold it), e.g. for H6's own event list. Unchanged when both are None."""
    if expected is None and car_window is None:
        return spec
    tables: dict = {}
    if expected is not None:
        tables["test"] = {"expected": expected}
    if car_window is not None:
        if spec.kind != "event_study":
            raise SpecError(f"a CAR window applies to event studies; {spec.name} is a {spec.kind}")
        first, last = (int(x) for x in car_window)
        win = spec.section("outcome").get("window", [-5, 5])
        tables["outcome"] = {"car_window": [first, last], "window": [min(win[0], first), max(win[1], last)]}
    return spec.with_overrides(**tables)
