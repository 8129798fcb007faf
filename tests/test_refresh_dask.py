"""`--engine dask`: the same units on a dask.distributed LocalCluster (2 worker processes)
give factor values identical, bit for bit, to the local engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import copy_lake, factor_values

from eventvol.data_lake import Lake
from eventvol.data_lake.synthetic import SyntheticConfig, build
from eventvol.pipelines import refresh as rf
from eventvol.pipelines.executors import DaskExecutor

TINY = SyntheticConfig(seed=9, start="2023-01-03", end="2023-02-28", n_stocks=3, n_members=3)


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    yield c
    c.close()


@pytest.fixture(scope="module")
def base_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dask") / "base"
    build(Lake.open(path, create=True), TINY)
    return path




def test_local_and_dask_engines_give_identical_factor_values(base_path, tmp_path, cluster):
    local = copy_lake(base_path, tmp_path / "local")
    r1 = rf.refresh(local, factors=["gex"])
    assert r1.engine == "local" and r1.rows_written > 0
    dask = copy_lake(base_path, tmp_path / "dask")
    exe = str(Path(sys.executable).with_name("eventvol"))
    p = subprocess.run([exe, "refresh", "--lake", str(dask.root), "--factors", "gex", "--engine", "dask",
                        "--scheduler", cluster.scheduler_address, "--json"],
                       check=False, env={**os.environ, "CI": "1"}, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    assert summary["engine"] == "dask" and summary["units_failed"] == 0, summary["failed"][:2]
    assert summary["units_computed"] == len(r1.computed) and summary["rows_written"] == r1.rows_written
    pd.testing.assert_frame_equal(factor_values(Lake.open(dask.root)), factor_values(local), check_exact=True)
    ex = DaskExecutor(cluster.scheduler_address)
    try:
        # incremental on dask too: nothing due on a rerun; a forced recompute on the workers
        # leaves every value exactly as it was
        assert rf.refresh(Lake.open(dask.root), factors=["gex"], executor=ex).computed == []
        forced = rf.refresh(Lake.open(dask.root), factors=["gex"], executor=ex, force=True)
        assert forced.engine == "dask" and len(forced.computed) == len(r1.computed)
    finally:
        ex.close()
    pd.testing.assert_frame_equal(factor_values(Lake.open(dask.root)), factor_values(local), check_exact=True)
