"""The hypothesis registry: one declarative TOML file per hypothesis in research/hypotheses/,
run against a lake. A hypothesis whose events or factors are missing reports
"not evaluable: <reason>" instead of failing.

Two kinds of hypothesis:
- kind = "event_study": events (kinds from the lake, or a user CSV), market-model abnormal
  returns, CAR/CAAR with t, BMP and Corrado tests, a split by factor regime at the pre-event
  close with a Welch test of the difference (the primary test), and optionally the planted
  mechanism's session-level vol ratio compared with the lake's `truth` table.
- kind = "regression": an outcome over the next `horizon` sessions regressed on factor values
  at t (and their product when `interaction = true`), Newey-West HAC errors.

A `[mechanism]` table names an estimator of the planted mechanism behind a hypothesis
(`session_vol_ratio` for H1, `rebound_crash_rates` for H3, `squeeze_followthrough` for H5,
see research/studies/mechanisms.py) and the `truth` row (optionally minus `truth_minus`) its
interval is compared with.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake, NoDataError
from eventvol.research.studies import data as D
from eventvol.research.studies import stats as S

HYPOTHESES = Path(__file__).resolve().parents[1] / "hypotheses"
REQUIRED = ("name", "title", "kind", "claim")


class NotEvaluable(Exception):
    """Raised inside a runner when data for a hypothesis is missing; becomes its status."""


def load_hypotheses(folder: Path = HYPOTHESES) -> dict[str, dict]:
    """Every `*.toml` in `folder`, keyed by its `name`, in file-name order."""
    out = {}
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise NoDataError(f"hypothesis file {path} is not valid TOML: {exc}") from None
        missing = [k for k in REQUIRED if k not in spec]
        if missing:
            raise NoDataError(f"hypothesis file {path} lacks the key {missing[0]!r}")
        if spec["kind"] not in RUNNERS:
            raise NoDataError(f"hypothesis file {path} has unknown kind {spec['kind']!r}; use one of {', '.join(RUNNERS)}")
        spec["file"] = path.name
        out[spec["name"]] = spec
    return out


def run_hypothesis(lake: Lake, spec: dict, *, events_file=None) -> dict:
    """Run one hypothesis; returns a JSON-ready dict with `status` "ok" or "not evaluable: ..."."""
    base = {"name": spec["name"], "title": spec["title"], "claim": spec["claim"], "kind": spec["kind"]}
    extra = {}
    mech = spec.get("mechanism")
    if mech and mech.get("estimator") in LAKE_MECHANISMS:
        # the mechanism needs only bars, events and short interest: it is reported even when
        # the primary test's factors are missing; when it cannot run, `mechanism_status` says
        # why (the report and CLI expect a full `mechanism` or none)
        try:
            extra["mechanism"] = mechanism_truth(lake, mech, LAKE_MECHANISMS[mech["estimator"]](lake, mech))
        except NotEvaluable as exc:
            extra["mechanism_status"] = f"not evaluable: {exc}"
    try:
        res = RUNNERS[spec["kind"]](lake, spec, events_file=events_file)
    except NotEvaluable as exc:
        return {**base, "status": f"not evaluable: {exc}", "evaluable": False, **extra}
    res.update(extra)
    if spec.get("truth"):
        t = primary_truth(lake, spec["truth"], res["primary"])
        if t:
            res["truth"] = t
    return {**base, "status": "ok", "evaluable": True, **res}


def planted_value(lookup, value, minus=None, scale: float = 1.0) -> float | None:
    """scale * (truth[value] - truth[minus]) with `lookup(mechanism, parameter)` returning a
    truth row's value or None; None when a row is missing (real data). The one definition
    behind `[truth]` (value / minus / scale) and `[mechanism]` (truth / truth_minus)."""
    v = lookup(*value)
    if v is None:
        return None
    if minus:
        m = lookup(*minus)
        if m is None:
            return None
        v -= m
    return v * float(scale)


def primary_truth(lake: Lake, tspec: dict, primary: dict) -> dict | None:
    """The planted value of the primary estimate from the lake's `truth` table:
    scale * (value - minus), e.g. a drift difference or an impact per $1B scaled to per $.
    None when the lake has no such truth row (real data)."""
    v = planted_value(lambda m, p: D.truth_value(lake, m, p), tspec["value"], tspec.get("minus"),
                      tspec.get("scale", 1.0))
    if v is None:
        return None
    return {"value": v, "covered": bool(primary["ci_low"] <= v <= primary["ci_high"]),
            "source": " - ".join("/".join(x) for x in [tspec["value"], tspec.get("minus")] if x)}


def run_all(lake: Lake, specs: dict[str, dict], *, events_file=None, progress=None) -> list[dict]:
    """Run every hypothesis and add Benjamini-Hochberg adjusted p-values of the primary tests
    (over the evaluable ones)."""
    results = []
    for name, spec in specs.items():
        if progress:
            progress(name)
        results.append(run_hypothesis(lake, spec, events_file=events_file))
    p = np.array([r["primary"]["p_value"] if r.get("evaluable") else np.nan for r in results])
    adj = S.benjamini_hochberg(p)
    for r, a in zip(results, adj):
        r["p_bh"] = None if not np.isfinite(a) else float(a)
    return results


# ----------------------------------------------------------------------------- helpers
def _require_factors(lake: Lake, names) -> None:
    have = D.factor_names(lake)
    for n in names:
        if n not in have:
            raise NotEvaluable(f"factor {n!r} is not in the lake (materialize its family first)")


def _verdict(primary: dict, expected: str) -> bool:
    """Held: significant at 5% (two-sided) with the expected sign."""
    if not np.isfinite(primary.get("p_value", np.nan)):
        return False
    sign_ok = {"positive": primary["estimate"] > 0, "negative": primary["estimate"] < 0}.get(expected, True)
    return bool(primary["p_value"] < 0.05 and sign_ok)


def regime_labels(values: np.ndarray, cond: dict) -> np.ndarray:
    """'on' / 'off' / '' (unknown) per event from its conditioning value: split = "sign"
    means on = value < 0 (e.g. dealers short gamma); split = "threshold" means on = value >=
    `threshold`. The threshold is fixed in the file, never estimated from the sample, so a
    label uses nothing after its own decision time."""
    v = np.asarray(values, float)
    if cond.get("split", "sign") in ("sign", "below_trailing_median"):
        on = v < 0  # for the trailing median, values arrive already net of their median
    else:
        on = v >= float(cond["threshold"])
    return np.where(~np.isfinite(v), "", np.where(on, "on", "off"))


def event_returns(rets: pd.DataFrame, market: pd.Series, events: pd.DataFrame, entity: str):
    """(stock matrix T x N, market vector, day-0 row per event, kept events) on the session
    grid; events whose security or reaction session is not in the grid are left out."""
    idx = rets.index
    cols = events["symbol"].to_numpy() if entity == "symbol" else np.full(len(events), market.name)
    pos = idx.get_indexer(pd.to_datetime(events["reaction_session"]))
    ok = (pos >= 0) & np.isin(cols, rets.columns)
    ev = events.loc[ok].reset_index(drop=True)
    cols, pos = cols[ok], pos[ok]
    mat = rets[list(cols)].to_numpy() if len(cols) else np.empty((len(idx), 0))
    return mat, market.to_numpy(), pos, ev


# ----------------------------------------------------------------------------- event studies
def run_event_study(lake: Lake, spec: dict, *, events_file=None) -> dict:
    ev_spec = spec.get("events", {})
    cond = spec.get("condition")
    if ev_spec.get("source") == "file":
        path = events_file or ev_spec.get("file")
        if not path:
            raise NotEvaluable("no event list supplied (pass --events FILE with columns date,symbol[,name])")
        events = D.read_event_file(path)
    else:
        if not lake.files("events"):
            raise NotEvaluable("the lake has no events table")
        events = D.load_events(lake, ev_spec["kinds"])
    if events.empty:
        raise NotEvaluable(f"no events of kind {', '.join(ev_spec.get('kinds', ['user']))} in the lake")
    if cond:
        _require_factors(lake, [c["factor"] for c in _conditions(cond)])
    entity = ev_spec.get("entity", "symbol")
    mkt = D.market_symbol(lake)
    syms = set(events["symbol"].dropna()) | {mkt} if entity == "symbol" else {mkt}
    rets = D.returns_panel(lake, syms)
    res = event_study_frames(spec, events, rets, mkt, lambda name: D.factor_frame(lake, name))
    mech = spec.get("mechanism")
    if mech and mech.get("estimator") == "session_vol_ratio":
        res["mechanism"] = session_vol_ratio(lake, mech, rets, rets[mkt].rename(mkt), events)
    return res


def event_study_frames(spec: dict, events: pd.DataFrame, rets: pd.DataFrame, mkt: str, factor_frame) -> dict:
    """Pure part of `run_event_study`: events (event_id, symbol, reaction_session,
    payload_obj), the returns panel, the market symbol and `factor_frame(name)` returning
    (trade_date, entity, value) rows -> the result without the mechanism."""
    ev_spec, out_spec = spec.get("events", {}), spec.get("outcome", {})
    cond = spec.get("condition")
    entity = ev_spec.get("entity", "symbol")
    if rets.empty or mkt not in rets.columns:
        raise NotEvaluable(f"no bars for the market index {mkt}")
    market = rets[mkt].rename(mkt)
    mat, mvec, pos, ev = event_returns(rets, market, events, entity)
    window = tuple(out_spec.get("window", [-5, 5]))
    car_win = tuple(out_spec.get("car_window", [0, 1]))
    panel = S.abnormal_returns(mat, mvec, pos, ev["event_id"].to_numpy(), window=window,
                               est_len=int(spec.get("estimation", {}).get("length", 120)),
                               gap=int(spec.get("estimation", {}).get("gap", 10)),
                               min_est=int(spec.get("estimation", {}).get("min_length", 40)),
                               model=spec.get("estimation", {}).get("model", "market" if entity == "symbol" else "mean"))
    if panel.ar.shape[1] < 3:
        raise NotEvaluable(f"only {panel.ar.shape[1]} events have enough estimation data")
    ev = ev.set_index("event_id").loc[panel.event_ids].reset_index()
    cars = S.car(panel, *car_win)
    days, caar, se = S.caar_path(panel)
    res = {
        "n_events": int(panel.ar.shape[1]), "n_dropped": len(panel.dropped),
        "window": list(window), "car_window": list(car_win),
        "tests": {"t": S.mean_test(cars).to_dict(), "bmp": S.bmp_test(panel, *car_win).to_dict(),
                  "corrado": S.corrado_rank_test(panel, *car_win).to_dict()},
        "caar": {"rel_days": days.tolist(), "caar": caar.tolist(), "se": se.tolist()},
    }
    measure = out_spec.get("measure", "car")
    if measure == "abs_ar_over_implied_move":
        day0 = panel.ar[panel.rel_days == 0][0]
        implied = np.array([p.get("implied_move", p.get("true_implied_move", np.nan)) for p in ev["payload_obj"]], float)
        implied = np.where(np.isfinite(implied) & (implied > 0), implied, panel.sigma)
        outcome = day0 / implied  # signed, for the vol ratio; |.| is the tested outcome
        tested = np.abs(outcome)
    else:
        outcome = tested = cars
    res["outcome"] = {"measure": measure, "mean": float(np.mean(tested)), "values": tested.tolist(),
                      "event_ids": [str(e) for e in panel.event_ids],
                      "symbols": [str(x) for x in ev["symbol"]]}
    primary = S.mean_test(tested if measure == "car" else tested - 0.0, "CAAR t-test").to_dict()
    if cond:
        values = _condition_values(factor_frame, cond, ev, entity, mkt)
        lab = _combine_labels(values, cond)
        on, off = tested[lab == "on"], tested[lab == "off"]
        if min(len(on), len(off)) < 3:
            raise NotEvaluable(f"only {len(on)} events in the regime '{_label_text(cond, 'on')}' and {len(off)} outside it (need 3 each)")
        diff = S.welch_difference(on, off, "on minus off (Welch)").to_dict()
        regimes = {k: {"label": _label_text(cond, k), **S.mean_test(tested[lab == k], k).to_dict()} for k in ("on", "off")}
        res["regimes"] = regimes
        res["labels"] = lab.tolist()
        res["difference"] = diff
        res["regime_caar"] = {}
        for k in ("on", "off"):
            sub = S.EventPanel(panel.rel_days, panel.ar[:, lab == k], panel.sar[:, lab == k], panel.sigma[lab == k],
                               panel.est_ar[:, lab == k], panel.event_ids[lab == k], [])
            if sub.ar.shape[1] > 1:
                d_, c_, s_ = S.caar_path(sub)
                res["regime_caar"][k] = {"rel_days": d_.tolist(), "caar": c_.tolist(), "se": s_.tolist()}
        if measure == "abs_ar_over_implied_move":
            res["event_vol_ratio"] = S.vol_ratio_test(outcome[lab == "on"], outcome[lab == "off"],
                                                      "RMS(AR/implied move) on / off (F)").to_dict()
        primary = diff
    res["primary"] = primary
    res["expected"] = spec.get("test", {}).get("expected", "positive")
    res["held"] = _verdict(primary, res["expected"])
    return res


def _conditions(cond) -> list[dict]:
    return cond if isinstance(cond, list) else [cond]


def _label_text(cond, k) -> str:
    parts = []
    for c in _conditions(cond):
        if c.get("split", "sign") == "sign":
            parts.append(f"{c['factor']} < 0")
        elif c["split"] == "below_trailing_median":
            parts.append(f"{c['factor']} below its {c.get('window', 63)}-session median")
        else:
            parts.append(f"{c['factor']} >= {c['threshold']}")
    text = " and ".join(parts)
    return text if k == "on" else f"not ({text})"


def _condition_values(factor_frame, cond, ev: pd.DataFrame, entity: str, mkt: str) -> list[np.ndarray]:
    decision = D.pre_event_close(ev["reaction_session"])
    out = []
    for c in _conditions(cond):
        f = factor_frame(c["factor"])
        if c.get("split") == "below_trailing_median":
            f = relative_to_trailing_median(f, int(c.get("window", 63)))
        ent = ev["symbol"].to_numpy() if (entity == "symbol" and c.get("entity", "event") == "event") else np.full(len(ev), mkt)
        out.append(D.value_as_of(f, ent, decision))
    return out


def relative_to_trailing_median(f: pd.DataFrame, window: int) -> pd.DataFrame:
    """Factor rows minus the median of the entity's last `window` rows up to and including
    each date (point in time: no later row enters a median)."""
    med = f.groupby("entity", sort=False)["value"].transform(lambda v: v.rolling(window, min_periods=20).median())
    return f.assign(value=f["value"] - med)


def _combine_labels(values: list[np.ndarray], cond) -> np.ndarray:
    labs = [regime_labels(v, c) for v, c in zip(values, _conditions(cond))]
    lab = labs[0]
    for other in labs[1:]:
        lab = np.where((lab == "") | (other == ""), "", np.where((lab == "on") & (other == "on"), "on", "off"))
    return lab


def session_vol_ratio(lake: Lake, mech: dict, rets: pd.DataFrame, market: pd.Series, events: pd.DataFrame) -> dict:
    """The planted GEX feedback measured on every stock-session outside earnings reaction
    days. A stock's return has a market part (scaled by the index's dealer regime) and an own
    part (scaled by the stock's), so the clean comparison is sessions after which both the
    stock's and the index's net GEX were negative against sessions after which both were
    positive. log(r_t^2) is regressed on dummies for (both negative, stock only, index only)
    with stock fixed effects, errors clustered by session. For returns whose distribution
    differs between regimes only by scale, the 'both negative' coefficient is exactly
    2 log(vol ratio), so ratio = exp(b / 2), with the interval mapped the same way."""
    out = session_vol_ratio_frames(D.factor_frame(lake, mech["factor"]), rets, market, events, mech["factor"])
    return mechanism_truth(lake, mech, out)


def mechanism_truth(lake: Lake, mech: dict, out: dict) -> dict:
    """Add the planted value (`truth`, minus `truth_minus` when given) from the lake's
    `truth` table and whether the estimate's interval covers it; unchanged on real data."""
    if mech.get("truth"):
        tv = planted_value(lambda m, p: D.truth_value(lake, m, p), mech["truth"], mech.get("truth_minus"))
        if tv is not None:
            out["truth"] = tv
            out["truth_covered"] = bool(out["ci_low"] <= tv <= out["ci_high"])
    return out


def _lake_panels(lake: Lake) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """(stock closes sessions x symbols, index closes, event-reaction skip mask) from the
    lake's bars and events, for the H3/H5 mechanism estimators."""
    from eventvol.research.studies import mechanisms as MX

    mkt = D.market_symbol(lake)
    bars = D.bars_frame(lake)
    if bars.empty:
        raise NotEvaluable("the lake has no bars")
    close = D.close_panel(bars)
    if mkt not in close.columns:
        raise NotEvaluable(f"no bars for the market index {mkt}")
    stocks = close.drop(columns=[mkt])
    events = lake.read("events", columns=["kind", "symbol", "reaction_session"]) if lake.files("events") else \
        pd.DataFrame(columns=["kind", "symbol", "reaction_session"])
    return stocks, close[mkt], MX.event_skip(events, close.index, stocks.columns)


def rebound_crash_rates_lake(lake: Lake, mech: dict) -> dict:
    from eventvol.research.studies import mechanisms as MX

    stocks, index_close, skip = _lake_panels(lake)
    return MX.rebound_crash_rates(stocks, index_close, skip, k=float(mech.get("k", 3.0)))


def squeeze_followthrough_lake(lake: Lake, mech: dict) -> dict:
    from eventvol.research.studies import mechanisms as MX

    if not lake.files("short_interest"):
        raise NotEvaluable("the lake has no short_interest table")
    stocks, index_close, skip = _lake_panels(lake)
    si = lake.read("short_interest", columns=["settlement_date", "publish_date", "symbol", "shares_short", "float_shares"])
    return MX.squeeze_followthrough(stocks, index_close, si, skip, threshold=float(mech.get("threshold", 0.10)),
                                    k=float(mech.get("k", 3.0)))


LAKE_MECHANISMS = {"rebound_crash_rates": rebound_crash_rates_lake,
                   "squeeze_followthrough": squeeze_followthrough_lake}


def session_vol_ratio_frames(f: pd.DataFrame, rets: pd.DataFrame, market: pd.Series, events: pd.DataFrame,
                             factor: str = "net_gex_per_1pct") -> dict:
    """Pure part of `session_vol_ratio`: factor rows (trade_date, entity, value), the returns
    panel, the market series (named by the index) and events (symbol, reaction_session)."""
    have = set(f["entity"])
    stocks = [s for s in rets.columns if s != market.name and s in have]
    if market.name not in have:
        raise NotEvaluable(f"factor {factor!r} has no value for the index {market.name}")
    ev_days = set(zip(events["symbol"], pd.to_datetime(events["reaction_session"])))
    prev = rets.index.to_numpy()[:-1]
    g_idx = D.value_as_of(f, np.full(len(prev), market.name), prev)
    ys, xs, fe, dates = [], [], [], []
    for j, s in enumerate(stocks):
        r1 = rets[s].to_numpy()[1:]
        g = D.value_as_of(f, np.full(len(prev), s), prev)
        keep = np.isfinite(r1) & np.isfinite(g) & np.isfinite(g_idx) & (r1 != 0)
        keep &= ~np.array([(s, d) in ev_days for d in rets.index[1:]])
        sn, mn = g[keep] < 0, g_idx[keep] < 0
        ys.append(np.log(r1[keep] ** 2))
        xs.append(np.column_stack([sn & mn, sn & ~mn, ~sn & mn]).astype(float))
        fe.append(np.full(keep.sum(), j))
        dates.append(rets.index.to_numpy()[1:][keep])
    if not ys or sum(len(y) for y in ys) < 30:
        raise NotEvaluable("too few stock-sessions with a GEX value for the session-level vol ratio")
    y, x, fe, dates = np.concatenate(ys), np.vstack(xs), np.concatenate(fe), np.concatenate(dates)
    X = np.column_stack([x] + [(fe == j).astype(float) for j in range(len(stocks))])
    reg = S.ols(y, X, ["both_negative", "stock_only_negative", "index_only_negative"] + [f"fe_{s}" for s in stocks],
                cov="cluster", groups=pd.factorize(dates)[0])
    b, lo, hi, p = reg.coef[0], reg.ci_low[0], reg.ci_high[0], reg.p[0]
    out = {"name": "session vol ratio, stock and index GEX both negative / both positive",
           "estimate": float(np.exp(b / 2)), "ci_low": float(np.exp(lo / 2)), "ci_high": float(np.exp(hi / 2)),
           "p_value": float(p), "n": int(reg.n), "n_both_negative": int(x[:, 0].sum()),
           "n_both_positive": int((x.sum(axis=1) == 0).sum())}
    return out


# ----------------------------------------------------------------------------- regressions
def run_regression(lake: Lake, spec: dict, *, events_file=None) -> dict:
    """outcome_{t -> t+h} on regressors at t with HAC errors; the tested coefficient is
    `test.coefficient` (default the last regressor, or the interaction)."""
    out_spec, regs = spec["outcome"], spec["regressors"]
    needed = list(regs) + ([out_spec["factor"]] if "factor" in out_spec else [])
    _require_factors(lake, needed)
    mkt = D.market_symbol(lake)
    frames = {n: D.factor_frame(lake, n) for n in needed}
    return regression_frames(spec, frames, None if "factor" in out_spec else D.returns_panel(lake), mkt)


def regression_frames(spec: dict, frames: dict[str, pd.DataFrame], rets: pd.DataFrame | None, mkt: str) -> dict:
    """Pure part of `run_regression`: factor rows per needed factor name, the returns panel
    (None when the outcome is a factor) and the market symbol -> the result."""
    out_spec, regs = spec["outcome"], spec["regressors"]
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
    key = spec.get("test", {}).get("coefficient", names[-1])
    i = names.index(key)
    primary = {"name": f"coefficient on {key} (HAC)", "estimate": float(reg.coef[i]), "stat": float(reg.t[i]),
               "p_value": float(reg.p[i]), "ci_low": float(reg.ci_low[i]), "ci_high": float(reg.ci_high[i]), "n": reg.n}
    expected = spec.get("test", {}).get("expected", "positive")
    return {"n_obs": reg.n, "regression": reg.to_dict(), "primary": primary, "expected": expected,
            "held": _verdict(primary, expected)}


RUNNERS = {"event_study": run_event_study, "regression": run_regression}
