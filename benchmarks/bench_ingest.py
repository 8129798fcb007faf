"""Benchmark: `cboe-eod` ingest of a generated Cboe DataShop EOD file, in rows per second,
against a baseline measured in the same run on the same file: `pandas.read_csv` plus a
pyarrow Parquet write (no validation, no quarantine, no partitioned upsert).

    .venv/bin/python benchmarks/bench_ingest.py            # 1,000,000 rows (about 30 s)
    .venv/bin/python benchmarks/bench_ingest.py --runs 3   # three baseline/ingest pairs
    .venv/bin/python benchmarks/bench_ingest.py --full     # the issue's 5,000,000 rows

Each run times the baseline and then the ingest into a fresh lake, back to back, so that the
ratio of a run is measured under one machine load; the JSON reports every run and the medians.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import statistics

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv


HEADER = ["underlying_symbol", "quote_date", "root", "expiration", "strike", "option_type", "open", "high",
          "low", "close", "trade_volume", "bid_size_1545", "bid_1545", "ask_size_1545", "ask_1545",
          "underlying_bid_1545", "underlying_ask_1545", "bid_size_eod", "bid_eod", "ask_size_eod", "ask_eod",
          "underlying_bid_eod", "underlying_ask_eod", "vwap", "open_interest", "delivery_code"]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """A deterministic EOD file: SPX/SPXW chains over 20 sessions of 2024-03, unique keys."""
    from eventvol.data_lake.calendars import sessions

    rng = np.random.default_rng(seed)
    days = sessions("2024-03-01", "2024-03-31")[:20]
    per_day = -(-rows // len(days))
    n_exp = 50
    n_strikes = -(-per_day // (2 * n_exp * 2))
    i = np.arange(rows)
    day_i = i // per_day
    j = i % per_day
    typ = j % 2
    strike_i = (j // 2) % n_strikes
    exp_i = (j // (2 * n_strikes)) % n_exp
    root_i = j // (2 * n_strikes * n_exp)
    td = np.asarray(days.values.astype("datetime64[D]"))[day_i]
    exp = td + 1 + exp_i * 7
    strike = 3000.0 + 5.0 * strike_i
    spot = 5100.0 + day_i * 3.0
    bid = np.round(np.abs(rng.normal(20, 10, rows)), 2)
    ask = np.round(bid + rng.uniform(0.05, 1.0, rows), 2)
    cols = {
        "underlying_symbol": pa.array(np.full(rows, "^SPX")),
        "quote_date": pa.array(td), "root": pa.array(np.where(root_i == 0, "SPX", "SPXW")),
        "expiration": pa.array(exp), "strike": pa.array(strike),
        "option_type": pa.array(np.where(typ == 0, "C", "P")),
        "open": bid, "high": ask, "low": bid, "close": ask,
        "trade_volume": rng.integers(0, 5000, rows), "bid_size_1545": rng.integers(1, 100, rows),
        "bid_1545": bid, "ask_size_1545": rng.integers(1, 100, rows), "ask_1545": ask,
        "underlying_bid_1545": spot - 0.5, "underlying_ask_1545": spot + 0.5,
        "bid_size_eod": rng.integers(1, 100, rows), "bid_eod": bid,
        "ask_size_eod": rng.integers(1, 100, rows), "ask_eod": ask,
        "underlying_bid_eod": spot - 0.25, "underlying_ask_eod": spot + 0.25, "vwap": bid,
        "open_interest": rng.integers(0, 100000, rows), "delivery_code": pa.nulls(rows, pa.string()),
    }
    tbl = pa.table({k: cols[k] for k in HEADER})
    pacsv.write_csv(tbl, path, write_options=pacsv.WriteOptions(quoting_style="none"))


def baseline(path: Path, out: Path) -> float:
    import pandas as pd
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    df = pd.read_csv(path)
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), out, compression="zstd")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=1, help="baseline/ingest pairs; the JSON gives medians")
    ap.add_argument("--full", action="store_true", help="the issue's 5,000,000 rows")
    ap.add_argument("--keep", type=Path, help="keep the work folder here")
    args = ap.parse_args()
    rows = 5_000_000 if args.full else args.rows

    from eventvol.data_lake import Lake
    from eventvol.data_lake.ingest import ingest_files

    work = Path(args.keep or tempfile.mkdtemp(prefix="bench_ingest_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        src = work / "eod.csv"
        t0 = time.perf_counter()
        generate(src, rows)
        gen_s = time.perf_counter() - t0
        runs = []
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for k in range(max(1, args.runs)):
            base_s = baseline(src, work / "baseline.parquet")
            lake_dir = work / f"lake{k}"
            shutil.rmtree(lake_dir, ignore_errors=True)
            lake = Lake.open(lake_dir, create=True)
            t0 = time.perf_counter()
            report = ingest_files(lake, "cboe-eod", [src], max_bytes=64 * 2**30)
            ingest_s = time.perf_counter() - t0
            runs.append({"baseline_s": round(base_s, 2), "ingest_s": round(ingest_s, 2),
                         "ingest_vs_baseline_speed": round(base_s / ingest_s, 3)})
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        again = ingest_files(lake, "cboe-eod", [src], max_bytes=64 * 2**30)
        reingest_s = time.perf_counter() - t0
        base_s = statistics.median(r["baseline_s"] for r in runs)
        ingest_s = statistics.median(r["ingest_s"] for r in runs)
        result = {
            "benchmark": "ingest cboe-eod",
            "rows": rows,
            "file_mb": round(src.stat().st_size / 2**20, 1),
            "generate_s": round(gen_s, 2),
            "baseline": "pandas.read_csv + pyarrow.parquet.write_table",
            "baseline_s": round(base_s, 2),  # medians over the runs from here on
            "baseline_rows_per_s": round(rows / base_s),
            "ingest_s": round(ingest_s, 2),
            "ingest_rows_per_s": round(rows / ingest_s),
            "ingest_vs_baseline_speed": statistics.median(r["ingest_vs_baseline_speed"] for r in runs),
            "runs": runs,
            "reingest_s": round(reingest_s, 2),
            "rows_written": report.rows_written,
            "rows_quarantined": report.rows_quarantined,
            "reingest_partitions_written": again.partitions_written,
            "peak_rss_mb_before_ingest": round(rss0 / 1024),
            "peak_rss_mb_after_ingest": round(rss1 / 1024),
        }
        print(json.dumps(result))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
