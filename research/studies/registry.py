"""Running declared hypotheses: one TOML file per hypothesis (research/studies/spec.py),
one plug-in per study kind and mechanism estimator (research/studies/kinds/), over a
`StudyData` (a lake or in-memory tables). Nothing here knows a hypothesis by name.

`run_hypothesis` runs the kind's primary test and, when the file has a `[mechanism]` table,
the mechanism estimator; the test named by `[test] counted` gives the `StudyResult`'s
headline numbers and verdict. A part whose data are missing reports "not evaluable:
<reason>" instead of failing; the hypothesis is evaluable when its counted test is.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from eventvol.research.studies import stats as S
from eventvol.research.studies.data import LakeData, StudyData
from eventvol.research.studies.kinds import KINDS, MECHANISMS, load_kinds
from eventvol.research.studies.result import StudyResult
from eventvol.research.studies.spec import HYPOTHESES, HypothesisSpec, NotEvaluable, SpecError, load_hypotheses

__all__ = ["HYPOTHESES", "HypothesisSpec", "NotEvaluable", "SpecError", "StudyResult", "load_hypotheses",
           "planted_value", "run_all", "run_hypothesis", "study_data"]


def study_data(source) -> StudyData:
    """A StudyData from a Lake (or one passed through)."""
    return source if isinstance(source, StudyData) else LakeData(source)


def run_hypothesis(source, spec: HypothesisSpec, *, events_file=None) -> StudyResult:
    """Run one hypothesis on a lake or a StudyData; never raises NotEvaluable (it becomes
    the result's status)."""
    load_kinds()
    data = study_data(source)
    details: dict = {}
    mech_frame = None
    mech_spec = spec.mechanism
    if mech_spec:
        params = {k: v for k, v in mech_spec.items() if k not in ("estimator", "truth", "truth_minus")}
        try:
            m = MECHANISMS[mech_spec["estimator"]].run(data, spec, params)
            mech_frame = m.pop("frame", None)
            tv = planted_value(data.truth, mech_spec.get("truth"), mech_spec.get("truth_minus"))
            if tv is not None:
                m["truth"] = tv
                m["truth_covered"] = bool(m["ci_low"] <= tv <= m["ci_high"])
            details["mechanism"] = m
        except NotEvaluable as exc:
            details["mechanism_status"] = f"not evaluable: {exc}"
    frame = pd.DataFrame()
    try:
        res = KINDS[spec.kind].run(data, spec, {"events_file": events_file})
        frame = res.pop("frame", frame)
        details.update(res)
        tspec = spec.section("truth")
        if tspec:
            tv = planted_value(data.truth, tspec["value"], tspec.get("minus"), tspec.get("scale", 1.0))
            if tv is not None:
                p = res["primary"]
                details["truth"] = {"value": tv, "covered": bool(p["ci_low"] <= tv <= p["ci_high"]),
                                    "source": " - ".join("/".join(x) for x in [tspec["value"], tspec.get("minus")] if x)}
    except NotEvaluable as exc:
        details["primary_status"] = f"not evaluable: {exc}"
    return _result(spec, details, frame, mech_frame)


def _result(spec: HypothesisSpec, details: dict, frame: pd.DataFrame, mech_frame: pd.DataFrame | None) -> StudyResult:
    rep = spec.section("report")
    base = dict(name=spec.name, title=spec.title, claim=spec.claim, kind=spec.kind, expected=spec.expected,
                unit=rep.get("unit", ""), scale=float(rep.get("scale", 1.0)), shows_trades=bool(rep.get("trades", False)))
    counted_key = "mechanism" if spec.counted == "mechanism" else "primary"
    test = details.get(counted_key)
    if test is None:
        status = details.get(f"{counted_key}_status", "not evaluable: no result")
        return StudyResult(status=status, details=details, **base)
    if spec.counted == "mechanism":
        truth, covered = test.get("truth"), test.get("truth_covered")
        est = MECHANISMS[spec.mechanism["estimator"]]
        if mech_frame is not None:
            frame = mech_frame
        elif est.frame is not None:
            frame = est.frame(test)
    else:
        t = details.get("truth") or {}
        truth, covered = t.get("value"), t.get("covered")
    return StudyResult(status="ok", estimate=float(test["estimate"]), ci_low=float(test["ci_low"]),
                       ci_high=float(test["ci_high"]), p_value=float(test["p_value"]),
                       counted_test=test["name"], null_value=float(test.get("null", 0.0)), label=rep.get("label", test["name"]), frame=frame,
                       details=details, truth=truth, covered=covered, **base)


def planted_value(lookup, value, minus=None, scale: float = 1.0) -> float | None:
    """scale * (truth[value] - truth[minus]) with `lookup(mechanism, parameter)` returning a
    truth row's value or None; None when a row is missing (real data) or `value` is empty.
    The one definition behind `[truth]` (value / minus / scale) and `[mechanism]` (truth /
    truth_minus)."""
    if not value:
        return None
    v = lookup(*value)
    if v is None:
        return None
    if minus:
        m = lookup(*minus)
        if m is None:
            return None
        v -= m
    return v * float(scale)


def run_all(source, specs: dict[str, HypothesisSpec], *, events_file=None, progress=None) -> list[StudyResult]:
    """Run every hypothesis and set Benjamini-Hochberg adjusted p-values of the counted tests
    (over the evaluable ones)."""
    data = study_data(source)
    results = []
    for name, spec in specs.items():
        if progress:
            progress(name)
        results.append(run_hypothesis(data, spec, events_file=events_file))
    p = np.array([r.p_value if r.evaluable else np.nan for r in results])
    for r, a in zip(results, S.benjamini_hochberg(p)):
        r.p_bh = float(a) if math.isfinite(a) else None
    return results
