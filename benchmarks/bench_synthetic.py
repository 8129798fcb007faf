"""Build the synthetic market at a scale into a fresh lake and print JSON: rows per table,
seconds, option rows/s, peak resident memory, lake size on disk.

    python benchmarks/bench_synthetic.py --scale small
    python benchmarks/bench_synthetic.py --scale large --lake /tmp/large   # >= 100M option rows
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventvol.data_lake import Lake  # noqa: E402
from eventvol.data_lake.synthetic import build, config_for  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--lake", type=Path, default=None, help="where to build (default: a temp dir, removed after)")
    args = ap.parse_args()
    root = args.lake or Path(tempfile.mkdtemp(prefix="bench-synth-")) / "lake"
    cfg = config_for(args.scale, seed=args.seed)
    t0 = time.perf_counter()
    lake = Lake.open(root, create=True)
    counts = build(lake, cfg)
    seconds = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in (root / "tables").rglob("*.parquet"))
    print(json.dumps({
        "benchmark": "synthetic_build",
        "scale": args.scale,
        "stocks": cfg.n_stocks,
        "sessions_from": cfg.start,
        "sessions_to": cfg.end,
        "rows": counts,
        "seconds": round(seconds, 2),
        "option_rows_per_second": round(counts["option_quotes"] / seconds),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "lake_bytes": size,
    }))
    if args.lake is None:
        shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
