"""Size and power of each hypothesis's test on the synthetic market, from in-memory tables
(`data_lake.synthetic.simulate`) through the registry's pure code paths: no lake is built.

`OFF[name]` is the `SyntheticConfig` override that switches the planted effect behind a
hypothesis off; `p_value_of(name, tables, specs)` is the p-value of the test counted as a
rejection: the primary test for H2, H4 and H7 (the registry's own `event_study_frames` /
`regression_frames`), the mechanism test for H1 (session vol ratio), H3 (rebound crash
frequency) and H5 (squeeze follow-through), whose primary regressions need factor families
(dispersion percentiles over 3 years, comomentum, call gamma) that the synthetic market's
two years cannot feed. None when the test is not evaluable on that sample.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from scipy import stats

from eventvol.research.studies import data as D
from eventvol.research.studies import mechanisms as MX
from eventvol.research.studies.registry import (
    NotEvaluable,
    event_study_frames,
    planted_value,
    regression_frames,
    session_vol_ratio_frames,
)

OFF: dict[str, dict] = {
    "H1": {"vol_mult_negative_gex": 1.0, "vol_mult_positive_gex": 1.0,
           "gap_continuation_negative_gex": 0.0, "gap_continuation_positive_gex": 0.0},
    "H2": {"vanna_drift_low_vex": 0.0, "vanna_drift_high_vex": 0.0},
    "H3": {"crash_hazard_rebound": 0.0},
    "H4": {"letf_impact_per_billion": 0.0},
    "H5": {"squeeze_jump_lo": 0.0, "squeeze_jump_hi": 0.0},
    "H7": {"disclosure_daily_lo": 0.0, "disclosure_daily_hi": 0.0},
}
TESTED = {"H1": "mechanism: session vol ratio", "H2": "primary: Welch on/off", "H3": "mechanism: rebound crash frequency",
          "H4": "primary: HAC coefficient", "H5": "mechanism: squeeze follow-through", "H7": "primary: CAR t-test"}


def events_frame(events: pd.DataFrame) -> pd.DataFrame:
    """The simulator's events as `data.load_events` returns them (parsed payload, sorted)."""
    ev = events.copy()
    ev["payload_obj"] = [json.loads(p) if isinstance(p, str) and p else {} for p in ev["payload"]]
    ev["reaction_session"] = pd.to_datetime(ev["reaction_session"])
    return ev.sort_values(["reaction_session", "event_id"], kind="stable").reset_index(drop=True)


def _gex_frame(tables: dict, factor: str) -> pd.DataFrame:
    from eventvol.pipelines.positioning import gex_factor_rows

    q = tables["option_quotes"].sort_by([("underlying", "ascending"), ("trade_date", "ascending")])
    f = gex_factor_rows(q)
    f = f[f["factor"] == factor][["trade_date", "entity", "value"]].copy()
    f["trade_date"] = pd.to_datetime(f["trade_date"])
    return f.sort_values(["entity", "trade_date"], kind="stable").reset_index(drop=True)


def _letf_frame(tables: dict) -> pd.DataFrame:
    from eventvol.pipelines.crosssection import common as cx
    from eventvol.pipelines.crosssection.letf import rebalance_flows

    bars = tables["bars"]
    panel = cx.pivot(bars["trade_date"].to_numpy(), bars["symbol"].to_numpy(), bars["close"].to_numpy())
    rows = rebalance_flows(tables["letf_funds"], panel, panel.dates[0].astype(object), panel.dates[-1].astype(object))
    f = rows[rows["factor"] == "letf_rebalance_flow_usd"][["trade_date", "entity", "value"]].copy()
    f["trade_date"] = pd.to_datetime(f["trade_date"])
    return f.sort_values(["entity", "trade_date"], kind="stable").reset_index(drop=True)


def result_of(name: str, tables: dict, specs: dict) -> dict | None:
    """The test counted for `name` on one simulated market (see the module docstring):
    estimate, ci_low, ci_high, p_value, and `truth` (the planted value the hypothesis file
    names, from the market's truth table) with `covered`. None when not evaluable."""
    index = str(tables["index_members"]["index"].iloc[0])
    spec = specs[name]
    try:
        if name in ("H3", "H5"):
            mech = spec["mechanism"]
            close = MX.close_panel(tables["bars"][["trade_date", "symbol", "close"]])
            stocks = close.drop(columns=[index])
            skip = MX.event_skip(tables["events"], close.index, stocks.columns)
            if name == "H3":
                res = MX.rebound_crash_rates(stocks, close[index], skip, k=float(mech.get("k", 3.0)))
            else:
                res = MX.squeeze_followthrough(stocks, close[index], tables["short_interest"], skip,
                                               threshold=float(mech.get("threshold", 0.10)), k=float(mech.get("k", 3.0)))
        else:
            rets = D.returns_from_bars(tables["bars"][["trade_date", "symbol", "close"]])
            ev = events_frame(tables["events"])
            if name == "H1":
                mech = spec["mechanism"]
                earn = ev[ev["kind"] == "earnings"]
                res = session_vol_ratio_frames(_gex_frame(tables, "net_gex_per_1pct"), rets, rets[index].rename(index), earn)
            elif name == "H4":
                res = regression_frames(spec, {"letf_rebalance_flow_usd": _letf_frame(tables)}, rets, index)["primary"]
            elif name in ("H2", "H7"):
                sub = ev[ev["kind"].isin(spec["events"]["kinds"])].reset_index(drop=True)
                vex = _gex_frame(tables, "net_vex_per_volpt") if name == "H2" else None
                res = event_study_frames(spec, sub, rets, index, lambda _: vex)["primary"]
            else:
                raise KeyError(f"no size test for {name}")
    except NotEvaluable:
        return None
    out = {k: float(res[k]) for k in ("estimate", "ci_low", "ci_high", "p_value")}
    truth = _planted(tables["truth"], spec["mechanism"] if name in ("H1", "H3", "H5") else spec.get("truth"))
    if truth is not None:
        out["truth"] = truth
        out["covered"] = bool(out["ci_low"] <= truth <= out["ci_high"])
    if name == "H1":
        # H1's file compares with its sample estimand; the structural close-to-close ratio
        # (vol multiplier x gap continuation) is reported beside it
        cc = _planted(tables["truth"], {"value": ["gex_feedback", "close_to_close_vol_ratio_negative_over_positive"]})
        if cc is not None:
            out["truth_close_to_close"] = cc
            out["covered_close_to_close"] = bool(out["ci_low"] <= cc <= out["ci_high"])
    return out


def _planted(truth: pd.DataFrame, tspec: dict | None) -> float | None:
    """The planted value a hypothesis's `[truth]` (value / minus / scale) or `[mechanism]`
    (truth / truth_minus) names, from in-memory truth rows (`registry.planted_value`)."""
    if not tspec:
        return None
    t = truth.set_index(["mechanism", "parameter"])["value"]
    return planted_value(lambda m, p: float(t[(m, p)]) if (m, p) in t.index else None,
                         tspec.get("truth") or tspec.get("value"), tspec.get("truth_minus") or tspec.get("minus"),
                         tspec.get("scale", 1.0))


def p_value_of(name: str, tables: dict, specs: dict) -> float | None:
    """p-value of the test counted for `name`; None when not evaluable."""
    r = result_of(name, tables, specs)
    return None if r is None else r["p_value"]


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
