"""Study kind `event_study`: events (kinds from the data, or a user CSV), market-model (or
mean-model) abnormal returns, CAR/CAAR with t, BMP and Corrado tests, and optionally a split
by factor regime at the pre-event close with a Welch test of the difference, which is then
the primary test.

TOML tables: [events] kinds, entity ("symbol" | "index"), source ("lake" | "file"), file;
[estimation] model, length, gap, min_length; [outcome] measure ("car" |
"abs_ar_over_implied_move"), window, car_window; [condition] (or an array of them) factor,
split ("sign" | "threshold" | "below_trailing_median"), threshold, window, entity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eventvol.research.studies import data as D
from eventvol.research.studies import stats as S
from eventvol.research.studies.kinds import register_kind
from eventvol.research.studies.spec import HypothesisSpec, NotEvaluable, SpecError

TABLES = {
    "events": {"kinds", "entity", "source", "file"},
    "estimation": {"model", "length", "gap", "min_length"},
    "outcome": {"measure", "window", "car_window"},
    "condition": {"factor", "split", "threshold", "window", "entity"},
}
MEASURES = ("car", "abs_ar_over_implied_move")
SPLITS = ("sign", "threshold", "below_trailing_median")


def run(data: D.StudyData, spec: HypothesisSpec, options: dict | None = None) -> dict:
    """Events and returns from `data`, then `event_study_frames`."""
    options = options or {}
    ev_spec = spec.section("events")
    if ev_spec.get("source") == "file":
        path = options.get("events_file") or ev_spec.get("file")
        if not path:
            raise NotEvaluable("no event list supplied (pass --events FILE with columns date,symbol[,name])")
        events = D.read_event_file(path)
    else:
        events = data.events(ev_spec["kinds"])
    if events.empty:
        raise NotEvaluable(f"no events of kind {', '.join(ev_spec.get('kinds', ['user']))} in the lake")
    cond = conditions(spec)
    if cond:
        data.require_factors([c["factor"] for c in cond])
    entity = ev_spec.get("entity", "symbol")
    mkt = data.market_symbol()
    syms = set(events["symbol"].dropna()) | {mkt} if entity == "symbol" else {mkt}
    rets = data.returns(syms)
    return event_study_frames(spec, events, rets, mkt, data.factor)


def conditions(spec: HypothesisSpec) -> list[dict]:
    cond = spec.get("condition")
    if not cond:
        return []
    return [dict(c) for c in cond] if isinstance(cond, list) else [dict(cond)]


def validate(spec: HypothesisSpec, where: str) -> None:
    ev = spec.section("events")
    if ev.get("source", "lake") not in ("lake", "file"):
        raise SpecError(f"hypothesis file {where} [events] source must be 'lake' or 'file'")
    if ev.get("source", "lake") == "lake" and not ev.get("kinds"):
        raise SpecError(f"hypothesis file {where} [events] needs kinds (or source = \"file\")")
    out = spec.section("outcome")
    if out.get("measure", "car") not in MEASURES:
        raise SpecError(f"hypothesis file {where} [outcome] measure must be one of {', '.join(MEASURES)}")
    for key in ("window", "car_window"):
        w = out.get(key)
        if w is not None and not (isinstance(w, list) and len(w) == 2 and all(isinstance(x, int) for x in w) and w[0] <= w[1]):
            raise SpecError(f"hypothesis file {where} [outcome] {key} must be two whole numbers [first, last], not {w!r}")
    for c in conditions(spec):
        if "factor" not in c:
            raise SpecError(f"hypothesis file {where} [condition] lacks the key 'factor'")
        if c.get("split", "sign") not in SPLITS:
            raise SpecError(f"hypothesis file {where} [condition] split must be one of {', '.join(SPLITS)}")
        if c.get("split") == "threshold" and "threshold" not in c:
            raise SpecError(f"hypothesis file {where} [condition] split = \"threshold\" needs a threshold")


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


def event_study_frames(spec: HypothesisSpec, events: pd.DataFrame, rets: pd.DataFrame, mkt: str, factor_frame) -> dict:
    """Pure part of `run`: events (event_id, symbol, reaction_session, payload_obj), the
    returns panel, the market symbol and `factor_frame(name)` returning (trade_date, entity,
    value) rows -> the result (with `primary` and a per-event `frame`)."""
    ev_spec, out_spec, est = spec.section("events"), spec.section("outcome"), spec.section("estimation")
    cond = conditions(spec)
    entity = ev_spec.get("entity", "symbol")
    if rets.empty or mkt not in rets.columns:
        raise NotEvaluable(f"no bars for the market index {mkt}")
    market = rets[mkt].rename(mkt)
    mat, mvec, pos, ev = event_returns(rets, market, events, entity)
    window = tuple(out_spec.get("window", [-5, 5]))
    car_win = tuple(out_spec.get("car_window", [0, 1]))
    if not window[0] <= car_win[0] <= car_win[1] <= window[1]:
        raise NotEvaluable(f"the CAR window {list(car_win)} is not inside the event window {list(window)}")
    panel = S.abnormal_returns(mat, mvec, pos, ev["event_id"].to_numpy(), window=window,
                               est_len=int(est.get("length", 120)), gap=int(est.get("gap", 10)),
                               min_est=int(est.get("min_length", 40)),
                               model=est.get("model", "market" if entity == "symbol" else "mean"))
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
    primary = S.mean_test(tested, "CAAR t-test").to_dict()
    labels = np.full(len(tested), "")
    if cond:
        values = condition_values(factor_frame, cond, ev, entity, mkt)
        labels = combine_labels(values, cond)
        on, off = tested[labels == "on"], tested[labels == "off"]
        if min(len(on), len(off)) < 3:
            raise NotEvaluable(f"only {len(on)} events in the regime '{label_text(cond, 'on')}' and {len(off)} outside it (need 3 each)")
        diff = S.welch_difference(on, off, "on minus off (Welch)").to_dict()
        res["regimes"] = {k: {"label": label_text(cond, k), **S.mean_test(tested[labels == k], k).to_dict()}
                          for k in ("on", "off")}
        res["labels"] = labels.tolist()
        res["difference"] = diff
        res["regime_caar"] = {}
        for k in ("on", "off"):
            sub = S.EventPanel(panel.rel_days, panel.ar[:, labels == k], panel.sar[:, labels == k], panel.sigma[labels == k],
                               panel.est_ar[:, labels == k], panel.event_ids[labels == k], [])
            if sub.ar.shape[1] > 1:
                d_, c_, s_ = S.caar_path(sub)
                res["regime_caar"][k] = {"rel_days": d_.tolist(), "caar": c_.tolist(), "se": s_.tolist()}
        if measure == "abs_ar_over_implied_move":
            res["event_vol_ratio"] = S.vol_ratio_test(outcome[labels == "on"], outcome[labels == "off"],
                                                      "RMS(AR/implied move) on / off (F)").to_dict()
        primary = diff
    res["primary"] = primary
    res["frame"] = pd.DataFrame({"event_id": [str(e) for e in panel.event_ids], "symbol": ev["symbol"].astype(str).to_numpy(),
                                 "reaction_session": pd.to_datetime(ev["reaction_session"]).to_numpy(),
                                 "regime": labels, measure: tested, "car": cars})
    return res


def label_text(cond: list[dict], k: str) -> str:
    parts = []
    for c in cond:
        if c.get("split", "sign") == "sign":
            parts.append(f"{c['factor']} < 0")
        elif c["split"] == "below_trailing_median":
            parts.append(f"{c['factor']} below its {c.get('window', 63)}-session median")
        else:
            parts.append(f"{c['factor']} >= {c['threshold']}")
    text = " and ".join(parts)
    return text if k == "on" else f"not ({text})"


def condition_values(factor_frame, cond: list[dict], ev: pd.DataFrame, entity: str, mkt: str) -> list[np.ndarray]:
    decision = D.pre_event_close(ev["reaction_session"])
    out = []
    for c in cond:
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


def combine_labels(values: list[np.ndarray], cond: list[dict]) -> np.ndarray:
    labs = [regime_labels(v, c) for v, c in zip(values, cond)]
    lab = labs[0]
    for other in labs[1:]:
        lab = np.where((lab == "") | (other == ""), "", np.where((lab == "on") & (other == "on"), "on", "off"))
    return lab


register_kind("event_study", run, tables=TABLES, validate=validate,
              description="market-model abnormal returns around events; optional split by factor regime")
