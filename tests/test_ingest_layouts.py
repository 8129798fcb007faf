"""Every layout a vendor has shipped, detected from the header and mapped value by value
(fixtures written from the vendors' published column specifications; docs/ingest.md shows each
header): Cboe DataShop legacy and quotes-only, ORATS API / history / history without OPRA
symbols, IvyDB's `am_set_flag`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from eventvol.data_lake.ingest import IngestError, ingest_files, read_quarantine

FIX = Path(__file__).parent / "fixtures" / "ingest"
D = dt.date
UTC = "UTC"


def _oq(lake) -> pd.DataFrame:
    return lake.df("SELECT * FROM option_quotes ORDER BY trade_date, underlying, root, expiration, strike, option_type")


def _row(df, **eq) -> pd.Series:
    m = pd.Series(True, index=df.index)
    for k, v in eq.items():
        m &= df[k] == v
    [i] = df.index[m]
    return df.loc[i]


def test_datashop_legacy_layout(empty_lake):
    r = ingest_files(empty_lake, "cboe-eod", [FIX / "cboe_datashop_legacy.csv"])
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (5, 5, 0)
    assert r.to_dict()["layouts"] == {str(FIX / "cboe_datashop_legacy.csv"): "datashop-legacy"}
    df = _oq(empty_lake)
    c = _row(df, root="SPX", option_type="C")
    # quoted header; ^SPX -> SPX; "1/4/2016 15:45:00" US/Eastern (EST) = 20:45 UTC; lowercase c
    assert (c.underlying, c.trade_date, c.expiration, c.strike) == ("SPX", D(2016, 1, 4), D(2016, 1, 15), 2000.0)
    assert c.quote_ts == pd.Timestamp("2016-01-04 20:45", tz=UTC)
    assert c.available_ts == pd.Timestamp("2016-01-04 23:00", tz=UTC)  # close + 2 h, as the EOD layout
    # the quotes, the underlying and the calcs are one 15:45 snapshot
    assert (c.bid, c.ask, c.iv, c.delta, c.gamma, c.theta, c.vega) == (25.90, 27.20, 0.2043, 0.5762, 0.0061, -0.8921, 1.5810)
    assert (c.underlying_price, c.volume, c.open_interest, c.settlement) == (2011.43, 1553, 32045, "AM")
    p = _row(df, root="SPX", option_type="P")
    assert (p.bid, p.iv, p.open_interest) == (18.40, 0.2311, 60128)
    w = _row(df, root="SPXW", strike=1500.0)
    assert w.option_type == "P" and w.settlement == "PM" and pd.isna(w.iv)  # IV 0 = no value
    # July is EDT: 15:45 ET = 19:45 UTC; the active price is the underlying (not the bid/ask mid 2101.35)
    j = _row(df, trade_date=D(2016, 7, 1))
    assert j.quote_ts == pd.Timestamp("2016-07-01 19:45", tz=UTC) and j.underlying_price == 2101.35


def test_datashop_legacy_bad_timestamp_is_quarantined(empty_lake, tmp_path):
    text = (FIX / "cboe_datashop_legacy.csv").read_text().replace('"1/4/2016 15:45:00","SPXW"', '"2/29/2015 15:45:00","SPXW"', 1)
    p = tmp_path / "legacy.csv"
    p.write_text(text)
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert (r.rows_written, r.rows_quarantined) == (4, 1)
    [q] = read_quarantine(empty_lake).to_pylist()
    assert (q["line"], q["column"], q["reason"], q["value"]) == (4, "quote_datetime", "impossible calendar date",
                                                                 "2/29/2015 15:45:00")


def test_datashop_quotes_only_has_null_iv_and_greeks(empty_lake):
    ingest_files(empty_lake, "cboe-eod", [FIX / "cboe_eod_nocalcs.csv"])
    df = _oq(empty_lake)
    # no calcs columns: IV and greeks are unknown (NULL), never zero
    for col in ("iv", "delta", "gamma", "vega", "theta"):
        assert df[col].isna().all(), col
    c = _row(df, strike=240.0, option_type="C")
    assert (c.bid, c.ask, c.open_interest) == (2.33, 2.41, 30112)  # EOD quotes
    assert c.underlying_price == pytest.approx((239.52 + 239.58) / 2)  # the EOD underlying mid


def test_unknown_datashop_header_is_refused_naming_a_column(empty_lake, tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("underlying_symbol,root,strike\n^SPX,SPX,2000\n")
    with pytest.raises(IngestError, match=r"x.csv: required column 'quote_date' is missing \(the header matches no "
                                          r"cboe-eod layout; closest: datashop-eod\)"):
        ingest_files(empty_lake, "cboe-eod", [p])


def test_orats_history_stores_spot_not_the_implied_forward(empty_lake):
    ingest_files(empty_lake, "orats-strikes", [FIX / "orats_strikes.csv"])
    df = _oq(empty_lake)
    # stkPx (5983.12, 5983.40, 5978.90) is ORATS's forward per expiry for SPX: spot_px is stored
    assert set(df.underlying_price) == {5975.38}


def test_orats_api_layout(empty_lake):
    r = ingest_files(empty_lake, "orats-strikes", [FIX / "orats_api_strikes.csv"])
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (4, 8, 0)
    assert list(r.layouts.values()) == ["orats-api"]
    df = _oq(empty_lake)
    assert set(df.trade_date) == {D(2025, 1, 6)}
    spx = df[df.underlying == "SPX"]
    assert set(spx.underlying_price) == {5975.38}  # spotPrice, not stockPrice (the forward)
    # expiryTod am = the AM monthly (root SPX), pm = the PM weekly (SPXW) on the same third Friday
    am = _row(df, root="SPX", option_type="C")
    pm = _row(df, root="SPXW", expiration=D(2025, 1, 17), option_type="C")
    assert (am.settlement, pm.settlement) == ("AM", "PM")
    assert (am.bid, am.ask, am.iv, am.open_interest, am.volume) == (112.4, 113.9, 0.1633, 40211, 1520)
    assert (pm.bid, pm.open_interest) == (114.1, 12011)
    put = _row(df, root="SPX", option_type="P")
    assert (put.bid, put.ask, put.iv, put.open_interest, put.volume) == (33.8, 34.6, 0.1701, 52312, 2210)
    assert put.delta == pytest.approx(0.6712 - 1) and put.gamma == 0.0018 and pd.isna(put.theta)
    assert _row(df, root="SPXW", expiration=D(2025, 1, 10), option_type="C").settlement == "PM"
    aapl = _row(df, underlying="AAPL", option_type="C")
    assert (aapl.root, aapl.settlement, aapl.underlying_price, aapl.strike) == ("AAPL", "PM", 245.0, 245.0)
    # the API layout says when ORATS took its snapshot (snapShotDate, UTC); without it, 14
    # minutes before the close (16:00 ET = 21:00 UTC in January)
    assert am.quote_ts == pd.Timestamp("2025-01-06 20:45:13", tz=UTC)
    assert aapl.quote_ts == pd.Timestamp("2025-01-06 20:46", tz=UTC)  # its snapShotDate is empty
    assert am.available_ts == pd.Timestamp("2025-01-06 22:00", tz=UTC)


def test_orats_history_without_opra_derives_the_root(empty_lake):
    r = ingest_files(empty_lake, "orats-strikes", [FIX / "orats_strikes_no_opra.csv", FIX / "orats_strikes.csv"])
    assert list(r.layouts.values()) == ["orats-history-no-opra", "orats-history"]
    r = ingest_files(empty_lake, "orats-strikes", [FIX / "orats_strikes_no_opra.csv"])
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (3, 6, 0)
    df = _oq(empty_lake)
    # 2016-01-15 is the third Friday: the AM monthly SPX; 2016-01-08 a weekly: SPXW
    monthly = _row(df, expiration=D(2016, 1, 15), underlying="SPX", option_type="C")
    weekly = _row(df, expiration=D(2016, 1, 8), option_type="P")
    assert (monthly.root, monthly.settlement, weekly.root, weekly.settlement) == ("SPX", "AM", "SPXW", "PM")
    assert monthly.underlying_price == 2012.66 and weekly.underlying == "SPX"  # spot_px, not stkPx
    assert (monthly.bid, monthly.iv, monthly.open_interest, weekly.bid, weekly.iv) == (25.9, 0.2043, 32045, 6.9, 0.2362)
    msft = _row(df, underlying="MSFT", option_type="P")
    assert (msft.root, msft.settlement, msft.strike, msft.ask, msft.open_interest) == ("MSFT", "PM", 55.0, 1.24, 61007)


def test_ivydb_am_set_flag(empty_lake, tmp_path):
    text = (FIX / "ivydb_opprcd.csv").read_text()
    p = tmp_path / "opprcd.csv"
    p.write_text(text.replace(",am_settlement,", ",am_set_flag,", 1))
    ingest_files(empty_lake, "ivydb-opprcd", [p])
    df = _oq(empty_lake)
    # the fixture flags SPX 1 (AM) and SPXW 0 (PM)
    assert set(df[df.root == "SPX"].settlement) == {"AM"} and set(df[df.root == "SPXW"].settlement) == {"PM"}


@pytest.mark.parametrize("spelling", ["c", "C", "call", "Call", "CALL", " c "])
def test_option_type_in_any_case(empty_lake, tmp_path, spelling):
    lines = (FIX / "cboe_eod_nocalcs.csv").read_text().splitlines()
    head = lines[0].split(",")
    row = lines[1].split(",")
    row[head.index("option_type")] = spelling
    p = tmp_path / "eod.csv"
    p.write_text("\n".join([lines[0], ",".join(row)]) + "\n")
    r = ingest_files(empty_lake, "cboe-eod", [p])
    assert r.rows_written == 1 and _oq(empty_lake).option_type.tolist() == ["C"]
