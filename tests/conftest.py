"""Shared fixtures: a small synthetic lake built once per test session, and the path of the
real data folder (tests using it skip with a clear message when it is absent)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from eventvol.data_lake import Lake
from eventvol.data_lake.synthetic import SyntheticConfig, build

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"

SMALL = SyntheticConfig(seed=11, start="2023-01-03", end="2023-08-31", n_stocks=6, n_members=5)


@pytest.fixture(scope="session")
def small_lake_path(tmp_path_factory) -> Path:
    """A small synthetic lake (6 stocks, 8 months) with GEX factors; read-only for tests."""
    from eventvol.pipelines.factors import materialize

    path = tmp_path_factory.mktemp("lake") / "small"
    lake = Lake.open(path, create=True)
    build(lake, SMALL)
    materialize(lake)
    return path


@pytest.fixture(scope="session")
def small_lake(small_lake_path) -> Lake:
    return Lake.open(small_lake_path)


@pytest.fixture
def lake_copy(small_lake_path, tmp_path) -> Lake:
    """A private, writable copy of the small lake."""
    dst = tmp_path / "lake"
    shutil.copytree(small_lake_path, dst)
    return Lake.open(dst)


@pytest.fixture
def empty_lake(tmp_path) -> Lake:
    return Lake.open(tmp_path / "empty", create=True)


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.exists():
        pytest.skip(f"real data folder {REAL_DATA} is absent (it lives in ../shared/data/real)")
    return REAL_DATA




@pytest.fixture
def eventvol_cli(monkeypatch, capsys):
    """Run `eventvol ARGS...` in this process; returns (exit code, stdout, stderr)."""
    import sys

    from eventvol.research import cli

    monkeypatch.setenv("CI", "true")  # no progress display in captured output

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["eventvol", *args])
        capsys.readouterr()  # drop what fixtures printed before the command
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code or 0
        got = capsys.readouterr()
        return code, got.out, got.err

    return run


def copy_lake(src: Path, dst: Path) -> Lake:
    """A private copy of a lake folder, opened."""
    shutil.copytree(src, dst)
    return Lake.open(dst)


def factor_values(lake: Lake) -> pd.DataFrame:
    """Every stored factor value, in a stable order (for exact comparisons)."""
    return lake.read("factors", columns=["factor", "trade_date", "entity", "value"]).sort_values(
        ["factor", "entity", "trade_date"]).reset_index(drop=True)
