"""Study kind `regression`: an outcome over the next `horizon` sessions regressed on factor
values at t (and their product when `interaction = true`), Newey-West HAC errors; the primary
test is the coefficient `[test] coefficient` (default the last regressor, or the interaction).

Top-level keys: regressors (factor names), interaction. [outcome] factor (the outcome is a
factor, else the close-to-close return), entity ("index" | "each" | a symbol), horizon,
transform ("upside_jump": 1 when the next return exceeds 2 trailing sds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eventvol.research.studies import data as D
from eventvol.research.studies import stats as S
from eventvol.research.studies.kinds import register_kind
from eventvol.research.studies.spec import HypothesisSpec, NotEvaluable, SpecError


def run(data: D.StudyData, spec: HypothesisSpec, options: dict | None = None) -> dict:
    out_spec, regs = spec.section("outcome"), list(spec.get("regressors"))
    needed = regs + ([out_spec["factor"]] if "factor" in out_spec else [])
    data.require_factors(needed)
    mkt = data.market_symbol()
    frames = {n: data.factor(n) for n in needed}
    return regression_frames(spec, frames, None if "factor" in out_spec else data.returns(), mkt)


def validate(spec: HypothesisSpec, where: str) -> None:
    regs = spec.get("regressors")
    if not regs or not isinstance(regs, list) or not all(isinstance(r, str) for r in regs):
        raise SpecError(f"hypothesis file {where} needs regressors = [factor names]")
    if spec.get("interaction") and len(regs) != 2:
        raise SpecError(f"hypothesis file {where} interaction = true needs exactly two regressors")
    coef = spec.section("test").get("coefficient")
    names = regs + ([f"{regs[0]} x {regs[1]}"] if spec.get("interaction") else [])
    if coef is not None and coef not in names:
        raise SpecError(f"hypothesis file {where} [test] coefficient {coef!r} is not one of {', '.join(names)}")


def regression_frames(spec: HypothesisSpec, frames: dict[str, pd.DataFrame], rets: pd.DataFrame | None, mkt: str) -> dict:
    """Pure part of `run`: factor rows per needed factor name, the returns panel (None when
    the outcome is a factor) and the market symbol -> the result."""
    out_spec, regs = spec.section("outcome"), list(spec.get("regressors"))
    h = int(out_spec.get("horizon", 1))
    entity = out_spec.get("entity", "index")
    if "factor" in out_spec:
        y_wide = frames[out_spec["factor"]].pivot(index="trade_date", columns="entity", values="value")
    else:
        y_wide = rets
    ent_list = [mkt] if entity == "index" else [c for c in y_wide.columns if c != mkt]
    if entity not in ("index", "each"):
        ent_list = [entity]
    rows = []
    for e in ent_list:
        if e not in y_wide.columns:
            continue
        yv = y_wide[e]
        fwd = yv.shift(-1).rolling(h).sum().shift(-(h - 1)) if h > 1 else yv.shift(-1)
        if out_spec.get("transform") == "upside_jump":
            sd = yv.rolling(60, min_periods=20).std().shift(1)
            fwd = (yv.shift(-1) > 2 * sd).astype(float).where(sd.notna())
        x = {}
        for n in regs:
            f = frames[n]
            fe = e if e in set(f["entity"]) else (mkt if mkt in set(f["entity"]) else f["entity"].iloc[0])
            x[n] = D.value_as_of(f, np.full(len(yv), fe), yv.index.to_numpy())
        rows.append(pd.DataFrame({"y": fwd.to_numpy(), **x, "entity": e, "date": yv.index}))
    if not rows:
        raise NotEvaluable("no outcome series for the requested entity")
    df = pd.concat(rows, ignore_index=True).dropna()
    if len(df) < 30:
        raise NotEvaluable(f"only {len(df)} observations with outcome and regressors")
    cols, names = [np.ones(len(df))], ["const"]
    for n in regs:
        cols.append(df[n].to_numpy())
        names.append(n)
    if spec.get("interaction") and len(regs) == 2:
        cols.append(df[regs[0]].to_numpy() * df[regs[1]].to_numpy())
        names.append(f"{regs[0]} x {regs[1]}")
    reg = S.ols(df["y"].to_numpy(), np.column_stack(cols), names, cov="HAC")
    key = spec.section("test").get("coefficient", names[-1])
    i = names.index(key)
    primary = {"name": f"coefficient on {key} (HAC)", "estimate": float(reg.coef[i]), "stat": float(reg.t[i]),
               "p_value": float(reg.p[i]), "ci_low": float(reg.ci_low[i]), "ci_high": float(reg.ci_high[i]), "n": reg.n}
    frame = pd.DataFrame({"coefficient": names, "estimate": reg.coef, "se": reg.se, "t": reg.t, "p_value": reg.p,
                          "ci_low": reg.ci_low, "ci_high": reg.ci_high})
    return {"n_obs": reg.n, "regression": reg.to_dict(), "primary": primary, "frame": frame}


register_kind("regression", run, tables={"outcome": {"factor", "entity", "horizon", "transform"}},
              keys=("regressors", "interaction"), validate=validate,
              description="outcome over the next sessions on factor values at t, Newey-West errors")
