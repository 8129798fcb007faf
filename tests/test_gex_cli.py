"""`eventvol gex`: every field in --json, --profile and --all-roots, one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from eventvol.pipelines.gex import POSITIONING_FIELDS
from eventvol.pipelines.positioning import positioning_summary


def run(*args):
    code = "from eventvol.research.cli import main; import sys; sys.argv = ['eventvol'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_gex_json_profile_and_roots(small_lake):
    import datetime as dt

    day = "2023-03-01"
    p = run("gex", "--lake", str(small_lake.root), "--underlying", "ACME", "--date", day, "--json", "--profile",
            "--all-roots", "--grid", "21")
    assert p.returncode == 0, p.stderr
    obj = json.loads(p.stdout)
    for name in POSITIONING_FIELDS:
        assert name in obj, name
    direct = positioning_summary(small_lake, "ACME", dt.date(2023, 3, 1), all_roots=True, profile=True, n_grid=21)
    for name in POSITIONING_FIELDS:
        want = direct[name]
        assert (obj[name] is None and not np.isfinite(want)) or obj[name] == want, name
    prof = obj["profile"]
    assert len(prof["spots"]) == 21
    assert prof["spots"][0] == pytest.approx(0.5 * obj["spot"]) and prof["spots"][-1] == pytest.approx(1.5 * obj["spot"])
    # the profile at the spot (grid point 10 of 21 is exactly S) is the net GEX
    assert prof["net_gex_per_1pct"][10] == pytest.approx(obj["net_gex_per_1pct"], rel=1e-12)
    roots = obj["zero_gamma_roots"]
    assert len(roots) == obj["zero_gamma_roots_found"]
    # a sign change of the profile between grid points implies a root in between
    g = np.sign(prof["net_gex_per_1pct"])
    for i in np.flatnonzero(g[:-1] * g[1:] < 0):
        assert any(prof["spots"][i] <= r <= prof["spots"][i + 1] for r in roots)


@pytest.mark.parametrize("args, message", [
    (("--sign-model", "nope"), "unknown --sign-model"),
    (("--grid", "2"), "--grid must be at least 3"),
    (("--underlying", "NOPE"), "no option quotes for underlying"),
    (("--date", "2023-13-01"), "--date must be a date"),
])
def test_gex_errors_are_one_sentence(small_lake, args, message):
    base = {"--underlying": "ACME", "--date": "2023-03-01"}
    base.update(dict(zip(args[::2], args[1::2])))
    p = run("gex", "--lake", str(small_lake.root), *[x for kv in base.items() for x in kv])
    assert p.returncode == 2
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_gex_plot_and_terminal_output_with_units(small_lake, tmp_path, eventvol_cli):
    """--plot writes the positioning chart; the terminal shows a regime line and every dollar
    amount with its unit in a readable scale (no bare -18,706,892,042.40)."""
    import re

    from PIL import Image

    from eventvol.research import api
    from eventvol.research import formatting as F

    png = tmp_path / "pos.png"
    code, out, err = eventvol_cli("gex", "--lake", str(small_lake.root), "--underlying", "ACME", "--date", "2023-06-01",
                                  "--plot", str(png))
    assert code == 0, err
    img = np.asarray(Image.open(png).convert("L"), float)
    assert img.shape[1] > 800 and (img < 200).mean() > 0.02  # a drawn chart, not a blank canvas
    s = api.gex(small_lake, "ACME", "2023-06-01")
    lines = out.splitlines()
    assert lines[0] == "ACME 2023-06-01: " + F.regime_statement(s["spot"], s["zero_gamma"], s["net_gex_per_1pct"])
    assert f"net GEX: {F.gex_bn(s['net_gex_per_1pct'])}" in out
    assert f"call wall (strike): {F.level(s['call_wall'])}" in out
    assert f"wrote {png}" in out
    # no unformatted dollar amounts: every number with 7+ digits before the point is gone
    assert not re.search(r"\d{1,3}(,\d{3}){2,}\.\d\d(?! )", out.replace("$", ""))
    for suffix in (".svg", ".pdf"):
        code, _, err = eventvol_cli("gex", "--lake", str(small_lake.root), "--underlying", "ACME", "--date",
                                    "2023-06-01", "--plot", str(tmp_path / f"pos{suffix}"))
        assert code == 0 and (tmp_path / f"pos{suffix}").stat().st_size > 1000, err


@pytest.mark.parametrize("plot, message", [("chart.gif", "must name a .png, .svg or .pdf file"),
                                           ("nowhere/chart.png", "does not exist")])
def test_gex_plot_errors_are_one_sentence(small_lake, tmp_path, monkeypatch, eventvol_cli, plot, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = eventvol_cli("gex", "--lake", str(small_lake.root), "--underlying", "ACME", "--date",
                                  "2023-06-01", "--plot", plot)
    assert code == 2 and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.png*"))


def test_gex_profile_table_has_a_header_and_units(small_lake, eventvol_cli):
    from eventvol.research import api

    code, out, err = eventvol_cli("gex", "--lake", str(small_lake.root), "--underlying", "ACME", "--date", "2023-06-01",
                                  "--profile", "--grid", "5")
    assert code == 0, err
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if "net GEX ($bn per 1%)" in line and "spot ($)" in line)
    rows = [line.split() for line in lines[i + 1:i + 6]]
    p = api.gex_profile(small_lake, "ACME", "2023-06-01", n_grid=5)
    assert [float(r[0].replace(",", "")) for r in rows] == pytest.approx(p["spot"].round(2).tolist())
    assert [float(r[1].replace(",", "")) for r in rows] == pytest.approx((p["net_gex_per_1pct"] / 1e9).round(3).tolist(), abs=1e-9)
