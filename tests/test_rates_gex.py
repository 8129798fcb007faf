"""r from the lake's `rates` table in dealer positioning: linear interpolation in tenor to each
contract's calendar days to expiry (flat beyond the ends, 0 without a curve), checked against
an independent scipy/zoneinfo computation; a lake without rates computes exactly as with r = 0;
rates of later dates change nothing before them."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from eventvol.pipelines import gex
from eventvol.pipelines.factors import compute_range
from eventvol.pipelines.columns import string_flag
from eventvol.pipelines.loaders import group_ids, is_grouped, load_chains, load_gex_chains, load_rates
from eventvol.pipelines.positioning import GEX, gex_factor_rows, positioning_summary

NY = ZoneInfo("America/New_York")
TENORS = [7, 30, 91, 365, 730]
CURVE = [0.030, 0.035, 0.041, 0.046, 0.050]


def curve_table(dates, tenors=TENORS, rates=CURVE) -> pa.Table:
    return pa.table({"trade_date": pa.array([d for d in dates for _ in tenors], pa.date32()),
                     "tenor_days": pa.array(list(tenors) * len(dates), pa.int32()),
                     "rate": pa.array(list(rates) * len(dates), pa.float64())})


def busy_chain(lake):
    """(underlying, trade_date) of the chain with the most contracts carrying OI and IV."""
    row = lake.query("SELECT underlying, trade_date FROM option_quotes WHERE open_interest > 0 AND iv > 0 "
                     "GROUP BY ALL ORDER BY count(*) DESC, underlying, trade_date LIMIT 1")
    return row.column("underlying")[0].as_py(), row.column("trade_date")[0].as_py()


def ref_years(trade_date: dt.date, expiration: dt.date, settlement: str) -> float:
    """Elapsed ACT/365 years, 16:00 ET valuation to 09:30 / 16:00 ET settlement (UTC difference,
    so a DST change counts its real hour)."""
    val = dt.datetime.combine(trade_date, dt.time(16), NY).astimezone(dt.timezone.utc)
    t = dt.time(9, 30) if settlement == "AM" else dt.time(16)
    settle = dt.datetime.combine(expiration, t, NY).astimezone(dt.timezone.utc)
    return (settle - val).total_seconds() / (365 * 86400)


def ref_chain(lake, und, day):
    """The chain as pandas with T and r computed independently (zoneinfo, numpy.interp)."""
    df = lake.read("option_quotes", where="underlying = ? AND trade_date = ?", params=[und, day])
    df["t"] = [ref_years(a, b, s) for a, b, s in zip(df.trade_date, df.expiration, df.settlement)]
    dte = np.array([(b - a).days for a, b in zip(df.trade_date, df.expiration)], float)
    df["r"] = np.interp(dte, TENORS, CURVE)  # flat beyond the ends, like the pipeline
    df["used"] = (df.t > 0) & (df.iv > 0) & (df.open_interest.fillna(0) > 0)
    return df[df.used].reset_index(drop=True)


def ref_profile(x, df):
    s, k, t, v, r = x, df.strike.to_numpy(), df.t.to_numpy(), df.iv.to_numpy(), df.r.to_numpy()
    d1 = (np.log(s / k) + (r + 0.5 * v * v) * t) / (v * np.sqrt(t))
    gamma = norm.pdf(d1) / (s * v * np.sqrt(t))
    sign = np.where(df.option_type == "C", 1.0, -1.0)
    return float(np.sum(sign * gamma * df.open_interest * df.multiplier * s * s * 0.01))


def test_rates_per_row_interpolates_linearly_flat_beyond_ends_zero_without_curve():
    d0, d1 = dt.date(2023, 3, 1), dt.date(2023, 3, 2)
    curves = pa.concat_tables([curve_table([d0]), curve_table([d1], [30, 365], [0.01, 0.02])])
    day0 = (d0 - dt.date(1970, 1, 1)).days
    trade_day = np.array([day0] * 6 + [day0 + 1] * 3 + [day0 + 5], np.int64)
    dte = np.array([0, 7, 20, 91, 500, 900, 10, 200, 400, 30], np.int64)
    r = gex.rates_per_row(curves, trade_day, dte)
    expect = np.concatenate([np.interp(dte[:6], TENORS, CURVE), np.interp(dte[6:9], [30, 365], [0.01, 0.02]), [0.0]])
    np.testing.assert_allclose(r, expect, rtol=1e-15, atol=0)
    # hand values: 20 days is 13/23 of the way from 7 (3.0%) to 30 (3.5%); beyond 730 days flat
    assert r[2] == pytest.approx(0.030 + 0.005 * 13 / 23, rel=1e-15)
    assert r[5] == 0.050 and r[0] == 0.030 and r[9] == 0.0
    assert gex.rates_per_row(None, trade_day, dte) is None
    assert gex.rates_per_row(curves.slice(0, 0), trade_day, dte) is None


def test_gex_with_rates_matches_scipy_reference(lake_copy):
    und, day = busy_chain(lake_copy)
    lake_copy.write("rates", curve_table([day]))
    res = positioning_summary(lake_copy, und, day, all_roots=True)
    df = ref_chain(lake_copy, und, day)
    spot = float(df.underlying_price.iloc[0])
    assert res["contracts_used"] == len(df) > 50
    assert res["net_gex_per_1pct"] == pytest.approx(ref_profile(spot, df), rel=1e-10)
    # vanna with r: d2 = d1 - sigma sqrt(T)
    s, k, t, v, r = spot, df.strike, df.t, df.iv, df.r
    d1 = (np.log(s / k) + (r + 0.5 * v * v) * t) / (v * np.sqrt(t))
    d2 = d1 - v * np.sqrt(t)
    sign = np.where(df.option_type == "C", 1.0, -1.0)
    vex = np.sum(sign * (-norm.pdf(d1) * d2 / v) * df.open_interest * df.multiplier * s * 0.01)
    assert res["net_vex_per_volpt"] == pytest.approx(vex, rel=1e-10)
    # every zero crossing of the re-priced profile, with the interpolated r
    xs = np.linspace(0.5 * spot, 1.5 * spot, 2001)
    f = np.array([ref_profile(x, df) for x in xs])
    roots = [brentq(ref_profile, xs[i], xs[i + 1], args=(df,), xtol=1e-12 * spot, rtol=1e-15)
             for i in range(len(xs) - 1) if f[i] * f[i + 1] < 0]
    assert len(res["zero_gamma_roots"]) == len(roots)
    np.testing.assert_allclose(res["zero_gamma_roots"], roots, rtol=1e-9)
    # and r matters: with r = 0 the reference differs by far more than the tolerance
    flat = df.assign(r=0.0)
    assert abs(ref_profile(spot, flat) - ref_profile(spot, df)) > 1e-6 * abs(ref_profile(spot, df))


def test_lake_without_rates_gives_exactly_the_r0_values(lake_copy):
    lo, hi = dt.date(2023, 3, 1), dt.date(2023, 3, 31)
    assert load_rates(lake_copy, start=lo, end=hi).num_rows == 0
    family = compute_range(lake_copy, GEX, lo, hi)
    canonical = load_chains(lake_copy, start=lo, end=hi)  # every column, r = q = 0 implicitly
    gid, keys = group_ids(canonical)
    arrays = gex.ChainArrays.from_arrow(canonical, gid)
    assert arrays.r is None
    direct = gex_factor_rows(canonical)
    pd.testing.assert_frame_equal(family.reset_index(drop=True), direct.reset_index(drop=True), check_exact=True)
    assert len(family) == len(keys) * 13


def test_rates_of_other_dates_change_nothing_and_future_rates_do_not_leak(lake_copy):
    lo, hi = dt.date(2023, 3, 1), dt.date(2023, 3, 31)
    before = compute_range(lake_copy, GEX, lo, hi)
    days = sorted(set(before.trade_date))
    target = pd.Timestamp(days[3]).date()
    # poison every later session (and one earlier session with a wild curve): the dates
    # without their own curve keep r = 0 bit for bit
    lake_copy.write("rates", curve_table([pd.Timestamp(d).date() for d in days[4:]], [30], [0.25]))
    lake_copy.write("rates", curve_table([target]))
    after = compute_range(lake_copy, GEX, lo, hi)
    key = ["factor", "trade_date", "entity"]
    m = before.merge(after, on=key, suffixes=("_0", "_1"))
    assert len(m) == len(before)
    td = pd.to_datetime(m.trade_date).dt.date
    early = m[td < target]
    np.testing.assert_array_equal(early.value_0.to_numpy(), early.value_1.to_numpy())
    on = m[(td == target) & (m.factor == "net_gex_per_1pct")]
    assert len(on) > 0 and not np.allclose(on.value_0, on.value_1, rtol=1e-9, atol=0)
    later = m[(td > target) & (m.factor == "net_gex_per_1pct")]
    assert not np.allclose(later.value_0, later.value_1, rtol=1e-9, atol=0)
    # the family's value on the target date is the single-chain summary with the same curve
    und = on.entity.iloc[0]
    summary = positioning_summary(lake_copy, und, target)
    assert summary["net_gex_per_1pct"] == on[on.entity == und].value_1.iloc[0]


def test_gex_loader_reads_codes_not_strings_grouped_and_equal_to_the_canonical_read(small_lake):
    lo, hi = dt.date(2023, 2, 1), dt.date(2023, 2, 28)
    fast = load_gex_chains(small_lake, start=lo, end=hi)
    full = load_chains(small_lake, start=lo, end=hi)
    assert fast.num_rows == full.num_rows and is_grouped(fast)
    # strings arrive dictionary-encoded (one code per row), numbers in their stored types
    for name in ("underlying", "settlement", "option_type"):
        assert pa.types.is_dictionary(fast.schema.field(name).type)
    assert pa.types.is_int64(fast.schema.field("open_interest").type)
    np.testing.assert_array_equal(string_flag(fast.column("option_type"), "C"),
                                  full.column("option_type").to_numpy(zero_copy_only=False) == "C")
    np.testing.assert_array_equal(string_flag(fast.column("settlement"), "AM"),
                                  full.column("settlement").to_numpy(zero_copy_only=False) == "AM")
    ga, ka = group_ids(fast)
    gb, kb = group_ids(full)
    np.testing.assert_array_equal(ga, gb)
    assert ka.equals(kb)
    a = gex.ChainArrays.from_arrow(fast, ga)
    b = gex.ChainArrays.from_arrow(full, gb)
    for name in ("group", "spot", "strike", "iv", "open_interest", "multiplier", "is_call", "volume",
                 "trade_day", "expiry_day", "is_am"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.years(), b.years())
    # the underlying filter and as_of are pushed into the same scan
    one = load_gex_chains(small_lake, underlying=ka.underlying.iloc[0], start=lo, end=hi)
    assert one.num_rows == (full.column("underlying").to_numpy(zero_copy_only=False) == ka.underlying.iloc[0]).sum()
    assert load_gex_chains(small_lake, start=lo, end=hi, as_of=dt.datetime(2023, 1, 31)).num_rows == 0


def test_gex_loader_sorts_rows_a_foreign_file_left_out_of_order():
    parts = [pa.table({
        "underlying": pa.array(["B", "A", "B", "A"]).dictionary_encode(),
        "trade_date": pa.array([dt.date(2023, 1, 2)] * 4, pa.date32()),
        "strike": [1.0, 2.0, 3.0, 4.0]})]
    from eventvol.pipelines.loaders import grouped_chains_of

    tbl = grouped_chains_of(parts)
    assert tbl.column("strike").to_pylist() == [2.0, 4.0, 1.0, 3.0]  # stable within a group
    assert is_grouped(tbl) and group_ids(tbl)[1].underlying.tolist() == ["A", "B"]


def test_is_grouped_and_group_ids_on_unsorted_rows():
    tbl = pa.table({"underlying": ["A", "A", "B", "B", "A"],
                    "trade_date": pa.array([dt.date(2023, 1, d) for d in (1, 2, 1, 1, 3)], pa.date32())})
    assert not is_grouped(tbl)
    assert is_grouped(tbl.slice(0, 4))
    assert not is_grouped(pa.table({"underlying": ["A", "A"],
                                    "trade_date": pa.array([dt.date(2023, 1, 2), dt.date(2023, 1, 1)], pa.date32())}))
    gid, keys = group_ids(tbl)
    assert gid.tolist() == [0, 1, 2, 2, 3]
    assert keys.underlying.tolist() == ["A", "A", "B", "A"]


def test_years_to_expiry_days_matches_zoneinfo_across_dst():
    rng = np.random.default_rng(3)
    td = np.datetime64("2021-01-01") + rng.integers(0, 1200, 400).astype("timedelta64[D]")
    ed = td + rng.integers(-3, 400, 400).astype("timedelta64[D]")
    am = rng.random(400) < 0.5
    t = gex.years_to_expiry(td, ed, np.where(am, "AM", "PM"))
    ref = [ref_years(a.astype(dt.date), b.astype(dt.date), "AM" if x else "PM") for a, b, x in zip(td, ed, am)]
    np.testing.assert_allclose(t, ref, rtol=0, atol=1e-15)
    # far-apart dates take the distinct-days path: same numbers
    far = gex.years_to_expiry(np.array(["1990-03-01", "2021-03-12"], "datetime64[D]"),
                              np.array(["2090-03-02", "2021-03-15"], "datetime64[D]"), np.array([False, True]))
    assert far[1] == pytest.approx(ref_years(dt.date(2021, 3, 12), dt.date(2021, 3, 15), "AM"), abs=1e-15)
    assert far[0] == pytest.approx(ref_years(dt.date(1990, 3, 1), dt.date(2090, 3, 2), "PM"), abs=1e-13)


@pytest.mark.parametrize("table,kw,msg", [
    ("option_quotes", {"columns": ["strike", "no_such"]}, "has no column 'no_such'"),
    ("option_quotes", {"columns": ["strike"], "equals": {"bogus": 1}}, "has no column 'bogus'"),
    ("index_members", {"columns": ["symbol"]}, "is not partitioned by date"),
    ("bars", {"columns": ["close"], "as_of": "2023-02-01"}, "has no point-in-time column"),
])
def test_scan_partitions_refuses_bad_requests_in_one_sentence(small_lake, table, kw, msg):
    from eventvol.data_lake import NoDataError

    with pytest.raises(NoDataError, match=msg) as err:
        list(small_lake.scan_partitions(table, **kw))
    assert "\n" not in str(err.value)
