"""Real Cboe quote-table chains, ingested through `cboe-quotetable`, against an independent
reference that reads the CSV itself (pandas + zoneinfo + scipy) and applies the
ARCHITECTURE.md convention: ACT/365 from 16:00 ET on the trade date to 09:30 ET (SPX/NDX AM
roots) or 16:00 ET (SPXW/NDXP PM roots), dealers long calls / short puts, with the IV of
each contract per IV source: `vendor` (the file's IV as printed) or `otm` (the default: per CSV
line, i.e. per (root, expiration, strike), the out-of-the-money side's IV for both sides, the
other side's where it is missing or at Cboe's 0.02 floor)."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

ingest = pytest.importorskip("eventvol.data_lake.ingest")

from eventvol.data_lake import Lake  # noqa: E402
from eventvol.pipelines.positioning import positioning_summary  # noqa: E402

ET = ZoneInfo("America/New_York")
CASES = {  # underlying, trade date, files
    "spx_2022": ("SPX", dt.date(2022, 2, 4), ["spx_2022-02-04.csv"]),
    "ndx_2022": ("NDX", dt.date(2022, 2, 4), ["ndx_2022-02-04.csv"]),
    "spx_2025": ("SPX", dt.date(2025, 1, 6), ["spx_2025-01-06_jan-expiries.csv", "spx_2025-01-06_feb-expiries.csv"]),
}
AM = {"SPX", "NDX"}


CBOE_FLOOR = 0.02  # Cboe prints 0.02 where its solver found no IV


def read_quotetable(path, source: str = "vendor") -> tuple[float, pd.DataFrame]:
    """Spot and one row per contract straight from the CSV, `iv` per IV source."""
    spot = float(re.search(r"Last:\s*([0-9.]+)", open(path).read().splitlines()[1]).group(1))
    raw = pd.read_csv(path, skiprows=3, header=0)
    raw.columns = ["exp", "c_sym", "c_last", "c_net", "c_bid", "c_ask", "c_vol", "c_iv", "c_delta", "c_gamma", "c_oi",
                   "strike", "p_sym", "p_last", "p_net", "p_bid", "p_ask", "p_vol", "p_iv", "p_delta", "p_gamma", "p_oi"]
    # the data-quality refusal of the ingest (docs/ingest.md) that these files trigger, applied
    # per CSV line: a crossed quote (bid > ask) on either side. (NDX's strike-1.0 lines are kept
    # since the chain-based units-slip rule; they carry no open interest, so they count nowhere.)
    bad = (raw.c_bid > raw.c_ask) | (raw.p_bid > raw.p_ask)
    raw = raw[~bad].copy()
    if source == "otm":
        # the CSV line holds the call and the put of one (root, expiration, strike): the pairing
        # is the file's own, not the pipeline's
        clean = {s: raw[f"{s}_iv"].where(raw[f"{s}_iv"] > CBOE_FLOOR) for s in ("c", "p")}
        call_otm = raw["strike"] >= spot
        otm = clean["c"].where(call_otm, clean["p"])
        itm = clean["p"].where(call_otm, clean["c"])
        raw["c_iv"] = raw["p_iv"] = otm.fillna(itm)
    sides = []
    for side, cp in (("c", "C"), ("p", "P")):
        sym = raw[f"{side}_sym"].astype(str)
        sides.append(pd.DataFrame({
            "root": sym.str.extract(r"^([A-Z]+)\d")[0],
            "expiration": pd.to_datetime(sym.str.extract(r"^[A-Z]+(\d{6})")[0], format="%y%m%d").dt.date,
            "strike": raw["strike"].astype(float), "is_call": cp == "C",
            "iv": raw[f"{side}_iv"].astype(float).replace(0.0, np.nan),
            "oi": raw[f"{side}_oi"].astype(float), "volume": raw[f"{side}_vol"].astype(float),
        }))
    return spot, pd.concat(sides, ignore_index=True)


def years(trade_date: dt.date, expiration: dt.date, am: bool) -> float:
    val = dt.datetime.combine(trade_date, dt.time(16, 0), ET)
    settle = dt.datetime.combine(expiration, dt.time(9, 30) if am else dt.time(16, 0), ET)
    # elapsed time: convert to UTC first (Python subtracts two datetimes sharing a tzinfo as
    # wall-clock times, which would drop the DST hour for expiries after mid-March)
    return (settle.astimezone(dt.timezone.utc) - val.astimezone(dt.timezone.utc)).total_seconds() / (365 * 86400)


def reference(spot: float, chain: pd.DataFrame, trade_date: dt.date) -> dict:
    df = chain.copy()
    df["t"] = [years(trade_date, e, r in AM) for e, r in zip(df.expiration, df.root)]
    df["days"] = [(e - trade_date).days for e in df.expiration]
    use = df[(df.t > 0) & (df.iv > 0) & (df.oi > 0)].copy()
    sign = np.where(use.is_call, 1.0, -1.0)
    k, t, v, oi = (use[c].to_numpy(float) for c in ("strike", "t", "iv", "oi"))

    def gamma(s):
        d1 = (np.log(s / k) + 0.5 * v ** 2 * t) / (v * np.sqrt(t))
        return norm.pdf(d1) / (s * v * np.sqrt(t))

    def profile(s):
        return float(np.sum(sign * gamma(s) * oi * 100 * s * s * 0.01))

    use["gex"] = sign * gamma(spot) * use.oi * 100 * spot * spot * 0.01
    d1 = (np.log(spot / use.strike) + 0.5 * use.iv ** 2 * use.t) / (use.iv * np.sqrt(use.t))
    d2 = d1 - use.iv * np.sqrt(use.t)
    vex = sign * (-norm.pdf(d1) * d2 / use.iv) * use.oi * 100 * spot * 0.01
    xs = np.linspace(0.5 * spot, 1.5 * spot, 1001)
    f = np.array([profile(x) for x in xs])
    roots = [brentq(profile, xs[i], xs[i + 1], xtol=1e-9, rtol=1e-15) for i in range(len(xs) - 1) if f[i] * f[i + 1] < 0]
    calls = use[use.is_call].groupby("strike").gex.sum()
    puts = use[~use.is_call].groupby("strike").gex.sum()
    return {
        "net_gex_per_1pct": use.gex.sum(), "contracts_used": len(use),
        "net_vex_per_volpt": vex.sum(),
        "gex_0dte": use.gex[use.days == 0].sum(), "gex_le7d": use.gex[(use.days >= 1) & (use.days <= 7)].sum(),
        "gex_gt7d": use.gex[use.days > 7].sum(),
        "zero_dte_volume_share": df.volume[df.days == 0].sum() / df.volume.sum(),
        "call_wall": calls.abs().idxmax(), "put_wall": puts.abs().idxmax(),
        "roots": roots, "zero_gamma": roots[int(np.argmin(np.abs(np.array(roots) - spot)))] if roots else np.nan,
    }


@pytest.fixture(scope="module")
def real_lake(real_data, tmp_path_factory):
    lake = Lake.open(tmp_path_factory.mktemp("real") / "lake", create=True)
    files = sorted({f for _, _, fs in CASES.values() for f in fs})
    ingest.ingest_files(lake, "cboe-quotetable", [real_data / "cboe_quotetable" / f for f in files])
    return lake


@pytest.mark.parametrize("source", ["otm", "vendor"])
@pytest.mark.parametrize("case", list(CASES))
def test_real_chain_matches_independent_reference(case, source, real_lake, real_data):
    und, day, files = CASES[case]
    parts = [read_quotetable(real_data / "cboe_quotetable" / f, source) for f in files]
    spot = parts[0][0]
    ref = reference(spot, pd.concat([p for _, p in parts], ignore_index=True), day)
    ours = positioning_summary(real_lake, und, day, all_roots=True, iv_source=source)
    assert ours["iv_source"] == source
    assert ours["spot"] == spot
    assert ours["contracts_used"] == ref["contracts_used"] > 500
    for name in ("net_gex_per_1pct", "net_vex_per_volpt", "gex_le7d", "gex_gt7d"):
        assert ours[name] == pytest.approx(ref[name], rel=1e-9), name
    assert ours["gex_0dte"] == ref["gex_0dte"] == 0.0  # end of day: same-day expiries are settled
    assert ours["zero_dte_volume_share"] == pytest.approx(ref["zero_dte_volume_share"], rel=1e-12)
    assert ours["call_wall"] == ref["call_wall"] and ours["put_wall"] == ref["put_wall"]
    # every crossing on the reference's 1001-point grid is found by our default 201-point grid
    # only where crossings are further apart than a grid step; the nearest-spot root must agree
    assert ours["zero_gamma"] == pytest.approx(ref["zero_gamma"], rel=1e-10)
    assert ours["zero_gamma_roots_found"] >= 1


def test_real_2025_has_same_day_volume(real_lake):
    s = positioning_summary(real_lake, "SPX", dt.date(2025, 1, 6))
    assert 0.0 < s["zero_dte_volume_share"] < 1.0


def test_otm_is_the_default_and_moves_spx(real_lake):
    """The default is `otm`; on SPX 2022-02-04 it differs from the vendor IVs (the 0.02 floor
    rows and the in-the-money sides), as the reference above confirms value by value."""
    default = positioning_summary(real_lake, "SPX", dt.date(2022, 2, 4))
    vendor = positioning_summary(real_lake, "SPX", dt.date(2022, 2, 4), iv_source="vendor")
    assert default["iv_source"] == "otm"
    assert default["contracts_used"] > vendor["contracts_used"]  # ITM rows with IV 0 borrow the OTM side's
    assert abs(default["net_gex_per_1pct"] / vendor["net_gex_per_1pct"] - 1) > 0.01


def test_cboe_floor_rows_are_not_used_as_vols(real_lake):
    """2,111 SPX 2022-02-04 puts (and 74 calls) print IV 0.02: under `otm` none keeps 0.02;
    each takes its strike's other side's IV (or none); under `vendor` they are used as given."""
    from eventvol.pipelines.gex import ChainArrays
    from eventvol.pipelines.loaders import chain_for

    chain = chain_for(real_lake, "SPX", dt.date(2022, 2, 4))
    raw = chain.column("iv").to_numpy(zero_copy_only=False)
    floor = raw == CBOE_FLOOR
    assert floor.sum() >= 2000
    group = np.zeros(chain.num_rows, np.int64)
    otm = ChainArrays.from_arrow(chain, group, iv_source="otm")
    vendor = ChainArrays.from_arrow(chain, group, iv_source="vendor")
    assert not np.any(otm.iv[floor] == CBOE_FLOOR)
    assert np.all(np.isnan(otm.iv[floor]) | (otm.iv[floor] > CBOE_FLOOR))
    assert np.isfinite(otm.iv[floor]).mean() > 0.9  # nearly all have a usable other side
    assert np.array_equal(vendor.iv[floor], raw[floor])
    # floor rows sit in the money: a put with strike above spot, whose OTM twin is the call
    spot = chain.column("underlying_price").to_numpy()[0]
    is_put = chain.column("option_type").to_numpy(zero_copy_only=False) == "P"
    strike = chain.column("strike").to_numpy()
    assert np.mean(strike[floor & is_put] >= spot) > 0.95
