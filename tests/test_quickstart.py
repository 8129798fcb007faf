"""examples/quickstart.py runs end to end (demo lake -> GEX profile -> factor -> backtest ->
study -> report) in a fresh process, from outside the repository, in under 40 lines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_is_short():
    assert len(QUICKSTART.read_text().splitlines()) < 40


def test_quickstart_runs_on_a_small_lake(small_lake_path, tmp_path):
    shutil.copytree(small_lake_path, tmp_path / "lake")
    env = {**os.environ, "CI": "1"}
    done = subprocess.run([sys.executable, str(QUICKSTART), str(tmp_path / "lake"), str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert re.search(r"SYNX net GEX: 16\d sessions, negative on \d+% of them", out)
    assert re.search(r"^0\s+long\s+18\s", out, re.M) and re.search(r"^1\s+short\s+18\s", out, re.M)
    assert re.search(r"H1 .*: -?[\d.]+ \[-?[\d.]+, -?[\d.]+\], p = [\d.e-]+ \((held|not held)\)", out)
    assert (tmp_path / "out" / "report.html").stat().st_size > 50_000
    assert (tmp_path / "out" / "report.pdf").read_bytes()[:5] == b"%PDF-"
