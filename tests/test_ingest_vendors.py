"""Several vendors side by side (ARCHITECTURE, decisions of the second round): `vendor` is part
of the option_quotes key, readers pick one vendor per (underlying, trade_date) by a documented
preference (default, lake setting, per-call override); index_members carries `known_at` so a
backdated membership cannot leak."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventvol.data_lake.store import file_hash
from eventvol.data_lake import Lake, SchemaError
from eventvol.data_lake.ingest import ingest_files
from eventvol.data_lake.vendors import (DEFAULT_VENDOR_PREFERENCE, pick_vendor, set_vendor_preference,
                                        vendor_pick_sql, vendor_preference)
from eventvol.pipelines.crosssection.common import member_mask

FIX = Path(__file__).parent / "fixtures" / "ingest"
D = dt.date


@pytest.fixture
def two_vendor_lake(empty_lake) -> Lake:
    """SPX 2023-03-16/17 from Cboe DataShop and from IvyDB (the same contracts)."""
    ingest_files(empty_lake, "cboe-eod", [FIX / "cboe_eod_calcs.csv"])
    ingest_files(empty_lake, "ivydb-secprd", [FIX / "ivydb_secprd.csv"])
    ingest_files(empty_lake, "ivydb-opprcd", [FIX / "ivydb_opprcd.csv"])
    return empty_lake


def test_a_second_vendor_no_longer_overwrites_the_first(two_vendor_lake):
    n = two_vendor_lake.df("SELECT vendor, trade_date, count(*) AS n FROM option_quotes GROUP BY ALL ORDER BY 1, 2")
    assert n.values.tolist() == [["cboe-datashop", D(2023, 3, 16), 5], ["cboe-datashop", D(2023, 3, 17), 2],
                                 ["optionmetrics", D(2023, 3, 16), 4], ["optionmetrics", D(2023, 3, 17), 1]]
    # the same contract, two vendors' values
    both = two_vendor_lake.df("SELECT vendor, bid, iv FROM option_quotes WHERE trade_date = '2023-03-16' AND root = 'SPXW' "
                              "AND strike = 3900 AND option_type = 'P' ORDER BY vendor")
    assert both.vendor.tolist() == ["cboe-datashop", "optionmetrics"] and both.bid.tolist() == [11.20, 11.20]
    assert both.iv.iloc[0] == 0.2544 and pd.isna(both.iv.iloc[1])  # IvyDB's -99.99


def test_pick_vendor_by_hand():
    rows = pa.table({
        "underlying": ["SPX", "SPX", "SPX", "SPX", "NDX", "NDX", "NDX"],
        "trade_date": pa.array([D(2023, 1, 3), D(2023, 1, 3), D(2023, 1, 4), D(2023, 1, 3), D(2023, 1, 3),
                                D(2023, 1, 3), D(2023, 1, 3)], pa.date32()),
        "vendor": ["orats", "cboe-datashop", "orats", "cboe-datashop", "zeta", "beta", "beta"],
        "strike": [1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    })
    # DataShop before ORATS on 01-03; ORATS alone on 01-04; unlisted vendors alphabetically
    got = pick_vendor(rows)
    assert got.column("strike").to_pylist() == [1.0, 2.0, 3.0, 5.0, 6.0]  # row order kept
    assert pick_vendor(rows, ["orats", "cboe-datashop"]).column("strike").to_pylist() == [1.0, 2.0, 5.0, 6.0]
    assert pick_vendor(rows, ["zeta"]).column("strike").to_pylist() == [1.0, 2.0, 3.0, 4.0]
    # pandas in, pandas out, same rows and index
    df = rows.to_pandas()
    assert pick_vendor(df).index.tolist() == [1, 2, 3, 5, 6]
    # dictionary-encoded columns (as the gex loader reads them) pick the same rows
    enc = pa.table({c: (pc_encode(rows.column(c)) if c in ("underlying", "vendor") else rows.column(c))
                    for c in rows.column_names})
    assert pick_vendor(enc).column("strike").to_pylist() == [1.0, 2.0, 3.0, 5.0, 6.0]
    # a single-vendor table is returned as is
    one = rows.filter(pa.compute.equal(rows.column("vendor"), "orats"))
    assert pick_vendor(one) is one


def pc_encode(col):
    return pa.compute.dictionary_encode(col)


def test_sql_pick_equals_pick_vendor(two_vendor_lake):
    for pref in (None, ["optionmetrics"], ["nobody"]):
        sql = f"SELECT * FROM {vendor_pick_sql(pref)} ORDER BY trade_date, root, expiration, strike, option_type, vendor"
        via_sql = two_vendor_lake.df(sql)
        via_py = pick_vendor(two_vendor_lake.read("option_quotes"), pref)
        via_py = via_py.sort_values(["trade_date", "root", "expiration", "strike", "option_type", "vendor"])
        pd.testing.assert_frame_equal(via_sql.reset_index(drop=True), via_py.reset_index(drop=True))
    assert set(two_vendor_lake.df(f"SELECT vendor FROM {vendor_pick_sql()}").vendor) == {"cboe-datashop"}
    # unlisted vendors: alphabetical, so cboe-datashop before optionmetrics
    assert set(two_vendor_lake.df(f"SELECT vendor FROM {vendor_pick_sql(['nobody'])}").vendor) == {"cboe-datashop"}


def test_lake_setting_and_per_call_override(two_vendor_lake):
    lake = two_vendor_lake
    assert vendor_preference(lake) == DEFAULT_VENDOR_PREFERENCE
    q = lake.read("option_quotes")
    assert set(pick_vendor(q, lake=lake).vendor) == {"cboe-datashop"}
    set_vendor_preference(lake, ["optionmetrics", "cboe-datashop"])
    assert vendor_preference(Lake.open(lake.root)) == ("optionmetrics", "cboe-datashop")
    picked = pick_vendor(q, lake=lake)
    # IvyDB holds both days: it wins both
    assert set(picked.vendor) == {"optionmetrics"} and len(picked) == 5
    assert set(pick_vendor(q, ["cboe-datashop"], lake=lake).vendor) == {"cboe-datashop"}  # the call wins
    set_vendor_preference(lake, None)
    assert vendor_preference(lake) == DEFAULT_VENDOR_PREFERENCE
    with pytest.raises(SchemaError, match="names a vendor twice"):
        set_vendor_preference(lake, ["orats", "orats"])
    (lake.root / "settings.json").write_text("{not json")
    with pytest.raises(SchemaError, match=r"settings.json is not a readable JSON settings file"):
        vendor_preference(lake)


def test_pick_sees_only_vendors_known_as_of(two_vendor_lake):
    lake = two_vendor_lake
    pref = ["optionmetrics", "cboe-datashop"]
    # 18:00 ET on 03-16: DataShop's EOD file is out, IvyDB's delivery only comes at 06:00 ET on 03-17
    early = pick_vendor(lake.read("option_quotes", as_of="2023-03-16 22:00", where="trade_date = '2023-03-16'"), pref)
    late = pick_vendor(lake.read("option_quotes", as_of="2023-03-17 10:00", where="trade_date = '2023-03-16'"), pref)
    assert set(early.vendor) == {"cboe-datashop"} and len(early) == 5
    assert set(late.vendor) == {"optionmetrics"} and len(late) == 4


MEMBERS = ("index,symbol,start_date,end_date,known_at\n"
           "SPX,AAA,2020-01-02,,\n"                    # no known_at: the open of start_date
           "SPX,BBB,2020-01-02,,2020-03-02\n"          # backdated: published on 03-02 (16:00 ET)
           "SPX,CCC,2020-01-02,,2020-03-03 09:15\n")   # published before the open of 03-03


def test_members_known_at_as_of_and_poison(empty_lake, tmp_path):
    p = tmp_path / "members.csv"
    p.write_text(MEMBERS)
    ingest_files(empty_lake, "members-csv", [p])
    m = empty_lake.read("index_members").set_index("symbol")
    assert m.loc["AAA", "known_at"] == pd.Timestamp("2020-01-02 14:30", tz="UTC")  # 09:30 EST
    assert m.loc["BBB", "known_at"] == pd.Timestamp("2020-03-02 21:00", tz="UTC")  # 16:00 EST
    assert m.loc["CCC", "known_at"] == pd.Timestamp("2020-03-03 14:15", tz="UTC")
    seen = lambda t: sorted(empty_lake.read("index_members", as_of=t).symbol)  # noqa: E731
    assert seen("2020-02-14") == ["AAA"]  # the backdated memberships do not leak into February
    assert seen("2020-03-02 20:59:59") == ["AAA"] and seen("2020-03-02 21:00") == ["AAA", "BBB"]
    assert seen("2020-03-03 14:15") == ["AAA", "BBB", "CCC"]
    # the factor pipelines' member mask: from the first session whose close follows known_at
    dates = np.array(["2020-01-02", "2020-02-28", "2020-03-02", "2020-03-03"], dtype="datetime64[D]")
    mask = member_mask(empty_lake.read("index_members"), "SPX", dates, np.array(["AAA", "BBB", "CCC"], object))
    assert mask.tolist() == [[True, False, False], [True, False, False], [True, True, False], [True, True, True]]


def test_members_written_before_known_at_still_read(empty_lake):
    """Schema evolution: a lake whose index_members file predates the column reads NULL there,
    and the next ingest rewrites the file with the column, old rows kept."""
    folder = empty_lake.root / "tables" / "index_members"
    folder.mkdir(parents=True)
    old = pa.table({"index": ["SPX"], "symbol": ["OLD"], "start_date": pa.array([D(2019, 1, 2)], pa.date32()),
                    "end_date": pa.array([None], pa.date32())})
    pq.write_table(old, folder / "old.parquet")
    # named by its content hash as the lake names its parts (reads verify it)
    (folder / "old.parquet").rename(folder / f"part-{file_hash(folder / 'old.parquet')}.parquet")
    lake = Lake.open(empty_lake.root)
    got = lake.read("index_members")
    assert got.symbol.tolist() == ["OLD"] and got.known_at.isna().all()
    assert len(lake.read("index_members", as_of="2030-01-01")) == 0  # unknown time: not for as_of reads
    # the pipelines take a NULL known_at as known at start (the pre-column behaviour)
    assert member_mask(got, "SPX", np.array(["2019-01-02"], "datetime64[D]"), np.array(["OLD"], object)).tolist() == [[True]]
    ingest_files(lake, "members-csv", [FIX / "members.csv"])
    after = lake.read("index_members").set_index("symbol")
    assert pd.isna(after.loc["OLD", "known_at"]) and after.loc["AAPL", "known_at"] == pd.Timestamp("1990-01-02 14:30", tz="UTC")
    assert "known_at" in pq.read_schema(lake.files("index_members")[0]).names
    assert sorted(lake.read("index_members", as_of="2000-01-01").symbol) == ["AAPL", "XOM"]


def test_gex_loaders_read_one_vendor_per_chain(two_vendor_lake):
    from eventvol.pipelines.loaders import GEX_COLUMNS, load_chains, load_gex_chains

    lake = two_vendor_lake
    gex = load_gex_chains(lake, underlying="SPX")
    assert gex.column_names == GEX_COLUMNS and gex.num_rows == 7  # DataShop's 5 + 2 rows, not IvyDB's
    assert sorted(gex.column("iv").to_pylist()) == sorted(
        lake.df("SELECT iv FROM option_quotes WHERE vendor = 'cboe-datashop'").iv.tolist())
    assert load_gex_chains(lake, vendors=["optionmetrics"]).num_rows == 5
    # as of 18:00 ET on 03-16 IvyDB's rows are not out yet: DataShop's chain even when IvyDB is preferred
    assert load_gex_chains(lake, vendors=["optionmetrics"], as_of="2023-03-16 22:00").num_rows == 5
    chains = load_chains(lake, underlying="SPX", start="2023-03-16", end="2023-03-16", vendors=["optionmetrics"])
    assert chains.num_rows == 4 and chains.column("vendor").unique().to_pylist() == ["optionmetrics"]
    assert load_chains(lake, start="2023-03-16", end="2023-03-16", columns=["strike", "vendor"]).column(
        "vendor").unique().to_pylist() == ["cboe-datashop"]


@pytest.fixture
def second_vendor_lake(lake_copy) -> Lake:
    """The small synthetic lake plus, for March 2023, a second vendor's copy of every chain with
    doubled open interest and IVs 10% higher: an unlisted vendor, so it ranks after `synthetic`."""
    q = lake_copy.read("option_quotes", where="trade_date >= '2023-03-01' AND trade_date <= '2023-03-31'")
    other = q.assign(vendor="zz-test", open_interest=q.open_interest * 2, iv=q.iv * 1.1)
    lake_copy.write("option_quotes", other)
    assert len(lake_copy.read("option_quotes", where="trade_date >= '2023-03-01' AND trade_date <= '2023-03-31'")) == 2 * len(q)
    return lake_copy


def _readers(lake, lo=D(2023, 3, 1), hi=D(2023, 3, 31)):
    from eventvol.pipelines.crosssection import implied, squeeze
    from eventvol.strategies.loaders import chains_at, leg_quotes_between

    calls = squeeze.load(lake, lo, hi)["call_gamma"]
    atm = implied.load(lake, lo, hi)["atm"]
    atm = atm[(atm.trade_date >= lo) & (atm.trade_date <= hi)].reset_index(drop=True)
    one = lake.df("SELECT underlying, root, expiration, strike, option_type FROM option_quotes "
                  "WHERE trade_date = '2023-03-15' AND vendor = 'synthetic' ORDER BY 1, 2, 3, 4, 5 LIMIT 1").iloc[0]
    wanted = pd.DataFrame({"event_id": ["e1"], "underlying": [one.underlying], "trade_date": [D(2023, 3, 15)],
                           "decision_ts": [pd.Timestamp("2023-03-16 12:00", tz="UTC")]})
    legs = pd.DataFrame({"event_id": ["e1"], "leg": [0], "underlying": [one.underlying], "root": [one.root],
                         "expiration": [one.expiration], "strike": [one.strike], "option_type": [one.option_type],
                         "start": [D(2023, 3, 13)], "end": [D(2023, 3, 17)]})
    return calls, atm, chains_at(lake, wanted), leg_quotes_between(lake, legs)


def test_every_chain_reader_uses_one_vendor(small_lake, second_vendor_lake):
    """squeeze's call gamma, implied correlation's ATM IVs and the backtests' chains and leg
    quotes read the picked vendor only: the same numbers as the one-vendor lake by default, and
    exactly the other vendor's (OI x2, IV x1.1) when the lake setting prefers it."""
    base = _readers(small_lake)
    two = _readers(second_vendor_lake)
    pd.testing.assert_frame_equal(two[0], base[0])
    pd.testing.assert_frame_equal(two[1], base[1])
    pd.testing.assert_frame_equal(two[2], base[2])
    pd.testing.assert_frame_equal(two[3], base[3])
    assert len(base[3]) >= 3 and base[3].trade_date.is_unique  # one quote per session, not one per vendor

    set_vendor_preference(second_vendor_lake, ["zz-test"])
    other = _readers(second_vendor_lake)
    assert len(other[2]) == len(base[2]) and len(other[3]) == len(base[3])
    assert np.allclose(other[1].atm_iv, base[1].atm_iv * 1.1, rtol=1e-12)
    assert np.allclose(other[2].iv.dropna(), base[2].iv.dropna() * 1.1, rtol=1e-12)
    num = [c for c in base[0].columns if base[0][c].dtype.kind == "f"]
    assert num and not np.allclose(other[0][num].to_numpy(float), base[0][num].to_numpy(float), equal_nan=True)


