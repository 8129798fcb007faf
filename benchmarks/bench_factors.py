"""Benchmark: cross-sectional dispersion and momentum factors on a random market, against a
plain pandas rolling implementation measured in the same run. Prints one JSON object.

    python benchmarks/bench_factors.py            # small: 100 members x 3 years
    python benchmarks/bench_factors.py --full     # the issue's size: 500 members x 10 years

`ours_s` times the registered `compute` (long factor rows out, as the lake stores them);
`ours_core_s` the same numbers as wide arrays, which is what the pandas baseline produces.
Inputs the family's `load` prepares (the panel, session closes) are built before timing.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import pandas as pd

from eventvol.data_lake import calendars
from eventvol.pipelines.crosssection import common as cx
from eventvol.pipelines.crosssection import dispersion, momentum

INDEX = "IDX"


def market(n_members: int, years: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    days = calendars.sessions("2010-01-04", "2035-01-01")[: 252 * years]
    beta = rng.uniform(0.5, 1.5, n_members)
    mkt = rng.normal(0.0003, 0.011, len(days))
    ret = mkt[:, None] * beta + rng.normal(0, 0.018, (len(days), n_members))
    close = 50 * np.exp(np.cumsum(ret, axis=0))
    idx = 1000 * np.exp(np.cumsum(np.log1p(np.expm1(ret).mean(axis=1))))
    syms = np.array([f"S{i:03d}" for i in range(n_members)] + [INDEX], dtype=object)
    panel = cx.Panel(days.values.astype("datetime64[D]"), syms, np.column_stack([close, idx]))
    members = pd.DataFrame({"index": INDEX, "symbol": syms[:-1], "start_date": days[0].date(), "end_date": None})
    return panel, members


def timed(fn, repeat: int = 3):
    """Best of `repeat` wall-clock runs (the machine is shared; the minimum is the least noisy)."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def dispersion_data(panel, members) -> dict:
    """What dispersion.load returns (session closes come from the calendar there, untimed)."""
    return {"close": panel, "members": members, "indexes": [INDEX], "close_ns": cx.session_closes_utc_ns(panel.dates),
            "weights": pd.DataFrame(columns=["index", "symbol", "as_of", "weight", "known_at"])}


def ours_dispersion(data, start, end):
    return dispersion.compute(data, start, end)


def ours_dispersion_core(data):
    """The numbers without the long-row output: every base output and its 3-year rank."""
    res = dispersion.index_dispersion(data["close"], data["members"], data["weights"], INDEX, data["close_ns"])
    return res, cx.trailing_percentile_panel(np.column_stack([res[k] for k in dispersion.BASE_OUTPUTS]))


def pandas_dispersion(panel):
    """Plain pandas: rolling std per window, equal-weighted member mean / index, the CBOE
    formula with equal weights, and a rolling-apply percentile rank."""
    px = pd.DataFrame(panel.values, index=pd.DatetimeIndex(panel.dates), columns=panel.symbols)
    lr = np.log(px).diff()
    out = {}
    for w in (5, 21, 63):
        vol = lr.rolling(w).std() * np.sqrt(252)
        mv, iv = vol.drop(columns=INDEX), vol[INDEX]
        out[f"ratio_{w}"] = mv.mean(axis=1) / iv
        if w in (5, 21):
            n = mv.notna().sum(axis=1)
            ws = mv.div(n, axis=0)
            diag = (ws**2).sum(axis=1)
            out[f"corr_{w}"] = (iv**2 - diag) / (ws.sum(axis=1) ** 2 - diag)
    for k in list(out):
        out[k + "_pct"] = out[k].rolling(756, min_periods=60).apply(lambda a: (a <= a[-1]).mean(), raw=True)
    return out


def ours_momentum(panel, members, start, end):
    return momentum.compute({"close": panel, "members": members, "indexes": [INDEX]}, start, end)


def ours_momentum_core(panel, members, rows):
    """The numbers without the long-row output (1.15M stock rows at full size)."""
    mask = cx.member_mask(members, INDEX, panel.dates, panel.symbols) & (panel.symbols != INDEX)[None, :]
    mom = momentum.momentum_12_1(panel.values)
    res = momentum.index_momentum(panel, members, INDEX, rows, mask=mask, mom=mom, ret=cx.simple_returns(panel.values))
    return res, np.where(mask, mom, np.nan)


