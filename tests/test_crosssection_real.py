"""Dispersion ratio on real prices: 20 US large caps as members of SPX, S&P 500 closes as SPX
(../shared/data/real/prices), against an independent pandas calculation read straight from
the CSVs. Skips when the real data folder is absent."""

from __future__ import annotations

import datetime as dt
import sys

import numpy as np
import pandas as pd
import pytest

from eventvol.data_lake import Lake
from eventvol.pipelines.crosssection import dispersion

MEMBERS_FROM = "2000-01-03"  # closes before 2000 are rounded to 3 decimals: too coarse for vol work


@pytest.fixture(scope="module")
def real_csvs(real_data):
    prices = real_data / "prices"
    return prices / "us_large_caps_20_daily_close.csv.gz", prices / "spx_daily_close_1990_2022.csv.gz"


def independent_ratio(caps_csv, spx_csv, window: int) -> pd.Series:
    """Plain pandas on the CSVs: equal-weighted mean of the 20 members' realized vols over the
    S&P 500's, from the members' start date."""
    px = pd.concat([pd.read_csv(caps_csv), pd.read_csv(spx_csv)]).pivot(index="date", columns="symbol", values="close")
    px.index = pd.to_datetime(px.index)
    vol = np.log(px).diff().rolling(window).std(ddof=1) * np.sqrt(252)
    ratio = vol.drop(columns="SPX").mean(axis=1) / vol["SPX"]
    return ratio[ratio.index >= pd.Timestamp(MEMBERS_FROM)].dropna()


@pytest.fixture(scope="module")
def real_inputs(real_csvs) -> dict:
    """The family's `load` output built from the CSVs (the lake path is covered through
    ingest and the CLI below; writing 23 years of month partitions here would only repeat it)."""
    from eventvol.pipelines.crosssection import common as cx

    caps, spx = real_csvs
    bars = pd.concat([pd.read_csv(caps), pd.read_csv(spx)], ignore_index=True)
    bars = bars[bars["date"] >= "1999-06-01"]  # 63-session windows ending in January 2000 need late 1999
    close = cx.pivot(pd.to_datetime(bars["date"]).to_numpy().astype("datetime64[D]"), bars["symbol"].to_numpy(),
                     bars["close"].to_numpy())
    members = pd.DataFrame({"index": "SPX", "symbol": sorted(set(bars["symbol"]) - {"SPX"}),
                            "start_date": dt.date.fromisoformat(MEMBERS_FROM), "end_date": None})
    return {"close": close, "members": members, "indexes": ["SPX"], "close_ns": cx.session_closes_utc_ns(close.dates),
            "weights": pd.DataFrame(columns=["index", "symbol", "as_of", "weight", "known_at"])}


def test_real_dispersion_ratio_2000_2022_equals_independent_pandas(real_inputs, real_csvs):
    got = dispersion.compute(real_inputs, dt.date(2000, 1, 3), dt.date(2022, 12, 28))
    for w in (5, 21, 63):
        exp = independent_ratio(*real_csvs, w)
        g = got[(got["factor"] == f"dispersion_ratio_{w}d") & (got["entity"] == "SPX")]
        g = pd.Series(g["value"].to_numpy(), index=pd.to_datetime(g["trade_date"])).sort_index()
        assert len(g) == len(exp) > 5700
        assert (g.index == exp.index).all()
        np.testing.assert_allclose(g.to_numpy(), exp.to_numpy(), rtol=1e-9)
    # sanity on the economics: single stocks are more volatile than the diversified index
    r21 = got[got["factor"] == "dispersion_ratio_21d"]["value"]
    assert 1.2 < r21.median() < 4.0


def test_real_dispersion_through_ingest_and_the_factor_cli(tmp_path, real_csvs, monkeypatch, capsys):
    ingest = pytest.importorskip("eventvol.data_lake.ingest", reason="eventvol.data_lake.ingest (prices-csv, members-csv) is not available yet")
    caps, spx = real_csvs
    members_csv = tmp_path / "spx_members.csv"
    syms = sorted(pd.read_csv(caps)["symbol"].unique())
    pd.DataFrame({"index": "SPX", "symbol": syms, "start_date": MEMBERS_FROM, "end_date": ""}).to_csv(members_csv, index=False)
    # the vendor files cut to 2019-12..2020-06 (same columns, real rows) keep the ingest quick
    cut = []
    for src in (caps, spx):
        df = pd.read_csv(src)
        cut.append(tmp_path / src.name)
        df[(df["date"] >= "2019-12-01") & (df["date"] <= "2020-06-30")].to_csv(cut[-1], index=False)
    lake = Lake.open(tmp_path / "lake", create=True)
    ingest.ingest_files(lake, "prices-csv", cut)
    ingest.ingest_files(lake, "members-csv", [members_csv])
    from eventvol.research import cli

    monkeypatch.setattr(sys, "argv", ["eventvol", "factor", "--lake", str(lake.root), "--name", "dispersion_ratio_21d",
                                      "--entity", "SPX", "--start", "2020-03-02", "--end", "2020-04-30", "--json"])
    cli.main()
    import json

    rows = json.loads(capsys.readouterr().out)
    exp = independent_ratio(caps, spx, 21).loc["2020-03-02":"2020-04-30"]
    assert [r["trade_date"] for r in rows] == [d.date().isoformat() for d in exp.index]
    np.testing.assert_allclose([r["value"] for r in rows], exp.to_numpy(), rtol=1e-9)
    assert {r["entity"] for r in rows} == {"SPX"}
    # and the lake path equals the pure path on the same dates
    from eventvol.pipelines.factors import read_factor

    stored = read_factor(lake, "dispersion_ratio_5d", entity="SPX", start="2020-03-02", end="2020-04-30")
    exp5 = independent_ratio(caps, spx, 5).loc["2020-03-02":"2020-04-30"]
    np.testing.assert_allclose(stored["value"].to_numpy(), exp5.to_numpy(), rtol=1e-9)
