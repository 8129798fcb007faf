"""The `eventvol` CLI: help, JSON output, one-line errors with exit code 2, and the demo on
an existing lake."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from eventvol.pipelines.factors import read_factor

EVENTVOL = [sys.executable, "-m", "eventvol.research.cli"]


def run(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*EVENTVOL, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CI": "true", **(env or {})})


def test_help_lists_every_command():
    res = run("--help")
    assert res.returncode == 0
    for cmd in ("demo", "gex"):
        assert cmd in res.stdout


def test_gex_json_matches_the_factor(small_lake_path, small_lake):
    res = run("gex", "--lake", str(small_lake_path), "--underlying", "SYNX", "--date", "2023-04-03", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    for key in ("underlying", "trade_date", "spot", "net_gex_per_1pct", "net_gex_per_point", "contracts_used"):
        assert key in out
    assert out["underlying"] == "SYNX" and out["trade_date"] == "2023-04-03"
    stored = read_factor(small_lake, "net_gex_per_1pct", entity="SYNX", start="2023-04-03", end="2023-04-03")
    assert out["net_gex_per_1pct"] == pytest.approx(stored["value"].item(), rel=1e-12)
    assert out["contracts_used"] > 100


@pytest.mark.parametrize("args, fragment", [
    (["--underlying", "NOPE", "--date", "2023-04-03"], "no option quotes for underlying 'NOPE'"),
    (["--underlying", "SYNX", "--date", "2023-04-01"], "no SYNX option quotes on 2023-04-01"),
    (["--underlying", "SYNX", "--date", "2023-13-01"], "--date must be a date"),
])
def test_gex_errors_are_one_line_with_exit_code_2(small_lake_path, args, fragment):
    res = run("gex", "--lake", str(small_lake_path), *args, "--json")
    assert res.returncode == 2
    assert fragment in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert res.stdout == ""


def test_missing_lake_is_exit_code_2(tmp_path):
    res = run("gex", "--lake", str(tmp_path / "absent"), "--underlying", "SYNX", "--date", "2023-04-03")
    assert res.returncode == 2 and "no lake at" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "absent").exists()


def test_demo_on_an_existing_lake_writes_the_report(small_lake_path, tmp_path):
    lake = tmp_path / "lake"
    shutil.copytree(small_lake_path, lake)
    out = tmp_path / "out"
    res = run("demo", "--lake", str(lake), "--out", str(out))
    assert res.returncode == 0, res.stderr
    html = (out / "report.html").read_text()
    assert "<html" in html and "data:image/png;base64," in html
    assert "report" in res.stdout.lower()
    assert "http://" not in html and "https://" not in html  # self-contained
