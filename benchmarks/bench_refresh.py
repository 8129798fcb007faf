"""Benchmark `eventvol refresh`.

Case `backfill` (real data, ../shared/data/real/prices): a lake of the 20 large caps + the S&P
500, daily from 1990-01-02 (175k bar rows) and a members file; the refresh of every family
(batched) against the ingest of the same files and against a plain pandas computation of the
same dispersion values, all measured in this run. It also refreshes sample windows (the first
sessions of history, a month of 2008, the last sessions) unit by unit on a copy and checks the
batched values and fingerprints equal them bit for bit; `unit_by_unit_s_per_unit` times the
old one-unit-per-task path.

Case `incremental` (synthetic): the cost of refreshing after one new session on lakes with 1
and 4 years of history (the ratio should stay near 1: cost grows with new data, not with
history), the cost of a no-op refresh, and a full rebuild on the local vs the dask engine.
Default size: 3 synthetic stocks with thin chains, local-vs-dask rebuild on the 1-year lake
(about two minutes on an idle 2-core machine); `--full` uses the synthetic market's default
universe and chains (32 stocks) and the rebuild on the 4-year lake.

Prints one JSON object.

    .venv/bin/python benchmarks/bench_refresh.py [--case backfill|incremental|all] [--full] [--factors gex] [--workers 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from eventvol.data_lake import Lake
from eventvol.data_lake.synthetic import SyntheticConfig, build
from eventvol.pipelines.refresh import refresh

END = "2024-12-31"
STARTS = {1: "2024-01-02", 4: "2021-01-04"}


def _config(years: int, full: bool) -> SyntheticConfig:
    if full:
        return SyntheticConfig(seed=3, start=STARTS[years], end=END)
    return SyntheticConfig(seed=3, start=STARTS[years], end=END, n_stocks=3, n_members=3, stock_expiries=2,
                           index_monthlies=2, index_weeklies_days=14, index_dailies=2)


NEW_SESSIONS = 3  # the last sessions, added one at a time: best and median of 3 refreshes


def _lakes(root: Path, years: int, full_size: bool) -> tuple[Lake, Lake, list]:
    """(history lake without the last NEW_SESSIONS sessions, the full market lake, those sessions)."""
    full = Lake.open(root / f"full{years}", create=True)
    build(full, _config(years, full_size))
    new = sorted(full.df("SELECT DISTINCT trade_date AS d FROM option_quotes ORDER BY d DESC LIMIT ?",
                         [NEW_SESSIONS])["d"])
    hist = Lake.open(root / f"hist{years}", create=True)
    for t in ("option_quotes", "bars", "index_members", "index_weights", "events", "rates", "letf_funds", "short_interest"):
        col = "trade_date" if t in ("option_quotes", "bars") else None  # what the new sessions add
        tbl = full.read_arrow(t, where=f"{col} < ?", params=[new[0]]) if col else full.read_arrow(t)
        if tbl.num_rows:
            hist.write(t, tbl)
    return hist, full, new


def _timed(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


REAL_PRICES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "prices"
PRICE_FILES = ("us_large_caps_20_daily_close.csv.gz", "spx_daily_close_1990_2022.csv.gz")
# unit-by-unit sample windows: the first sessions of history, a month of 2008, the last sessions
SAMPLE_WINDOWS = ((dt.date(1990, 1, 2), dt.date(1990, 1, 10)), (dt.date(2008, 10, 1), dt.date(2008, 10, 31)),
                  (dt.date(2022, 12, 20), dt.date(2022, 12, 28)))


def pandas_dispersion(files: list[Path]) -> dict[int, pd.Series]:
    """The plain pandas baseline: dispersion_ratio_{5,21,63}d of SPX (equal-weighted mean of the
    members' realized vols over the index's) straight from the CSVs."""
    px = pd.concat([pd.read_csv(f) for f in files]).pivot(index="date", columns="symbol", values="close")
    px.index = pd.to_datetime(px.index)
    lr = np.log(px).diff()
    out = {}
    for w in (5, 21, 63):
        vol = lr.rolling(w).std(ddof=1) * np.sqrt(252)
        out[w] = (vol.drop(columns="SPX").mean(axis=1) / vol["SPX"]).dropna()
    return out


def _factor_rows(lake: Lake, lo: dt.date, hi: dt.date) -> pd.DataFrame:
    return lake.read("factors", columns=["factor", "trade_date", "entity", "value"],
                     where="trade_date >= ? AND trade_date <= ?", params=[lo, hi]).sort_values(
        ["factor", "entity", "trade_date"]).reset_index(drop=True)


def _state_rows(lake: Lake, lo: dt.date, hi: dt.date) -> pd.DataFrame:
    return lake.read("refresh_state", columns=["family", "trade_date", "input_fingerprint", "rows_written"],
                     where="trade_date >= ? AND trade_date <= ?", params=[lo, hi]).sort_values(
        ["family", "trade_date"]).reset_index(drop=True)


def backfill_case(root: Path) -> dict:
    from eventvol.data_lake.ingest import ingest_files
    from eventvol.pipelines.factors import read_factor

    files = [REAL_PRICES / f for f in PRICE_FILES]
    members = root / "members.csv"
    syms = sorted(pd.read_csv(files[0])["symbol"].unique())
    pd.DataFrame({"index": "SPX", "symbol": syms, "start_date": "1990-01-02", "end_date": ""}).to_csv(members, index=False)
    lake = Lake.open(root / "prices", create=True)
    ingest_s, reports = _timed(lambda: [ingest_files(lake, "prices-csv", files), ingest_files(lake, "members-csv", [members])])
    pristine = root / "pristine"
    shutil.copytree(lake.root, pristine)
    only = Lake.open(Path(shutil.copytree(pristine, root / "dispersion_only")))
    dispersion_s, _ = _timed(lambda: refresh(only, factors=["dispersion"]))  # the family pandas computes a part of
    refresh_s, res = _timed(lambda: refresh(lake))
    noop_s, noop = _timed(lambda: refresh(lake))
    pandas_s, ref = _timed(lambda: pandas_dispersion(files))
    worst = 0.0
    for w, exp in ref.items():
        got = read_factor(lake, f"dispersion_ratio_{w}d", entity="SPX")
        got = pd.Series(got["value"].to_numpy(), index=pd.to_datetime(got["trade_date"]))
        assert (got.index == exp.index).all(), w
        worst = max(worst, float(np.max(np.abs(got.to_numpy() / exp.to_numpy() - 1))))
    # unit by unit on sample windows of a fresh copy: equal values and fingerprints, bit for bit
    units = Lake.open(pristine)
    unit_s, unit_units, identical = 0.0, 0, True
    for lo, hi in SAMPLE_WINDOWS:
        s, r = _timed(lambda: refresh(units, start=lo, end=hi, unit_by_unit=True))
        unit_s += s
        unit_units += len(r.computed)
        identical &= _factor_rows(units, lo, hi).equals(_factor_rows(lake, lo, hi))
        identical &= _state_rows(units, lo, hi).equals(_state_rows(lake, lo, hi))
    per_unit = unit_s / unit_units
    return {
        "bar_rows": reports[0].rows_written, "sessions": len(res.computed) // 2,
        "families_computed": sorted({u.family for u in res.computed}), "families_skipped": sorted(res.absent),
        "units": len(res.computed), "tasks": res.tasks, "factor_rows": res.rows_written,
        "ingest_s": round(ingest_s, 3), "refresh_s": round(refresh_s, 3),
        "refresh_over_ingest": round(refresh_s / ingest_s, 2),
        "noop_refresh_s": round(noop_s, 3), "noop_units_computed": len(noop.computed),
        "refresh_dispersion_only_s": round(dispersion_s, 3),
        "pandas_dispersion_s": round(pandas_s, 3), "refresh_over_pandas_dispersion": round(refresh_s / pandas_s, 2),
        "refresh_dispersion_only_over_pandas": round(dispersion_s / pandas_s, 2),
        "dispersion_max_rel_diff_vs_pandas": worst,
        "unit_by_unit_sample_units": unit_units, "unit_by_unit_s_per_unit": round(per_unit, 4),
        "unit_by_unit_projected_s": round(per_unit * len(res.computed), 1),
        "batched_equals_unit_by_unit_bit_for_bit": bool(identical),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=("backfill", "incremental", "all"), default="all")
    ap.add_argument("--full", action="store_true", help="the synthetic default market (32 stocks) instead of 3 thin stocks")
    ap.add_argument("--factors", default="gex", help="comma-separated families (default gex)")
    ap.add_argument("--workers", type=int, default=2, help="dask LocalCluster workers")
    args = ap.parse_args()
    if args.case in ("backfill", "all"):
        if not REAL_PRICES.exists():
            raise SystemExit(f"the backfill case needs the real price files in {REAL_PRICES}")
        with tempfile.TemporaryDirectory() as tmp:
            backfill = {"benchmark": "refresh", "case": "backfill", **backfill_case(Path(tmp))}
        if args.case == "backfill":
            print(json.dumps(backfill, indent=2))
            return
    cfg = _config(1, args.full)
    rebuild_years = 4 if args.full else 1
    factors = args.factors.split(",")
    report: dict = {"benchmark": "refresh", "size": "full" if args.full else "small", "n_stocks": cfg.n_stocks, "factors": factors, "history": {}}
    if args.case == "all":
        report["backfill"] = backfill
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for years in (1, 4):
            hist, full, new = _lakes(root, years, args.full)
            rebuild_s, r0 = _timed(lambda: refresh(hist, factors=factors))
            noops = [_timed(lambda: refresh(hist, factors=factors)) for _ in range(3)]
            incs = []
            for d in new:
                for t in ("option_quotes", "bars"):
                    hist.write(t, full.read_arrow(t, where="trade_date = ?", params=[d]))
                incs.append(_timed(lambda: refresh(hist, factors=factors)))
            inc_s = [s for s, _ in incs]
            report["history"][f"{years}y"] = {
                "sessions": len(r0.computed) + NEW_SESSIONS,
                "option_rows": int(hist.df("SELECT count(*) AS n FROM option_quotes")["n"].item()),
                "full_rebuild_local_s": round(rebuild_s, 3),
                "noop_refresh_best_s": round(min(s for s, _ in noops), 3),
                "noop_units_computed": max(len(r.computed) for _, r in noops),
                "one_new_session_best_s": round(min(inc_s), 3),
                "one_new_session_median_s": round(sorted(inc_s)[len(inc_s) // 2], 3),
                "one_new_session_units_computed": [len(r.computed) for _, r in incs],
                "one_new_session_units_skipped": [len(r.skipped) for _, r in incs],
            }
            if years == rebuild_years:
                from distributed import LocalCluster

                from eventvol.pipelines.executors import DaskExecutor

                start_s, cluster = _timed(lambda: LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                                               processes=True, dashboard_address=None))
                ex = DaskExecutor(cluster.scheduler_address)
                try:
                    local_s, _ = _timed(lambda: refresh(hist, factors=factors, force=True))
                    dask_s, rd = _timed(lambda: refresh(hist, factors=factors, force=True, executor=ex))
                finally:
                    ex.close()
                    cluster.close()
                report[f"full_rebuild_{years}y"] = {
                    "units": len(rd.computed), "local_s": round(local_s, 3), "dask_s": round(dask_s, 3),
                    "dask_workers": args.workers, "dask_cluster_start_s": round(start_s, 3),
                    "dask_over_local": round(dask_s / local_s, 3),
                }
            shutil.rmtree(root / f"full{years}", ignore_errors=True)
        h = report["history"]
        for k in ("one_new_session_best_s", "one_new_session_median_s", "noop_refresh_best_s"):
            report[f"{k[:-2]}_4y_over_1y"] = round(h["4y"][k] / h["1y"][k], 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
