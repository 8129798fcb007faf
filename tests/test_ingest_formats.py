"""Each vendor format mapped onto the canonical tables, checked value by value against the
fixture rows (written from the vendors' published column specifications) and hand calculations."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pandas as pd
import pytest

from eventvol.data_lake.ingest import FORMATS, ingest_files, read_quarantine

FIX = Path(__file__).parent / "fixtures" / "ingest"
D = dt.date


def _oq(lake, where="true", params=None) -> pd.DataFrame:
    return lake.df(f"SELECT * FROM option_quotes WHERE {where} ORDER BY trade_date, root, expiration, strike, option_type", params)


def test_formats_list_is_the_public_contract():
    assert set(FORMATS) >= {
        "cboe-quotetable", "cboe-eod", "ivydb-opprcd", "ivydb-secprd", "ivydb-distrd", "ivydb-zerocd",
        "orats-strikes", "prices-csv", "members-csv", "events-csv", "letf-csv", "short-interest-csv", "ff-monthly"}


def test_cboe_quotetable_small(empty_lake):
    r = ingest_files(empty_lake, "cboe-quotetable", [FIX / "cboe_quotetable_small.csv"])
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (3, 6, 0)
    df = _oq(empty_lake)
    assert set(df.trade_date) == {D(2025, 1, 6)}
    # "January 6, 2025 at 9:26 PM EST" = 2025-01-07 02:26 UTC
    assert set(df.quote_ts) == {pd.Timestamp("2025-01-07 02:26", tz="UTC")}
    assert set(df.underlying_price) == {5975.3799}
    # same-day expired rows are data; Cboe's IV 0 means "no value" and is stored as NULL
    expired = df[df.expiration == D(2025, 1, 6)]
    assert len(expired) == 2 and expired.iv.isna().all()
    third = df[df.expiration == D(2025, 1, 17)].set_index(["root", "option_type"])
    assert third.loc[("SPX", "C"), "settlement"] == "AM" and third.loc[("SPXW", "C"), "settlement"] == "PM"
    assert third.loc[("SPX", "C"), "bid"] == 112.4 and third.loc[("SPXW", "C"), "bid"] == 114.1
    assert third.loc[("SPX", "P"), "open_interest"] == 52312 and third.loc[("SPXW", "P"), "iv"] == 0.1708
    assert set(df.underlying) == {"SPX"} and set(df.multiplier) == {100}


def test_cboe_eod_with_calcs_uses_eod_quotes_and_1545_greeks_and_underlying(empty_lake):
    r = ingest_files(empty_lake, "cboe-eod", [FIX / "cboe_eod_calcs.csv"])
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (7, 7, 0)
    df = _oq(empty_lake)
    assert set(df.underlying) == {"SPX"}  # ^SPX
    c = df[(df.trade_date == D(2023, 3, 16)) & (df.root == "SPX") & (df.option_type == "C")].iloc[0]
    assert (c.bid, c.ask) == (70.20, 71.80)  # bid_eod/ask_eod, not bid_1545 68.10
    assert (c.iv, c.delta, c.vega, c.theta) == (0.2211, 0.8102, 0.5512, -2.1502)  # 15:45 calcs
    assert c.settlement == "AM" and c.volume == 120 and c.open_interest == 15321
    # the underlying stored beside the 15:45 IVs is the 15:45 one (active_underlying_price_1545),
    # not the 16:00 EOD mid (3917.00 on 03-17; 0/0 on 03-16)
    assert c.underlying_price == 3955.12
    d2 = df[df.trade_date == D(2023, 3, 17)]
    assert set(d2.underlying_price) == {3917.50}
    # quotes at the 16:00 ET close (20:00 UTC in March after DST), known two hours later
    assert c.quote_ts == pd.Timestamp("2023-03-16 20:00", tz="UTC")
    assert c.available_ts == pd.Timestamp("2023-03-16 22:00", tz="UTC")


def test_cboe_eod_without_calcs(empty_lake):
    ingest_files(empty_lake, "cboe-eod", [FIX / "cboe_eod_nocalcs.csv"])
    df = _oq(empty_lake)
    assert len(df) == 3 and df.iv.isna().all() and df.delta.isna().all()
    assert set(df.settlement) == {"PM"} and set(df.underlying) == {"MSFT"}
    assert df.underlying_price.iloc[0] == pytest.approx((239.52 + 239.58) / 2)


def test_ivydb_files(empty_lake):
    ingest_files(empty_lake, "ivydb-secprd", [FIX / "ivydb_secprd.csv"])
    bars = empty_lake.read("bars").set_index(["symbol", "trade_date"])
    # IvyDB's negative close is a bid/ask midpoint: stored as its absolute value
    assert bars.loc[("MSFT", D(2023, 3, 16)), "close"] == 276.40
    r = ingest_files(empty_lake, "ivydb-opprcd", [FIX / "ivydb_opprcd.csv"])
    assert r.rows_written == 5
    df = _oq(empty_lake)
    c = df[(df.root == "SPX") & (df.option_type == "C")].iloc[0]
    assert c.strike == 3900.0  # strike_price / 1000
    assert c.settlement == "AM" and df[df.root == "SPXW"].settlement.eq("PM").all()
    assert c.vega == pytest.approx(55.12 / 100) and c.theta == pytest.approx(-784.8 / 365)
    assert c.underlying_price == 3960.28  # the secprd close of the same day, from the lake
    missing = df[(df.root == "SPXW") & (df.option_type == "P") & (df.expiration == D(2023, 3, 17))].iloc[0]
    assert pd.isna(missing.iv) and pd.isna(missing.delta)  # -99.99
    # delivered overnight: usable from 06:00 ET of the next session (Fri 03-17 -> Mon 03-20)
    later = df[df.trade_date == D(2023, 3, 17)].iloc[0]
    assert later.available_ts == pd.Timestamp("2023-03-20 10:00", tz="UTC")

    r = ingest_files(empty_lake, "ivydb-distrd", [FIX / "ivydb_distrd.csv"])
    assert (r.rows_written, r.rows_quarantined) == (2, 1)
    ca = empty_lake.read("corporate_actions").set_index("symbol")
    assert ca.loc["TSLA", "kind"] == "split" and ca.loc["TSLA", "ratio"] == 20.0
    assert ca.loc["MSFT", "kind"] == "dividend" and ca.loc["MSFT", "amount"] == 0.68
    assert ca.loc["MSFT", "known_at"] == pd.Timestamp("2022-11-29 21:00", tz="UTC")  # declared, at the close
    q = read_quarantine(empty_lake).to_pandas()
    assert q.reason.tolist() == ["cancelled distribution"] and q.line.tolist() == [4]

    ingest_files(empty_lake, "ivydb-zerocd", [FIX / "ivydb_zerocd.csv"])
    rates = empty_lake.read("rates")
    assert rates.rate.tolist()[:3] == pytest.approx([0.045512, 0.046021, 0.043315])


def test_ivydb_opprcd_without_underlying_price_is_quarantined(empty_lake, tmp_path):
    p = tmp_path / "opprcd.csv"
    lines = (FIX / "ivydb_opprcd.csv").read_text().splitlines()
    header = lines[0].split(",")
    i = header.index("forward_price")
    rows = [",".join(c if j != i else "" for j, c in enumerate(line.split(","))) for line in lines[1:3]]
    p.write_text("\n".join([lines[0], *rows]) + "\n")
    r = ingest_files(empty_lake, "ivydb-opprcd", [p])
    assert (r.rows_written, r.rows_quarantined) == (0, 2)
    assert "ivydb-secprd" in read_quarantine(empty_lake).column("reason")[0].as_py()


def test_orats_roots_from_opra(empty_lake):
    r = ingest_files(empty_lake, "orats-strikes", [FIX / "orats_strikes.csv"])
    assert (r.rows_read, r.rows_written) == (3, 6)
    df = _oq(empty_lake)
    assert set(df.trade_date) == {D(2025, 1, 6)}  # M/D/YYYY
    jan17 = df[df.expiration == D(2025, 1, 17)]
    assert sorted(jan17.root.unique()) == ["SPX", "SPXW"]  # the ticker SPX mixes both roots
    p = df[(df.root == "SPX") & (df.option_type == "P")].iloc[0]
    assert p.delta == pytest.approx(0.6712 - 1) and p.iv == 0.1701 and p.open_interest == 52312
    assert p.settlement == "AM"


def test_generic_csvs(empty_lake):
    ingest_files(empty_lake, "prices-csv", [FIX / "prices.csv"])
    bars = empty_lake.read("bars")
    assert len(bars) == 4 and bars[bars.symbol == "BBB"].high.isna().tolist() == [False, True]
    ingest_files(empty_lake, "members-csv", [FIX / "members.csv"])
    m = empty_lake.read("index_members").set_index("symbol")
    assert pd.isna(m.loc["AAPL", "end_date"]) and m.loc["RRC", "end_date"] == D(2016, 3, 18)
    ingest_files(empty_lake, "events-csv", [FIX / "events.csv"])
    ev = empty_lake.read("events").set_index("symbol", drop=False)
    # AMC reacts on the next session, BMO on its own
    assert ev.loc["MSFT", "reaction_session"] == D(2026, 1, 29)
    assert ev.loc["JPM", "reaction_session"] == D(2026, 1, 13)
    assert ev.loc["MSFT", "scheduled_ts"] == pd.Timestamp("2026-01-28 21:05", tz="UTC")
    assert ev[ev.kind == "nfp"].symbol.isna().all()
    ingest_files(empty_lake, "letf-csv", [FIX / "letf.csv"])
    assert empty_lake.read("letf_funds").leverage.tolist() == [-3.0, 3.0, 3.0]
    ingest_files(empty_lake, "short-interest-csv", [FIX / "short_interest.csv"])
    si = empty_lake.read("short_interest", as_of="2021-01-28")
    assert si.shares_short.tolist() == [71196009]  # the 01-29 settlement was published 02-09


def test_real_cboe_quotetables(empty_lake, real_data):
    files = sorted((real_data / "cboe_quotetable").glob("*_2022-02-04.csv"))
    r = ingest_files(empty_lake, "cboe-quotetable", files)
    df = empty_lake.df("SELECT underlying, trade_date, min(quote_ts) AS ts, count(*) AS n, "
                       "count(DISTINCT expiration) AS nexp FROM option_quotes GROUP BY ALL ORDER BY underlying")
    # the SPX page was saved on Saturday 2022-02-05: the data is Friday's session
    assert df.trade_date.tolist() == [D(2022, 2, 4), D(2022, 2, 4)]
    assert df.ts.tolist() == [pd.Timestamp("2022-02-06 01:26", tz="UTC"), pd.Timestamp("2022-02-06 01:09", tz="UTC")]
    lines = {f.name: sum(1 for _ in open(f)) - 4 for f in files}
    assert r.rows_read == sum(lines.values())
    assert r.rows_written + 2 * r.rows_quarantined == 2 * r.rows_read
    assert df.nexp.tolist() == [34, 40]
    roots = empty_lake.df("SELECT root, settlement FROM option_quotes GROUP BY ALL ORDER BY root")
    assert dict(zip(roots.root, roots.settlement)) == {"NDX": "AM", "NDXP": "PM", "SPX": "AM", "SPXW": "PM"}
    # Cboe lists NDX strikes of 1.00 (Dec 2022, spot 14,694): real contracts, kept (the old fixed
    # 200x-from-spot rule refused them); the one refused line is a crossed SPX quote
    low = empty_lake.df("SELECT root, option_type FROM option_quotes WHERE strike = 1 ORDER BY 1, 2")
    assert low.values.tolist() == [["NDX", "C"], ["NDX", "P"], ["NDXP", "C"], ["NDXP", "P"]]
    q = read_quarantine(empty_lake).to_pylist()
    assert [(x["line"], x["column"], x["reason"]) for x in q] == [(10259, "bid", "crossed quote: bid > ask")]


def _gz_head(src: Path, dst: Path, lines: int) -> Path:
    """The first `lines` lines of a real gzip file: its exact format at a fraction of the
    33 years (396 month partitions) that make a full write slow for a unit test."""
    with gzip.open(src, "rt") as f, gzip.open(dst, "wt") as g:
        for _ in range(lines):
            g.write(f.readline())
    return dst


def test_real_prices_members_and_ff(empty_lake, real_data, tmp_path):
    p = real_data / "prices"
    # 1990-01-02 .. 1990-03: 20 symbols a day in the large caps file
    caps = _gz_head(p / "us_large_caps_20_daily_close.csv.gz", tmp_path / "caps.csv.gz", 1 + 20 * 60)
    spx = _gz_head(p / "spx_daily_close_1990_2022.csv.gz", tmp_path / "spx.csv.gz", 1 + 60)
    r = ingest_files(empty_lake, "prices-csv", [caps, spx])
    assert (r.rows_read, r.rows_written, r.rows_quarantined) == (20 * 60 + 60, 20 * 60 + 60, 0)
    n = empty_lake.df("SELECT count(DISTINCT symbol) AS s, min(trade_date) AS lo FROM bars")
    assert n.s[0] == 21 and n.lo[0] == D(1990, 1, 2)
    spx = empty_lake.df("SELECT close FROM bars WHERE symbol = 'SPX' AND trade_date = '1990-01-02'")
    assert spx.close.tolist() == [359.69]
    members = tmp_path / "members.csv"
    syms = empty_lake.df("SELECT DISTINCT symbol FROM bars WHERE symbol <> 'SPX' ORDER BY 1").symbol
    members.write_text("index,symbol,start_date,end_date\n" + "".join(f"SPX,{s},1990-01-02,\n" for s in syms))
    ingest_files(empty_lake, "members-csv", [members])
    assert len(empty_lake.read("index_members")) == 20

    r = ingest_files(empty_lake, "ff-monthly", [real_data / "factors" / "ff_monthly_factors_1949_2017.csv"])
    fr = empty_lake.read("factor_returns")
    assert r.rows_read == 819 and len(fr) == 819 * 5
    first = fr[fr.period == D(1949, 1, 1)].set_index("factor").value
    assert first.to_dict() == {"HML": 0.0117, "MktRF": 0.0023, "Mom": -0.0292, "RF": 0.0010, "SMB": 0.0181}
