"""Benchmark `eventvol refresh`: the cost of refreshing after one new session on lakes with
1 and 4 years of history (the ratio should stay near 1: cost grows with new data, not with
history), the cost of a no-op refresh, and a full rebuild on the local vs the dask engine.

Prints one JSON object. Default size: 3 synthetic stocks with thin chains, local-vs-dask
rebuild on the 1-year lake (about two minutes on an idle 2-core machine); `--full` uses the
synthetic market's default universe and chains (32 stocks) and the rebuild on the 4-year lake.

    .venv/bin/python benchmarks/bench_refresh.py [--full] [--factors gex] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the synthetic default market (32 stocks) instead of 3 thin stocks")
    ap.add_argument("--factors", default="gex", help="comma-separated families (default gex)")
    ap.add_argument("--workers", type=int, default=2, help="dask LocalCluster workers")
    args = ap.parse_args()
    cfg = _config(1, args.full)
    rebuild_years = 4 if args.full else 1
    factors = args.factors.split(",")
    report: dict = {"benchmark": "refresh", "size": "full" if args.full else "small", "n_stocks": cfg.n_stocks, "factors": factors, "history": {}}
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
