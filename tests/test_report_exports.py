"""Terminal tables and --csv / --parquet exports of `factor`, `backtest` and `study`: the
files hold exactly the rows the Python API returns; terminal output has headers, units and
-$1,234.56 style amounts."""

from __future__ import annotations

import re

import pandas as pd
import pytest


def test_factor_csv_parquet_and_header(small_lake, tmp_path, eventvol_cli):
    from eventvol.research import api

    csv, pq = tmp_path / "gex.csv", tmp_path / "gex.parquet"
    code, out, err = eventvol_cli("factor", "--lake", str(small_lake.root), "--name", "net_gex_per_1pct",
                                  "--entity", "ACME", "--start", "2023-03-01", "--end", "2023-03-31",
                                  "--csv", str(csv), "--parquet", str(pq))
    assert code == 0, err
    want = api.factor_rows(small_lake, "net_gex_per_1pct", entity="ACME", start="2023-03-01", end="2023-03-31")
    got_csv = pd.read_csv(csv)
    got_pq = pd.read_parquet(pq)
    assert list(got_csv.columns) == ["trade_date", "entity", "value"] and len(got_csv) == len(want) > 10
    assert got_csv["value"].tolist() == pytest.approx(want["value"].tolist(), rel=1e-15)
    assert got_pq["value"].tolist() == want["value"].tolist()  # bit for bit in Parquet
    lines = out.splitlines()
    assert lines[0].split() [:3] == ["trade", "date", "entity"] and "($ per 1% move)" in lines[0]
    assert set(lines[1]) <= {"-", " "}
    assert not re.search(r"\de[-+]\d", out)  # no scientific notation
    v = float(want["value"].iloc[0])
    from eventvol.research.formatting import usd_scaled

    assert lines[2].endswith(usd_scaled(v))


def test_backtest_exports_trades_and_metrics(small_lake, tmp_path, eventvol_cli):
    from eventvol.research import api

    target = tmp_path / "bt.csv"
    code, out, err = eventvol_cli("backtest", "earnings-straddle", "--lake", str(small_lake.root),
                                  "--param", "side=long,short", "--csv", str(target), "--parquet", str(tmp_path / "bt.parquet"))
    assert code == 0, err
    res = api.backtest(small_lake, "earnings-straddle", side=["long", "short"])
    trades = pd.read_parquet(tmp_path / "bt_trades.parquet")
    metrics = pd.read_csv(tmp_path / "bt_metrics.csv")
    assert len(trades) == len(res.trades) and trades["pnl"].equals(res.trades["pnl"].reset_index(drop=True))
    assert metrics["total_pnl"].tolist() == pytest.approx(res.metrics["total_pnl"].tolist(), rel=1e-12)
    assert (tmp_path / "bt_trades.csv").exists() and (tmp_path / "bt_metrics.parquet").exists()
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["set", "side", "trades"] and "total P&L" in lines[1]
    # dollar amounts as -$1,234.56, never $-1,234.56
    assert "$-" not in out
    neg = res.metrics.loc[res.metrics["total_pnl"] < 0, "total_pnl"]
    from eventvol.research.formatting import money

    assert all(money(v) in out for v in neg) and len(neg) > 0


def test_study_exports_the_rows_behind_the_counted_test(small_lake, tmp_path, eventvol_cli):
    from eventvol.research import api

    code, out, err = eventvol_cli("study", "H1", "--lake", str(small_lake.root), "--csv", str(tmp_path / "h1.csv"))
    assert code == 0, err
    r = api.study(small_lake, "H1")
    got = pd.read_csv(tmp_path / "h1.csv")
    assert len(got) == len(r.frame) > 0 and list(got.columns) == list(r.frame.columns)
    assert f"wrote {tmp_path / 'h1.csv'}" in out


def test_export_to_a_missing_folder_is_one_sentence(small_lake, tmp_path, eventvol_cli):
    code, out, err = eventvol_cli("factor", "--lake", str(small_lake.root), "--name", "net_gex_per_1pct",
                                  "--entity", "ACME", "--csv", str(tmp_path / "no" / "x.csv"))
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
