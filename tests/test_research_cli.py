"""`eventvol study` and `eventvol report` end to end, and the Daniel-Moskowitz momentum
regimes on the French monthly file checked against an independent loop."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from eventvol.data_lake import Lake

EVENTVOL = [sys.executable, "-m", "eventvol.research.cli"]
FF = "factors/ff_monthly_factors_1949_2017.csv"


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run(eventvol_cli):
    """The CLI in process (through `main`, so errors and exit codes are the real ones)."""
    return lambda *args: Result(*eventvol_cli(*args))


def test_error_is_one_line_with_exit_code_2_in_a_real_process(small_lake_path):
    res = subprocess.run([*EVENTVOL, "study", "H42", "--lake", str(small_lake_path)], capture_output=True,
                         text=True, timeout=600, env={**os.environ, "CI": "true"})
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "unknown study 'H42'" in res.stderr


@pytest.fixture(scope="module")
def ff_lake(small_lake_path, tmp_path_factory, real_data):
    """A copy of the small lake with the French monthly factors in factor_returns, loaded by
    the ingest path behind `eventvol ingest ff-monthly`."""
    root = tmp_path_factory.mktemp("ff") / "lake"
    shutil.copytree(small_lake_path, root)
    raw = pd.read_csv(real_data / FF)
    lake = Lake.open(root)
    from eventvol.data_lake.ingest import ingest_files

    ingest_files(lake, "ff-monthly", [real_data / FF])
    return root, raw


def test_study_h1_json_and_errors(small_lake_path, run):
    res = run("study", "H1", "--lake", str(small_lake_path), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["name"] == "H1" and out["status"] == "ok"
    m = out["mechanism"]
    assert m["ci_low"] <= m["truth"] <= m["ci_high"]
    none = run("study", "momentum-regimes", "--lake", str(small_lake_path))
    assert none.returncode == 2 and "ingest ff-monthly" in none.stderr and "Traceback" not in none.stderr


def test_study_all_adds_benjamini_hochberg(small_lake_path, run):
    res = run("study", "--all", "--lake", str(small_lake_path), "--json")
    assert res.returncode == 0, res.stderr
    hyps = json.loads(res.stdout)["hypotheses"]
    assert [h["name"] for h in hyps] == ["H1", "H2", "H3", "H4", "H5", "H6", "H7"]
    ok = [h for h in hyps if h["evaluable"]]
    m = len(ok)
    ranked = sorted(ok, key=lambda h: h["p_value"])  # the counted test's p-value
    # BH by hand: min over j >= i of p_(j) * m / j
    for i, h in enumerate(ranked):
        expect = min(min(r["p_value"] * m / (j + 1) for j, r in enumerate(ranked) if j >= i), 1.0)
        assert h["p_bh"] == pytest.approx(expect, rel=1e-12)
    assert all(h["status"].startswith("not evaluable: ") for h in hyps if not h["evaluable"])


def test_momentum_regimes_match_an_independent_loop(ff_lake, run):
    root, raw = ff_lake
    res = run("study", "momentum-regimes", "--lake", str(root), "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    # independent: plain Python over months
    total = (raw["MktRF"] + raw["RF"]).tolist()
    mom = raw["Mom"].tolist()
    bear, reb, notb = [], [], []
    for t in range(24, len(raw)):
        past = sum(math.log1p(x) for x in total[t - 24:t])
        if past < 0:
            bear.append(mom[t])
            if total[t] > 0:
                reb.append(mom[t])
        else:
            notb.append(mom[t])
    assert out["months_evaluated"] == len(raw) - 24
    assert out["bear_months"] == len(bear) and out["n_bear_rebound"] == len(reb)
    assert out["mom_mean_bear"] == pytest.approx(np.mean(bear), rel=1e-12)
    assert out["mom_mean_not_bear"] == pytest.approx(np.mean(notb), rel=1e-12)
    assert out["mom_mean_bear_rebound"] == pytest.approx(np.mean(reb), rel=1e-12)
    # the DM regression against statsmodels with Newey-West errors
    import statsmodels.api as sm

    from eventvol.research.studies.stats import default_lags

    t = np.arange(24, len(raw))
    b = np.array([sum(math.log1p(x) for x in total[i - 24:i]) < 0 for i in t], float)
    u = (np.array(total)[t] > 0).astype(float)
    rm = raw["MktRF"].to_numpy()[t]
    X = np.column_stack([np.ones(len(t)), b, rm, b * rm, b * u * rm])
    fit = sm.OLS(raw["Mom"].to_numpy()[t], X).fit(cov_type="HAC", cov_kwds={"maxlags": default_lags(len(t)), "use_correction": False})
    coef = out["dm_regression"]["coefficients"]
    for i, k in enumerate(["alpha", "bear", "mkt", "bear_x_mkt", "bear_x_up_x_mkt"]):
        assert coef[k]["coef"] == pytest.approx(fit.params[i], rel=1e-9)
        assert coef[k]["t"] == pytest.approx(fit.tvalues[i], rel=1e-9)
    # the documented momentum-crash signature: bear-market rebounds hurt momentum
    assert out["mom_mean_bear_rebound"] < 0 < out["mom_mean_not_bear"]
    assert coef["bear_x_up_x_mkt"]["coef"] < 0


def test_report_command_writes_html_and_pdf(ff_lake, tmp_path, run):
    root, _ = ff_lake
    out = tmp_path / "out"
    res = run("report", "--lake", str(root), "--out", str(out), "--studies", "H1", "--studies", "H2")
    assert res.returncode == 0, res.stderr
    html = (out / "report.html").read_text()
    assert 'id="study-H1"' in html and 'id="study-H3"' not in html and 'id="momentum"' in html
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    bad = run("report", "--lake", str(root), "--out", str(out), "--studies", "H9")
    assert bad.returncode == 2 and "unknown study 'H9'" in bad.stderr
