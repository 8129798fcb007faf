"""`eventvol study` prints the counted test with its label and unit, H6 takes the user's
direction and CAR window, and bad overrides are one sentence."""

from __future__ import annotations

import json
import sys

import pytest


@pytest.fixture
def run(eventvol_cli):
    return eventvol_cli


@pytest.fixture
def events_csv(tmp_path):
    path = tmp_path / "ev.csv"
    path.write_text("date,symbol\n" + "".join(f"{d},BOLT\n" for d in
                                               ["2023-05-01", "2023-06-01", "2023-08-01", "2023-09-01", "2023-10-02"]))
    return path


def test_h6_direction_and_window_from_the_command_line(small_lake_path, run, events_csv):
    code, out, err = run("study", "H6", "--lake", str(small_lake_path), "--events", str(events_csv), "--json")
    assert code == 0, err
    base = json.loads(out)
    assert base["expected"] == "two-sided" and base["car_window"] == [0, 2]
    code, out, err = run("study", "H6", "--lake", str(small_lake_path), "--events", str(events_csv), "--json",
                         "--expected", "negative", "--window", "0,12")
    assert code == 0, err
    r = json.loads(out)
    # the event window widens to hold the CAR window; the estimate is the mean CAR over 0..12
    assert r["expected"] == "negative" and r["car_window"] == [0, 12] and r["window"] == [-5, 12]
    assert r["estimate"] == pytest.approx(sum(r["outcome"]["values"]) / len(r["outcome"]["values"]), rel=1e-12)
    assert r["held"] == (r["p_value"] < 0.05 and r["estimate"] < 0)
    # the text output names the counted test in words with its unit (percent of price)
    code, out, err = run("study", "H6", "--lake", str(small_lake_path), "--events", str(events_csv))
    from eventvol.research.formatting import with_unit

    assert code == 0 and "cumulative abnormal return of the named stocks" in out
    # the estimate in percent with its unit attached, as the report prints it (a hand check below)
    assert with_unit(base["estimate"], base["unit"], base["scale"], 4) in out
    assert with_unit(-0.012345, "%", 100, 4) == "-1.234%" or with_unit(-0.012345, "%", 100, 4) == "-1.235%"


@pytest.mark.parametrize("args,msg", [
    (["--expected", "down"], "expected must be one of positive, negative, two-sided"),
    (["--window", "0;5"], "--window must be two whole numbers"),
    (["--all", "--expected", "negative"], "apply to one named study"),
])
def test_bad_override_is_one_sentence(small_lake_path, run, events_csv, args, msg):
    name = [] if "--all" in args else ["H6"]
    code, out, err = run("study", *name, "--lake", str(small_lake_path), "--events", str(events_csv), *args)
    assert code == 2 and msg in err and "Traceback" not in err and err.count("\n") == 1, err


def test_h1_prints_the_mechanism_as_the_counted_test(small_lake_path, run):
    code, out, err = run("study", "H1", "--lake", str(small_lake_path), "--json")
    assert code == 0, err
    r = json.loads(out)
    m = r["mechanism"]
    assert r["counted_test"] == m["name"] and r["estimate"] == m["estimate"] and r["null_value"] == 1.0
    assert r["verdict"] == ("held" if m["p_value"] < 0.05 and m["estimate"] > 1 else "not held")
    # the event-level regime split is still reported beside it
    assert r["primary"]["name"] == "on minus off (Welch)" and r["unit"] == "ratio of volatilities"
