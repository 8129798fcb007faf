"""Benchmark: an event-panel sweep (parameter sets x events) simulated in one vectorbt call,
against a plain pandas loop over a subset of the same (event, parameter set) pairs.

Event structure marks (mid and half-spread per session, dollars per structure) and a factor
value per event are generated synthetically (seeded). Parameter sets combine side, fill
fraction, fee per contract and a GEX threshold filter. Prints one JSON object: wall times,
seconds per event-parameter pair for both, their ratio, and the largest P&L difference
between the two on the subset (must be ~0).

    python benchmarks/bench_backtest.py            # small: 100 parameter sets x 200 events
    python benchmarks/bench_backtest.py --full     # 1,000 parameter sets x 2,000 events
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from eventvol.strategies.engine import simulate_panel  # noqa: E402
from eventvol.strategies.metrics import metrics_by_param  # noqa: E402

ROWS = 3  # entry close, reaction close, one more session (exit)
CONTRACTS = 2  # a straddle


def make_events(n_events: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = rng.uniform(2.0, 20.0, n_events) * 100  # structure mid at entry, dollars
    path = start * np.cumprod(np.vstack([np.ones(n_events), rng.lognormal(-0.05, 0.25, (ROWS - 1, n_events))]), axis=0)
    half = np.maximum(0.02 * path, 2.5)  # half-spread, dollars per structure
    gex = rng.normal(0, 1e8, n_events)
    exit_session = pd.Timestamp("2015-01-02") + pd.to_timedelta(np.sort(rng.integers(0, 3650, n_events)), "D")
    return {"mid": path, "half": half, "gex": gex, "exit": exit_session}


def make_params(n_params: int) -> pd.DataFrame:
    sides, fracs = (1.0, -1.0), (0.0, 0.25, 0.5, 0.75, 1.0)
    fees = np.round(np.linspace(0.0, 1.3, 10), 3)
    n_thr = max(1, int(np.ceil(n_params / (len(sides) * len(fracs) * len(fees)))))
    # the last threshold is +inf: no filter
    thresholds = np.append(np.linspace(-1e8, 1e8, n_thr - 1), np.inf) if n_thr > 1 else np.array([np.inf])
    combos = list(itertools.product(sides, fracs, fees, thresholds))[:n_params]
    return pd.DataFrame(combos, columns=["side", "fill_fraction", "fee_per_contract", "gex_below"])


def sweep(ev: dict, params: pd.DataFrame) -> pd.Series:
    """Every (parameter set, event) column in one vectorbt simulation; P&L per column."""
    n_e, n_p = ev["gex"].size, len(params)
    side = params["side"].to_numpy()[:, None]
    k = params["fill_fraction"].to_numpy()[:, None]
    entry = (ev["mid"][0][None, :] + side * k * ev["half"][0][None, :]).ravel()
    exit_ = (ev["mid"][-1][None, :] - side * k * ev["half"][-1][None, :]).ravel()
    traded = (ev["gex"][None, :] < params["gex_below"].to_numpy()[:, None])
    units = np.where(traded, side, 0.0).ravel()
    fees = np.broadcast_to(params["fee_per_contract"].to_numpy()[:, None] * CONTRACTS, (n_p, n_e)).ravel()
    mark = np.tile(ev["mid"], (1, n_p))
    res = simulate_panel(mark, entry, exit_, np.full(n_p * n_e, ROWS - 1), units, fees)
    return pd.Series(np.where(units != 0, res.pnl.to_numpy(), np.nan))


def pandas_loop(ev: dict, params: pd.DataFrame, pairs: list[tuple[int, int]]) -> list[float]:
    """The plain way: one (parameter set, event) at a time with pandas lookups."""
    marks = pd.DataFrame(ev["mid"])
    halves = pd.DataFrame(ev["half"])
    out = []
    for p, e in pairs:
        prm = params.iloc[p]
        if not ev["gex"][e] < prm["gex_below"]:
            out.append(np.nan)
            continue
        entry = marks.loc[0, e] + prm["side"] * prm["fill_fraction"] * halves.loc[0, e]
        exit_ = marks.loc[ROWS - 1, e] - prm["side"] * prm["fill_fraction"] * halves.loc[ROWS - 1, e]
        cash = pd.Series([-prm["side"] * entry, prm["side"] * exit_]) - prm["fee_per_contract"] * CONTRACTS
        out.append(float(cash.sum()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="1,000 parameter sets x 2,000 events")
    ap.add_argument("--params", type=int, help="parameter sets (default 100, --full 1000)")
    ap.add_argument("--events", type=int, help="events (default 200, --full 2000)")
    ap.add_argument("--loop-pairs", type=int, default=2000, help="pairs in the pandas loop baseline")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lake", help="also time an end-to-end earnings sweep (run_sweep) on this lake")
    ap.add_argument("--lake-params", type=int, default=200, help="parameter sets of the lake sweep")
    a = ap.parse_args()
    n_p = a.params or (1000 if a.full else 100)
    n_e = a.events or (2000 if a.full else 200)
    ev, params = make_events(n_e, a.seed), make_params(n_p)
    n_p = len(params)

    t0 = time.perf_counter()
    import vectorbt  # noqa: F401  (import cost kept out of both timings)
    import_s = time.perf_counter() - t0
    sweep(make_events(4, 1), make_params(2))  # numba compilation, also outside the timings

    t0 = time.perf_counter()
    pnl = sweep(ev, params)
    trades = pd.DataFrame({"param_id": np.repeat(np.arange(n_p), n_e), "pnl": pnl.to_numpy(),
                           "exit_session": np.tile(ev["exit"], n_p)})
    metrics = metrics_by_param(trades)
    sweep_s = time.perf_counter() - t0

    rng = np.random.default_rng(a.seed + 1)
    m = min(a.loop_pairs, n_p * n_e)
    flat = rng.choice(n_p * n_e, m, replace=False)
    pairs = [(int(i // n_e), int(i % n_e)) for i in flat]
    t0 = time.perf_counter()
    loop = np.array(pandas_loop(ev, params, pairs))
    loop_s = time.perf_counter() - t0
    diff = np.nanmax(np.abs(loop - pnl.to_numpy()[flat])) if np.isfinite(loop).any() else 0.0
    same_nan = bool(np.array_equal(np.isnan(loop), np.isnan(pnl.to_numpy()[flat])))

    lake_doc = {}
    if a.lake:
        from eventvol.data_lake import Lake
        from eventvol.strategies.option_events import OptionEventParams, run_sweep, tradable_events

        lk = Lake.open(a.lake)
        evs = tradable_events(lk, ("earnings",))
        grid = list(itertools.product(("long", "short"), ("mid", "worst", "fraction"), np.linspace(0, 1.3, 40)))
        ps = [OptionEventParams(side=s_, fill=f_, fee_per_contract=float(fee)) for s_, f_, fee in grid][: a.lake_params]
        t0 = time.perf_counter()
        r = run_sweep(lk, evs, ps)
        lake_s = time.perf_counter() - t0
        lake_doc = {"lake_parameter_sets": len(ps), "lake_events": len(evs), "lake_sweep_wall_s": round(lake_s, 3),
                    "lake_us_per_pair": round(lake_s / (len(ps) * len(evs)) * 1e6, 1),
                    "lake_traded_pairs": int(r.trades["traded"].sum())}

    pairs_total = n_p * n_e
    per_pair_sweep = sweep_s / pairs_total
    per_pair_loop = loop_s / m
    print(json.dumps({
        "benchmark": "bench_backtest", "parameter_sets": n_p, "events": n_e, "pairs": pairs_total,
        "rows_per_column": ROWS, "sweep_wall_s": round(sweep_s, 3), "sweep_us_per_pair": round(per_pair_sweep * 1e6, 3),
        "loop_pairs": m, "loop_wall_s": round(loop_s, 3), "loop_us_per_pair": round(per_pair_loop * 1e6, 3),
        "speedup_per_pair": round(per_pair_loop / per_pair_sweep, 1),
        "max_abs_pnl_diff_on_subset": float(diff), "traded_flags_equal": same_nan,
        "traded_pairs": int(np.isfinite(pnl).sum()), "best_mean_pnl": float(metrics["mean_pnl"].max()),
        **lake_doc, "vectorbt_import_s": round(import_s, 1), "cpu_count": os.cpu_count(), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
