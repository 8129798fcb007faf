"""Size, power and coverage of the hypothesis tests on the synthetic market; prints JSON.

For each hypothesis file with a `[synthetic] off` table (see research/studies/size.py),
simulate `--seeds` markets with that effect off and count rejections of the counted test at
5% (size, with a Clopper-Pearson 95% interval), and the same seeds with every effect on
(power, and how often the interval covers the planted value the file names: coverage).
Markets are the default two-year configuration with thin option chains, simulated in memory
(no lake), and run through the same `run_hypothesis` as the CLI. `power.needed_sample_x` is
how many times the sample (sessions x stocks of these markets) a test would need for 80%
power, inverted from the power it shows (research/studies/size.py `sample_needed`).

    python benchmarks/bench_study_size.py --json              # 3 seeds, about 2 minutes
    python benchmarks/bench_study_size.py --seeds 40 --json   # the issue's numbers
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from eventvol.data_lake.synthetic import SyntheticConfig, simulate
from eventvol.research.progress import status
from eventvol.research.studies.registry import load_hypotheses
from eventvol.research.studies.size import (
    coverage_summary,
    measurable,
    off_config,
    sample_needed,
    rejection_summary,
    result_of,
)

LEAN = {"stock_expiries": 1, "index_monthlies": 1, "index_weeklies_days": 7, "index_dailies": 1}


def _mean(x: list) -> float | None:
    return float(np.mean(x)) if x else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3, help="markets per hypothesis and state (default 3)")
    ap.add_argument("--first-seed", type=int, default=1000)
    ap.add_argument("--only", nargs="*", default=None, help="hypotheses to run (default every measurable one)")
    ap.add_argument("--json", action="store_true", help="print JSON only (the default output is JSON too)")
    args = ap.parse_args()
    specs = measurable(load_hypotheses())
    names = [n for n in specs if args.only is None or n in args.only]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    off = {n: [] for n in names}
    on = {n: [] for n in names}
    t0 = time.perf_counter()
    with status("size and power") as update:
        for i, seed in enumerate(seeds):
            base = dataclasses.replace(SyntheticConfig(), seed=seed, **LEAN)
            update(f"seed {i + 1}/{len(seeds)}, every effect on")
            tables = simulate(base)
            for n in names:
                on[n].append(result_of(specs[n], tables))
            for n in names:
                update(f"seed {i + 1}/{len(seeds)}, {n} off")
                off[n].append(result_of(specs[n], simulate(off_config(base, specs[n])), null=True))
    out = {"benchmark": "study_size", "seeds": len(seeds), "first_seed": seeds[0], "alpha": 0.05,
           "config": "SyntheticConfig() defaults (2023-2024, 32 stocks) with thin option chains",
           "size": {}, "power": {}, "coverage": {}, "tests": {}}
    for n in names:
        spec = specs[n]
        out["tests"][n] = {"counted": spec.counted, "switched_off": spec.section("synthetic")["off"],
                           "null_params": spec.section("synthetic").get("null_params", {})}
        out["size"][n] = rejection_summary([None if r is None else r["p_value"] for r in off[n]])
        est = [r["estimate"] for r in on[n] if r]
        truth = [r["truth"] for r in on[n] if r and "truth" in r]
        power = rejection_summary([None if r is None else r["p_value"] for r in on[n]])
        out["power"][n] = {**power, "mean_estimate": _mean(est), "mean_truth": _mean(truth),
                           "sd_estimate": float(np.std(est, ddof=1)) if len(est) > 1 else None,
                           "needed_sample_x": sample_needed(power["rate"]) if power["rate"] is not None else None}
        out["coverage"][n] = coverage_summary(on[n])
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
