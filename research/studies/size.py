"""Size and power of each hypothesis's counted test on the synthetic market, from in-memory
tables (`data_lake.synthetic.simulate`) through the same `run_hypothesis` the CLI and the
report use, over a `MemoryData`: no lake is built and no hypothesis is known by name here.

A hypothesis file's `[synthetic] off` names the `SyntheticConfig` fields that switch its
planted effect off (files without one are not measured), `[synthetic] null_params` optional
mechanism parameters for the null run, and `[test] counted` the test that is counted.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from eventvol.research.studies.data import MemoryData
from eventvol.research.studies.registry import run_hypothesis
from eventvol.research.studies.spec import HypothesisSpec, SpecError


def measurable(specs: dict[str, HypothesisSpec]) -> dict[str, HypothesisSpec]:
    """The hypotheses whose planted effect can be switched off (`[synthetic] off`)."""
    return {n: s for n, s in specs.items() if s.section("synthetic").get("off")}


def off_config(config, spec: HypothesisSpec):
    """`config` (a SyntheticConfig) with the hypothesis's planted effect switched off; a field
    the simulator does not have is refused naming the file and the key."""
    off = spec.section("synthetic")["off"]
    fields = {f.name for f in dataclasses.fields(config)}
    for key in off:
        if key not in fields:
            raise SpecError(f"hypothesis file {spec.file} [synthetic] off names {key!r}, which is not a SyntheticConfig field")
    return dataclasses.replace(config, **off)


def null_spec(spec: HypothesisSpec) -> HypothesisSpec:
    """The spec used on effect-off markets: `[synthetic] null_params` merged into [mechanism]."""
    params = spec.section("synthetic").get("null_params")
    return spec.with_overrides(mechanism=params) if params else spec


def synthetic_data(tables: dict) -> MemoryData:
    """A MemoryData over simulated tables, with the factors the built-in hypotheses read
    computed on demand by the pipelines' own pure code (GEX/VEX from the option quotes,
    leveraged-ETF flows from bars and funds)."""
    cache: dict = {}

    def gex(name):
        def build():
            if "gex" not in cache:
                from eventvol.pipelines.positioning import gex_factor_rows

                q = tables["option_quotes"].sort_by([("underlying", "ascending"), ("trade_date", "ascending")])
                cache["gex"] = gex_factor_rows(q)
            f = cache["gex"]
            return f[f["factor"] == name]
        return build

    def letf():
        from eventvol.pipelines.crosssection import common as cx
        from eventvol.pipelines.crosssection.letf import rebalance_flows

        bars = tables["bars"]
        panel = cx.pivot(bars["trade_date"].to_numpy(), bars["symbol"].to_numpy(), bars["close"].to_numpy())
        rows = rebalance_flows(tables["letf_funds"], panel, panel.dates[0].astype(object), panel.dates[-1].astype(object))
        return rows[rows["factor"] == "letf_rebalance_flow_usd"]

    factors = {"net_gex_per_1pct": gex("net_gex_per_1pct"), "net_vex_per_volpt": gex("net_vex_per_volpt")}
    if "letf_funds" in tables:
        factors["letf_rebalance_flow_usd"] = letf
    return MemoryData(tables, factors)


def result_of(spec: HypothesisSpec, tables: dict, *, null: bool = False) -> dict | None:
    """The counted test of `spec` on one simulated market: estimate, ci_low, ci_high,
    p_value, null (the estimate under no effect) and, when the market's truth table has the planted value the file names, `truth`
    and `covered`. `null=True` applies `[synthetic] null_params`. None when not evaluable."""
    r = run_hypothesis(synthetic_data(tables), null_spec(spec) if null else spec)
    if not r.evaluable:
        return None
    out = {"estimate": r.estimate, "ci_low": r.ci_low, "ci_high": r.ci_high, "p_value": r.p_value,
           "null": r.null_value}
    if r.truth is not None:
        out["truth"] = r.truth
        out["covered"] = bool(r.covered)
    return out


def coverage_summary(results: list, key: str = "covered") -> dict:
    """Share of evaluable samples whose interval covers the planted value (`key`)."""
    cov = [r[key] for r in results if r is not None and key in r]
    k, n = sum(cov), len(cov)
    lo, hi = clopper_pearson(k, n) if n else (float("nan"), float("nan"))
    return {"rate": k / n if n else None, "covered": k, "evaluable": n, "ci95": [lo, hi]}


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a binomial proportion k / n."""
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def rejection_summary(p_values: list, alpha: float = 0.05) -> dict:
    """Rejections at `alpha` over the evaluable samples, with a Clopper-Pearson interval."""
    p = np.array([np.nan if v is None else v for v in p_values], float)
    ok = np.isfinite(p)
    k, n = int((p[ok] < alpha).sum()), int(ok.sum())
    lo, hi = clopper_pearson(k, n) if n else (float("nan"), float("nan"))
    return {"rate": k / n if n else None, "rejections": k, "evaluable": n, "samples": len(p), "ci95": [lo, hi]}


def sample_needed(observed_power: float, alpha: float = 0.05, target: float = 0.8) -> float | None:
    """How many times the current sample a test needs to reach `target` power, from the power
    it shows now (rejections with the effect on / markets). For a two-sided test whose
    statistic is about normal with mean delta (sign ignored), power = Phi(delta - z_{1-alpha/2}),
    so delta = z_{1-alpha/2} + Phi^-1(power); delta grows with the square root of the sample,
    so the factor is ((z_{1-alpha/2} + z_target) / delta)^2. None at a power of 0 or 1 (not
    identified from the count)."""
    if not 0.0 < observed_power < 1.0:
        return None
    z = stats.norm.ppf(1 - alpha / 2)
    delta = z + stats.norm.ppf(observed_power)
    if delta <= 0:
        return None
    return float(((z + stats.norm.ppf(target)) / delta) ** 2)
