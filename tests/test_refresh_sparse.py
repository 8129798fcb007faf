"""Sparse and partial lakes refresh without error (../shared/data/real): a price-only lake from
the first session of recorded history (1990-01-02), a chain-only lake of four Cboe snapshots.
Families without inputs are skipped with one line naming what is missing, days without data
are not failures, lookback windows are clipped at the start of history, and `eventvol factor`
names the missing inputs. Skips when the real data folder is absent."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from eventvol.data_lake import Lake, calendars
from eventvol.data_lake.ingest import ingest_files
from eventvol.pipelines import refresh as rf
from eventvol.pipelines.factors import read_factor

FIRST_SESSION = dt.date(1990, 1, 2)


@pytest.fixture(scope="module")
def price_files(real_data):
    p = real_data / "prices"
    return p / "us_large_caps_20_daily_close.csv.gz", p / "spx_daily_close_1990_2022.csv.gz"


@pytest.fixture(scope="module")
def price_lake_path(price_files, tmp_path_factory):
    """The real daily closes and a members file (the 20 large caps in SPX from 1990-01-02)."""
    caps, spx = price_files
    root = tmp_path_factory.mktemp("sparse")
    members = root / "spx_members.csv"
    syms = sorted(pd.read_csv(caps)["symbol"].unique())
    assert len(syms) == 20
    pd.DataFrame({"index": "SPX", "symbol": syms, "start_date": FIRST_SESSION.isoformat(), "end_date": ""}).to_csv(
        members, index=False)
    lake = Lake.open(root / "prices", create=True)
    assert ingest_files(lake, "prices-csv", [caps, spx]).rows_quarantined == 0
    ingest_files(lake, "members-csv", [members])
    return lake.root


def independent_ratio(caps, spx, window: int) -> pd.Series:
    """Plain pandas on the CSVs: equal-weighted mean of the members' realized vols (ddof=1 std of
    daily log returns x sqrt(252) over `window` sessions, members with a full window) over the
    S&P 500's."""
    px = pd.concat([pd.read_csv(caps), pd.read_csv(spx)]).pivot(index="date", columns="symbol", values="close")
    px.index = pd.to_datetime(px.index)
    vol = np.log(px).diff().rolling(window).std(ddof=1) * np.sqrt(252)
    return (vol.drop(columns="SPX").mean(axis=1) / vol["SPX"]).dropna()


def test_price_only_lake_from_the_first_session_refreshes_every_family(price_lake_path, price_files, eventvol_cli):
    code, out, err = eventvol_cli("refresh", "--lake", str(price_lake_path))
    assert code == 0, err
    assert "Traceback" not in out + err and " failed " not in out
    lines = out.strip().splitlines()
    skip = [line for line in lines if "skipped families without inputs" in line]
    assert len(skip) == 1 and skip[0].endswith(
        "gex (no rows in option_quotes); implied_corr (no rows in option_quotes); letf (no rows in letf_funds); "
        "squeeze (no rows in short_interest or option_quotes)")
    # one line per family and month: 396 months x 2 families, plus the skip line and the summary
    assert len(lines) == 2 * 396 + 2
    lake = Lake.open(price_lake_path)
    state = lake.read("refresh_state")
    sessions = lake.df("SELECT count(DISTINCT trade_date) AS n FROM bars")["n"].item()
    assert sessions == 8313
    assert state.groupby("family").size().to_dict() == {"dispersion": sessions, "momentum": sessions}
    assert state["trade_date"].min() == FIRST_SESSION  # the first session's lookback is empty, not an error
    for w in (5, 21, 63):
        got = read_factor(lake, f"dispersion_ratio_{w}d", entity="SPX")
        got = pd.Series(got["value"].to_numpy(), index=pd.to_datetime(got["trade_date"]))
        exp = independent_ratio(*price_files, w)
        assert len(got) == len(exp) > 8000 and (got.index == exp.index).all()
        assert got.index[0] == calendars.sessions(FIRST_SESSION, "1990-12-31")[w]  # w returns need w+1 closes
        np.testing.assert_allclose(got.to_numpy(), exp.to_numpy(), rtol=1e-9)
    mom = read_factor(lake, "momentum_12_1")
    # close 21 sessions ago over close 252 sessions ago: the 253rd session is the first value
    assert mom["entity"].nunique() == 20 and mom["trade_date"].min() == calendars.sessions(FIRST_SESSION, "1991-12-31")[252].date()
    # rerun: nothing due, exit 0, a handful of lines
    code, out, _ = eventvol_cli("refresh", "--lake", str(price_lake_path))
    assert code == 0 and len(out.strip().splitlines()) == 4


