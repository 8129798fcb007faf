"""Benchmark the cost of the lake's integrity checks; prints one JSON object.

Builds a synthetic option_quotes lake (bench_gex's generator: one zstd part per month, page
checksums, content-addressed names) and measures, in the same run, each checked read against
the unchecked read it replaced:
  - one_day_chain: the `gex` command's read (one underlying, one date, through the lake's
    DuckDB views: per-part branches pruned by month, the content hash of the one part the
    query needs verified once per process) on a fresh Lake (cold: hash included) and again
    (warm), vs. the same SQL over one unchecked glob view (the design before);
  - full_scan: count and sum of every row through the views vs. the unchecked glob view
    (every part hashed on the cold run);
  - arrow_partitions: `Lake.scan_partitions` (page CRCs verified) vs. Arrow's reader without;
  - verify: `Lake.verify()` over the whole lake (MB/s of Parquet checked).

    .venv/bin/python benchmarks/bench_lake_integrity.py               # 1M rows, ~1 minute
    .venv/bin/python benchmarks/bench_lake_integrity.py --rows 5000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gex import build_synthetic  # noqa: E402

from eventvol.data_lake import Lake  # noqa: E402
from eventvol.data_lake.store import duckdb_path  # noqa: E402

DAY_SQL = ('SELECT * FROM option_quotes WHERE underlying = ? AND trade_date = ? '
           'ORDER BY underlying, trade_date, root, expiration, strike, option_type')
FULL_SQL = "SELECT count(*), sum(strike) FROM option_quotes"


def best(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--per-chain", type=int, default=5_000)
    ap.add_argument("--underlyings", type=int, default=4)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_integrity_"))
    try:
        lake = build_synthetic(tmp / "lake", args.rows, args.per_chain, args.underlyings)
        files = lake.files("option_quotes")
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        und, day = lake.df("SELECT underlying, max(trade_date) AS d FROM option_quotes GROUP BY 1 ORDER BY 1").iloc[0]
        plain = duckdb.connect()
        glob = duckdb_path(lake.table_dir("option_quotes")) + "/year=*/month=*/part-*.parquet"
        plain.execute(f"CREATE VIEW option_quotes AS SELECT * FROM read_parquet('{glob}', hive_partitioning = false)")

        def fresh_day():
            Lake.open(lake.root).query(DAY_SQL, [und, day])

        def fresh_full():
            Lake.open(lake.root).query(FULL_SQL)

        warm = Lake.open(lake.root)
        warm.query(FULL_SQL)
        out = {
            "benchmark": "lake_integrity", "rows": args.rows, "parts": len(files), "parquet_mb": round(size_mb, 1),
            "one_day_chain": {
                "checked_cold_s": best(fresh_day), "checked_warm_s": best(lambda: warm.query(DAY_SQL, [und, day])),
                "unchecked_glob_view_s": best(lambda: plain.execute(DAY_SQL, [und, day]).to_arrow_table()),
            },
            "full_scan": {
                "checked_cold_s": best(fresh_full, 3), "checked_warm_s": best(lambda: warm.query(FULL_SQL), 3),
                "unchecked_glob_view_s": best(lambda: plain.execute(FULL_SQL).fetchall(), 3),
            },
            "arrow_partitions": {
                "page_crc_verified_s": best(lambda: list(lake.scan_partitions(
                    "option_quotes", columns=["underlying", "trade_date", "strike", "open_interest"])), 3),
                "unverified_s": best(lambda: [pq.read_table(f, columns=["underlying", "trade_date", "strike",
                                                                         "open_interest"]) for f in files], 3),
            },
        }
        secs = best(lambda: Lake.open(lake.root).verify(), 1)
        out["verify"] = {"seconds": secs, "mb_per_s": size_mb / secs}
        for key in ("one_day_chain", "full_scan"):
            o = out[key]
            o["cold_over_unchecked"] = o["checked_cold_s"] / o["unchecked_glob_view_s"]
            o["warm_over_unchecked"] = o["checked_warm_s"] / o["unchecked_glob_view_s"]
        a = out["arrow_partitions"]
        a["verified_over_unverified"] = a["page_crc_verified_s"] / a["unverified_s"]
        print(json.dumps(out, indent=1, default=float))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
