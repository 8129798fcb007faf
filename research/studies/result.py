"""`StudyResult`: what one hypothesis run returns, to the CLI, the report, the size study and
the Python API (`eventvol.study`).

The headline numbers (`estimate`, `ci_low`, `ci_high`, `p_value`, `verdict`) are those of
the *counted* test the hypothesis file names (`[test] counted`, the primary test by default),
so the verdict, the Benjamini-Hochberg adjustment and the size study all judge the same test.
`details` keeps everything the kind computed (CAAR path, regimes, regression table, the
mechanism estimate) in the JSON shape the report template reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

NAN = float("nan")


@dataclass
class StudyResult:
    """One hypothesis run.

    estimate, ci_low, ci_high: the counted estimate and its 95% interval, in the unit of the
    tested quantity (`unit` after multiplying by `scale`); p_value: its two-sided p-value;
    verdict: "held" (p < 5% with the expected sign), "not held" or "not evaluable";
    counted_test: the name of that test; label: what the estimate is, in words;
    frame: one row per event or observation the test used (empty when not evaluable);
    p_bh: Benjamini-Hochberg adjusted p-value over a `run_all` batch (None otherwise);
    truth / covered: the planted value (synthetic lakes) and whether the interval covers it;
    null_value: the estimate under no effect (0 for differences, 1 for ratios).
    """

    name: str
    title: str
    claim: str
    kind: str
    status: str
    estimate: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    p_value: float = NAN
    expected: str = "positive"
    counted_test: str = ""
    label: str = ""
    unit: str = ""
    scale: float = 1.0
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    details: dict = field(default_factory=dict)
    p_bh: float | None = None
    truth: float | None = None
    covered: bool | None = None
    shows_trades: bool = False
    null_value: float = 0.0

    @property
    def evaluable(self) -> bool:
        return self.status == "ok"

    @property
    def held(self) -> bool:
        """Significant at 5% (two-sided) with the expected sign ("two-sided": any sign)."""
        if not self.evaluable or not math.isfinite(self.p_value):
            return False
        sign_ok = {"positive": self.estimate > self.null_value,
                   "negative": self.estimate < self.null_value}.get(self.expected, True)
        return bool(self.p_value < 0.05 and sign_ok)

    @property
    def verdict(self) -> str:
        if not self.evaluable:
            return "not evaluable"
        return "held" if self.held else "not held"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the kind's details (`primary`, `tests`, `mechanism`, ...) plus the
        headline fields."""
        out = {"name": self.name, "title": self.title, "claim": self.claim, "kind": self.kind,
               "status": self.status, "evaluable": self.evaluable}
        out.update(self.details)
        out.update({"estimate": _num(self.estimate), "ci_low": _num(self.ci_low), "ci_high": _num(self.ci_high),
                    "p_value": _num(self.p_value), "expected": self.expected, "held": self.held,
                    "verdict": self.verdict, "counted_test": self.counted_test, "label": self.label,
                    "unit": self.unit, "scale": self.scale, "null_value": self.null_value, "p_bh": self.p_bh, "shows_trades": self.shows_trades})
        if self.truth is not None:
            out["counted_truth"] = {"value": self.truth, "covered": self.covered}
        return out

    def __repr__(self) -> str:
        return (f"StudyResult({self.name}: {self.verdict}, {self.counted_test or 'no test'} "
                f"{self.estimate:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}], p={self.p_value:.3g})")


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)