def pandas_momentum(panel):
    """Plain pandas: 12-1 momentum by shift, row-wise rank groups, WML by masked means,
    rolling WML vol (comomentum has no pandas rolling equivalent and is timed on its own)."""
    px = pd.DataFrame(panel.values, index=pd.DatetimeIndex(panel.dates), columns=panel.symbols).drop(columns=INDEX)
    mom = px.shift(21) / px.shift(252) - 1
    n = mom.notna().sum(axis=1)
    q = np.where(n >= 50, 10, 3)
    rank = mom.rank(axis=1, method="first")
    k = (n // q)
    win = rank.gt(n - k, axis=0)
    los = rank.le(k, axis=0)
    r = px.pct_change()
    wml = r.where(win.shift(1, fill_value=False)).mean(axis=1) - r.where(los.shift(1, fill_value=False)).mean(axis=1)
    return {"mom": mom, "wml": wml, "wml_vol": wml.rolling(126).std() * np.sqrt(252)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="500 members x 10 years (the issue's size)")
    ap.add_argument("--members", type=int)
    ap.add_argument("--years", type=int)
    a = ap.parse_args()
    n_members = a.members or (500 if a.full else 100)
    years = a.years or (10 if a.full else 3)
    panel, members = market(n_members, years)
    start, end = pd.Timestamp(panel.dates[0]).date(), pd.Timestamp(panel.dates[-1]).date()
    input_rows = panel.values.size
    res = {"benchmark": "bench_factors", "members": n_members, "years": years, "sessions": len(panel.dates),
           "input_rows": input_rows, "python": platform.python_version(), "numpy": np.__version__, "pandas": pd.__version__}

    data = dispersion_data(panel, members)
    t_ours, rows = timed(lambda: ours_dispersion(data, start, end))
    t_core, _ = timed(lambda: ours_dispersion_core(data))
    t_pd, ref = timed(lambda: pandas_dispersion(panel))
    ours21 = rows[rows["factor"] == "dispersion_ratio_21d"]["value"].to_numpy()
    ref21 = ref["ratio_21"].dropna().to_numpy()
    res["dispersion"] = {
        "outputs": len(dispersion.OUTPUTS), "rows_out": len(rows),
        "ours_s": round(t_ours, 3), "pandas_s": round(t_pd, 3), "speedup_vs_pandas": round(t_pd / t_ours, 2),
        "ours_core_s": round(t_core, 3), "speedup_vs_pandas_core": round(t_pd / t_core, 2),
        "ours_input_rows_per_s": round(input_rows / t_ours), "pandas_input_rows_per_s": round(input_rows / t_pd),
        "max_rel_diff_ratio_21d": float(np.max(np.abs(ours21 / ref21 - 1))) if len(ours21) == len(ref21) else None,
        "note": "pandas baseline omits the cap-weighted variants (no weights in this market)",
    }

    all_rows = np.arange(len(panel.dates))
    t_ours, rows = timed(lambda: ours_momentum(panel, members, start, end))
    t_pd, ref = timed(lambda: pandas_momentum(panel))
    wml = rows[rows["factor"] == "wml_return"]["value"].to_numpy()
    ref_wml = ref["wml"].dropna().to_numpy()
    # the same compute with comomentum stubbed out (benchmark only): the part pandas also does
    real_comom = momentum.comomentum
    momentum.comomentum = lambda close, *a, **k: (np.full(len(close), np.nan), np.full(len(close), np.nan))
    try:
        t_nocom, _ = timed(lambda: ours_momentum(panel, members, start, end))
        t_core_nocom, _ = timed(lambda: ours_momentum_core(panel, members, all_rows))
    finally:
        momentum.comomentum = real_comom
    t_core, _ = timed(lambda: ours_momentum_core(panel, members, all_rows))
    res["momentum"] = {
        "outputs": len(momentum.OUTPUTS), "rows_out": len(rows),
        "ours_s": round(t_ours, 3), "ours_s_without_comomentum": round(t_nocom, 3),
        "pandas_s_without_comomentum": round(t_pd, 3),
        "speedup_vs_pandas_excluding_comomentum": round(t_pd / t_nocom, 2),
        "ours_core_s": round(t_core, 3), "ours_core_s_without_comomentum": round(t_core_nocom, 3),
        "speedup_vs_pandas_core_excluding_comomentum": round(t_pd / t_core_nocom, 2),
        "ours_input_rows_per_s": round(input_rows / t_ours), "pandas_input_rows_per_s": round(input_rows / t_pd),
        "max_abs_diff_wml": float(np.max(np.abs(wml - ref_wml))) if len(wml) == len(ref_wml) else None,
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