def test_lake_info_of_the_price_lake(price_lake_path, price_files, eventvol_cli):
    csv = pd.concat([pd.read_csv(f) for f in price_files])
    info = Lake.open(price_lake_path).info().set_index("table")
    bars = info.loc["bars"]
    assert bars["rows"] == len(csv) == 174573
    assert (bars["first"], bars["last"]) == (pd.Timestamp(csv["date"].min()), pd.Timestamp(csv["date"].max()))
    assert bars["entities"] == csv["symbol"].nunique() == 21
    months = pd.to_datetime(csv["date"]).dt.to_period("M").nunique()
    assert bars["partitions"] == bars["files"] == months == 396
    assert bars["bytes"] == sum(p.stat().st_size for p in (price_lake_path / "tables" / "bars").rglob("*.parquet"))
    assert pd.isna(bars["vendors"])  # bars has no vendor column
    assert info.loc["index_members", "rows"] == 20 and info.loc["index_members", "partitions"] == 1
    assert info.loc["option_quotes", "rows"] == 0 and info.loc["option_quotes", "partitions"] == 0
    code, out, _ = eventvol_cli("lake", "info", "--lake", str(price_lake_path), "--json")
    assert code == 0
    rows = {r["table"]: r for r in json.loads(out)}
    assert rows["bars"] | {"bytes": 0} == {"table": "bars", "rows": 174573, "first": "1990-01-02", "last": "2022-12-28",
                                           "entities": 21, "vendors": None, "partitions": 396, "bytes": 0,
                                           "date_column": "trade_date", "files": 396}
    code, out, _ = eventvol_cli("lake", "info", "--lake", str(price_lake_path))
    assert code == 0
    line = next(x for x in out.splitlines() if x.strip().startswith("bars "))
    assert line.split()[:6] == ["bars", "174,573", "1990-01-02", "2022-12-28", "21", "396"]


def test_chain_only_lake_refreshes_in_a_handful_of_lines(real_data, tmp_path, eventvol_cli):
    files = sorted((real_data / "cboe_quotetable").glob("*.csv"))
    assert len(files) == 4
    lake = Lake.open(tmp_path / "chains", create=True)
    ingest_files(lake, "cboe-quotetable", files)
    code, out, err = eventvol_cli("refresh", "--lake", str(lake.root), "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["units_computed"] == 2 and summary["units_failed"] == 0  # 2022-02-04 and 2025-01-06
    assert summary["families_skipped"] == {
        "dispersion": "no rows in bars nor in index_members", "implied_corr": "no rows in index_members",
        "letf": "no rows in letf_funds nor in bars", "momentum": "no rows in bars nor in index_members",
        "squeeze": "no rows in bars"}
    # the NYSE sessions between the two snapshot dates hold no chain: no data, not a unit each
    between = len(calendars.sessions("2022-02-04", "2025-01-06")) - 2
    assert summary["sessions_without_data"] == {"gex": between} and between == 731
    log = [line.split("Z ", 1)[1] for line in err.strip().splitlines()]
    assert log[1:] == ["refresh gex 731 sessions without data in option_quotes (no unit)",
                       "refresh gex 2022-02 computed 1 units (new 1) rows=26",
                       "refresh gex 2025-01 computed 1 units (new 1) rows=13"]
    gex = read_factor(lake, "net_gex_per_1pct")
    assert sorted(gex["entity"]) == ["NDX", "SPX", "SPX"]
    info = lake.info().set_index("table").loc["option_quotes"]
    stored = pd.concat([pd.read_parquet(f) for f in lake.files("option_quotes")])
    assert info["rows"] == len(stored) > 50000 and info["entities"] == 2 and info["partitions"] == 2
    assert info["vendors"] == ",".join(sorted(stored["vendor"].unique())) == "cboe"
    code, _, err = eventvol_cli("factor", "--lake", str(lake.root), "--name", "dispersion_ratio_21d")
    assert code == 2 and err.strip() == (
        f"eventvol: error: factor 'dispersion_ratio_21d' (family 'dispersion') cannot be computed from the lake at "
        f"{lake.root}: no rows in bars nor in index_members")


def test_window_start_is_clipped_at_the_start_of_history():
    assert rf.window_start(FIRST_SESSION, 0) == FIRST_SESSION
    assert rf.window_start(FIRST_SESSION, 820) == FIRST_SESSION
    assert rf.window_start(dt.date(1990, 1, 5), 2) == dt.date(1990, 1, 3)
    assert rf.window_start(dt.date(1990, 1, 5), 10) == FIRST_SESSION
    assert rf.window_start(dt.date(2023, 2, 21), 3) == dt.date(2023, 2, 15)  # 20 Feb 2023 is a holiday
