"""`eventvol factor`: JSON output equals the family's computation, materializes once, and
fails with one sentence and exit code 2 on bad input."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from eventvol.pipelines.crosssection import dispersion
from eventvol.pipelines.factors import compute_range


def test_factor_json_equals_the_registered_computation_and_materializes_once(lake_copy, eventvol_cli):
    args = ["--lake", str(lake_copy.root), "--name", "dispersion_ratio_21d", "--entity", "SYNX",
            "--start", "2023-06-01", "--end", "2023-06-30", "--json"]
    code, out, err = eventvol_cli("factor", *args)
    assert code == 0, err
    rows = json.loads(out)
    exp = compute_range(lake_copy, dispersion.DISPERSION, dt.date(2023, 6, 1), dt.date(2023, 6, 30))
    exp = exp[(exp["factor"] == "dispersion_ratio_21d") & (exp["entity"] == "SYNX")].sort_values("trade_date")
    assert [r["trade_date"] for r in rows] == [pd.Timestamp(d).date().isoformat() for d in exp["trade_date"]]
    assert len(rows) == 21 and set(rows[0]) == {"trade_date", "entity", "value"}
    np.testing.assert_array_equal([r["value"] for r in rows], exp["value"].to_numpy())
    runs = lambda: len(lake_copy.read("runs", where="command = 'factor:dispersion'"))
    assert runs() == 1
    code, out2, _ = eventvol_cli("factor", *args)
    assert code == 0 and out2 == out and runs() == 1  # read back from `factors`, not recomputed


@pytest.mark.parametrize("args, message", [
    (["--name", "no_such_factor"], "unknown factor 'no_such_factor'"),
    (["--name", "dispersion_ratio_21d", "--start", "2023-13-01"], "--start must be a date"),
    (["--name", "dispersion_ratio_21d", "--start", "2023-06-30", "--end", "2023-06-01"], "is after --end"),
    (["--name", "dispersion_ratio_21d", "--entity", "NOPE", "--start", "2023-06-01", "--end", "2023-06-05"],
     "has no values for entity 'NOPE'"),
    (["--name", "dispersion_ratio_21d", "--start", "2031-01-02", "--end", "2031-01-31"], "has no values in the requested range"),
])
def test_factor_bad_input_is_one_sentence_and_exit_2(lake_copy, args, message, eventvol_cli):
    code, out, err = eventvol_cli("factor", "--lake", str(lake_copy.root), *args)
    assert code == 2 and out == ""
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_factor_missing_lake(tmp_path, eventvol_cli):
    code, _, err = eventvol_cli("factor", "--lake", str(tmp_path / "nowhere"), "--name", "dispersion_ratio_21d")
    assert code == 2 and "no lake at" in err


def test_factor_whole_history_is_computed_once_even_where_a_month_has_no_value(lake_copy, eventvol_cli):
    # dispersion_ratio_63d has no value in January (63 sessions of history needed), but its
    # family has other outputs there: the second call reads, it does not recompute
    args = ["--lake", str(lake_copy.root), "--name", "dispersion_ratio_63d", "--entity", "SYNX", "--json"]
    code, out, err = eventvol_cli("factor", *args)
    assert code == 0, err
    rows = json.loads(out)
    assert rows[0]["trade_date"] >= "2023-04-01" and rows[-1]["trade_date"] == "2023-08-31"
    runs = lambda: len(lake_copy.read("runs", where="command = 'factor:dispersion'"))
    assert runs() == 1
    assert eventvol_cli("factor", *args)[1] == out and runs() == 1