def test_cli_lake_vendors(two_vendor_lake, eventvol_cli):
    import json

    root = str(two_vendor_lake.root)
    code, out, err = eventvol_cli("lake", "vendors", "--lake", root, "--json")
    assert code == 0, err
    got = json.loads(out)
    assert got["order"] == list(DEFAULT_VENDOR_PREFERENCE) and got["default"] is True
    assert got["held"] == [{"vendor": "cboe-datashop", "rows": 7, "chains": 2}, {"vendor": "optionmetrics", "rows": 5, "chains": 2}]
    code, out, err = eventvol_cli("lake", "vendors", "--lake", root, "--set", "optionmetrics, cboe-datashop")
    assert code == 0 and "vendor order (lake setting): optionmetrics, cboe-datashop" in out
    assert vendor_preference(Lake.open(root)) == ("optionmetrics", "cboe-datashop")
    code, out, err = eventvol_cli("lake", "vendors", "--lake", root, "--set", "orats,orats")
    assert code == 2 and "names a vendor twice" in err and len(err.strip().splitlines()) == 1
    code, out, err = eventvol_cli("lake", "vendors", "--lake", root, "--reset")
    assert code == 0 and "vendor order (default)" in out


def test_a_new_vendor_order_makes_option_factors_due_and_recomputes_them(two_vendor_lake):
    from eventvol.pipelines import refresh as rf

    lake = two_vendor_lake
    first = rf.refresh(lake, factors=["gex"])
    assert len(first.computed) == 2 and rf.refresh(lake, factors=["gex"]).computed == []
    contracts = lambda: lake.df("SELECT trade_date, value FROM factors WHERE factor = 'contracts_used' "  # noqa: E731
                                "ORDER BY trade_date").value.tolist()
    spot = lambda: lake.df("SELECT value FROM factors WHERE factor = 'spot' ORDER BY trade_date").value.tolist()  # noqa: E731
    datashop = spot()
    set_vendor_preference(lake, ["optionmetrics", "cboe-datashop"])
    again = rf.refresh(lake, factors=["gex"])
    assert {u.reason for u in again.computed} == {"changed"} and len(again.computed) == 2
    # IvyDB's chains now: its own underlying prices (secprd) and its contract set
    assert spot() != datashop
    assert rf.refresh(lake, factors=["gex"]).computed == []
    set_vendor_preference(lake, None)  # back to the default: the first fingerprints, due again
    back = rf.refresh(lake, factors=["gex"])
    assert [u.fingerprint for u in back.computed] == [u.fingerprint for u in first.computed]
    assert spot() == datashop and len(contracts()) == 2
