"""IV sources for positioning (`pipelines.ivsource`): the otm rule by hand, pairing that does not
depend on row order, and a quotes-only Cboe DataShop file whose `solved` GEX equals the GEX of
the same chain's vendor IVs within a tolerance derived from the quote rounding."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from eventvol.data_lake import Lake
from eventvol.data_lake.ingest import ingest_files
from eventvol.pipelines import ivsource
from eventvol.pipelines.positioning import PositioningWarning, positioning_summary


# ------------------------------------------------------------------ the rule, by hand
def test_otm_rule_by_hand():
    # one expiry, spot 100: strikes 90 (put side is OTM), 100 and 110 (call side is OTM)
    strike = np.array([90.0, 90.0, 100.0, 100.0, 110.0, 110.0, 120.0])
    is_call = np.array([True, False, True, False, True, False, True])
    vendor = np.array([0.30, 0.25, 0.21, 0.02, np.nan, 0.19, 0.18])
    floor = np.array([0.0, 0.0, 0.0, 0.02, 0.0, 0.0, 0.0])  # row 3 is at its vendor's floor
    z = np.zeros(7, np.int64)
    got = ivsource.clean_iv("otm", iv=vendor, group=z, root=z, expiry=z, strike=strike, spot=np.full(7, 100.0),
                            is_call=is_call, floor=floor)
    # 90: put's 0.25 for both; 100 (K >= S: call side): call's 0.21 for both (the put's 0.02 is a
    # floor anyway); 110: the call (OTM) has none, so the put's 0.19; 120: a lone call keeps its own
    np.testing.assert_array_equal(got.iv, [0.25, 0.25, 0.21, 0.21, 0.19, 0.19, 0.18])
    O, X = ivsource.OWN_VENDOR, ivsource.OTHER_SIDE_VENDOR
    np.testing.assert_array_equal(got.origin, [X, O, O, X, X, O, O])
    same = ivsource.clean_iv("vendor", iv=vendor, group=z, root=z, expiry=z, strike=strike, spot=np.full(7, 100.0),
                             is_call=is_call, floor=floor)
    np.testing.assert_array_equal(same.iv, vendor)  # vendor: as delivered, the floor included


def test_pairing_ignores_row_order_and_refuses_duplicates():
    rng = np.random.default_rng(3)
    n_k = 40
    strike = np.repeat(np.arange(n_k) * 5.0 + 50, 2)
    is_call = np.tile([True, False], n_k)
    root = np.zeros(2 * n_k, np.int64)
    expiry = np.zeros(2 * n_k, np.int64)
    group = np.zeros(2 * n_k, np.int64)
    sorted_partner = ivsource.pair_partner(group, root, expiry, strike, is_call)
    np.testing.assert_array_equal(sorted_partner, np.arange(2 * n_k) ^ 1)
    perm = rng.permutation(2 * n_k)
    shuffled = ivsource.pair_partner(group, root, expiry, strike[perm], is_call[perm])
    # row perm[i] was paired with perm[i] ^ 1: in shuffled positions, partner of i is inv[perm[i] ^ 1]
    inv = np.argsort(perm)
    np.testing.assert_array_equal(shuffled, inv[perm ^ 1])
    # a duplicated put at one strike: that strike is no pair, the others still are
    strike2 = np.insert(strike, 2, strike[1])
    is_call2 = np.insert(is_call, 2, False)
    z = np.zeros(len(strike2), np.int64)
    p = ivsource.pair_partner(z, z, z, strike2, is_call2)
    assert (p[:3] == -1).all() and p[3] == 4 and p[4] == 3


def test_unknown_source_is_refused():
    with pytest.raises(ValueError, match="unknown IV source 'mid'"):
        ivsource.check_source("mid")


# ------------------------------------------------------------------ a quotes-only DataShop file
TRADE = dt.date(2023, 1, 10)  # expiries before the March DST change: T = calendar days / 365
EXPIRIES = (dt.date(2023, 1, 20), dt.date(2023, 2, 10), dt.date(2023, 3, 10))
SPOT = 4000.0
HALF_SPREAD = 0.10


def surface(k, t):
    m = np.log(k / SPOT)
    return 0.18 - 0.25 * m + 0.6 * m * m + 0.02 * np.sqrt(0.25 / t)


def bs(k, t, v, call):
    d1 = (np.log(SPOT / k) + 0.5 * v * v * t) / (v * np.sqrt(t))
    d2 = d1 - v * np.sqrt(t)
    price = np.where(call, SPOT * norm.cdf(d1) - k * norm.cdf(d2), k * norm.cdf(-d2) - SPOT * norm.cdf(-d1))
    return price, d1


def synthetic_datashop(with_calcs: bool) -> tuple[str, pd.DataFrame]:
    """A DataShop EOD CSV of an SPXW chain priced with r = q = 0 at the `surface` IVs; quotes
    rounded to the cent around the model price. Only strikes whose OTM option is worth >= $1
    (so that every mid is two-sided and solvable)."""
    rows = []
    for e in EXPIRIES:
        t = (e - TRADE).days / 365.0
        for k in np.arange(3000.0, 5001.0, 25.0):
            v = surface(k, t)
            otm_call = k >= SPOT
            price_otm, _ = bs(k, t, v, otm_call)
            if price_otm < 1.0:
                continue
            for cp in ("C", "P"):
                price, _ = bs(k, t, v, cp == "C")
                rows.append({"underlying_symbol": "^SPX", "quote_date": TRADE.isoformat(), "root": "SPXW",
                             "expiration": e.isoformat(), "strike": f"{k:.3f}", "option_type": cp,
                             "trade_volume": 10, "bid_eod": f"{round(float(price) - HALF_SPREAD, 2):.2f}",
                             "ask_eod": f"{round(float(price) + HALF_SPREAD, 2):.2f}",
                             "underlying_bid_1545": SPOT, "underlying_ask_1545": SPOT,
                             "underlying_bid_eod": SPOT, "underlying_ask_eod": SPOT,
                             "open_interest": 1000 + int(k) % 700 + (2000 if (cp == "C") == (k > SPOT + 100) else 0), "iv": float(v), "t": t, "k": k, "call": cp == "C"})
    df = pd.DataFrame(rows)
    cols = ["underlying_symbol", "quote_date", "root", "expiration", "strike", "option_type", "trade_volume",
            "underlying_bid_1545", "underlying_ask_1545"]
    out = df[cols].copy()
    if with_calcs:
        out["implied_volatility_1545"] = [repr(x) for x in df["iv"]]
        out["active_underlying_price_1545"] = SPOT
    for c in ("bid_eod", "ask_eod", "underlying_bid_eod", "underlying_ask_eod", "open_interest"):
        out[c] = df[c]
    return out.to_csv(index=False), df


@pytest.fixture(scope="module")
def datashop_lakes(tmp_path_factory):
    base = tmp_path_factory.mktemp("datashop")
    lakes = {}
    for name, calcs in (("calcs", True), ("quotes_only", False)):
        text, df = synthetic_datashop(calcs)
        f = base / f"{name}.csv"
        f.write_text(text)
        lake = Lake.open(base / name, create=True)
        ingest_files(lake, "cboe-eod", [f])
        lakes[name] = lake
    return lakes, df


def test_quotes_only_solved_gex_matches_vendor_iv_gex(datashop_lakes):
    """Tolerance. Each quote is the model price rounded to the cent +- $0.10, so a mid is within
    $0.005 of the model price; the parity forward F = K + C - P from two such mids is within
    $0.01, which moves an option's model price by at most |delta| x $0.01. So the IV solved from
    an OTM mid is within dsigma_K = (0.005 + 0.01 |delta|) / vega of the true IV, and, to first
    order, net GEX is within sum_i |dGEX_i/dsigma| dsigma_K (computed below with scipy, not the
    pipeline); 1.5x that allows for second-order terms."""
    lakes, df = datashop_lakes
    vendor = positioning_summary(lakes["calcs"], "SPX", TRADE, iv_source="vendor")
    solved = positioning_summary(lakes["quotes_only"], "SPX", TRADE, iv_source="solved")
    assert vendor["contracts_used"] == solved["contracts_used"] == len(df) > 250
    k, t, v, call = df.k.to_numpy(), df.t.to_numpy(), df.iv.to_numpy(), df.call.to_numpy()
    oi = df.open_interest.to_numpy(float)
    sd = v * np.sqrt(t)
    d1 = (np.log(SPOT / k) + 0.5 * v * v * t) / sd
    d2 = d1 - sd
    sign = np.where(call, 1.0, -1.0)
    gamma = norm.pdf(d1) / (SPOT * sd)
    dgamma_dsigma = gamma * (d1 * d2 - 1.0) / v
    vega = SPOT * norm.pdf(d1) * np.sqrt(t)
    otm_delta = np.where(k >= SPOT, norm.cdf(d1), norm.cdf(d1) - 1.0)  # delta of the strike's OTM option
    dsigma = (0.005 + 0.01 * np.abs(otm_delta)) / vega
    bound = np.sum(np.abs(sign * dgamma_dsigma * oi * 100 * SPOT * SPOT * 0.01) * dsigma)
    diff = abs(solved["net_gex_per_1pct"] - vendor["net_gex_per_1pct"])
    assert diff <= 1.5 * bound, (diff, bound)
    assert bound < 2e-3 * abs(vendor["net_gex_per_1pct"])  # the tolerance is tight: < 0.2% of net GEX
    # zero gamma moves by (profile error at the root) / (profile slope): the bound above over the
    # profile slope near the root (~1.4e9 $ per 1% per 125 points) is ~0.1 point; observed 3e-4
    assert solved["zero_gamma"] == pytest.approx(vendor["zero_gamma"], abs=0.5)
    assert solved["call_wall"] == vendor["call_wall"] and solved["put_wall"] == vendor["put_wall"]


def test_quotes_only_without_solving_warns_why(datashop_lakes):
    lakes, _ = datashop_lakes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = positioning_summary(lakes["quotes_only"], "SPX", TRADE)  # default otm: no IV to use
    assert s["contracts_used"] == 0 and s["net_gex_per_1pct"] == 0.0
    assert "has an implied vol" in s["warning"] and "--iv-source solved" in s["warning"]
    assert any(issubclass(w.category, PositioningWarning) for w in caught)


def _cli(*args):
    code = "from eventvol.research.cli import main; import sys; sys.argv = ['eventvol'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


def test_cli_iv_source(datashop_lakes):
    lakes, _ = datashop_lakes
    root = str(lakes["quotes_only"].root)
    p = _cli("gex", "--lake", root, "--underlying", "SPX", "--date", TRADE.isoformat(), "--json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["contracts_used"] == 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: no usable contract for SPX on 2023-01-10")
    p = _cli("gex", "--lake", root, "--underlying", "SPX", "--date", TRADE.isoformat(), "--json",
             "--iv-source", "solved")
    assert p.returncode == 0 and p.stderr == ""
    obj = json.loads(p.stdout)
    assert obj["iv_source"] == "solved" and obj["contracts_used"] > 250
    p = _cli("gex", "--lake", root, "--underlying", "SPX", "--date", TRADE.isoformat(), "--iv-source", "mid")
    assert p.returncode == 2 and "unknown --iv-source 'mid'" in p.stderr and "Traceback" not in p.stderr


def test_the_stored_family_records_its_iv_source(datashop_lakes):
    """The `gex` family computes with `otm` and says so in its version, which enters every
    unit's input fingerprint: the same lake under another source would fingerprint differently,
    so each stored unit names the source it was computed with."""
    import dataclasses

    from eventvol.pipelines.positioning import GEX, GEX_IV_SOURCE
    from eventvol.pipelines.refresh import unit_fingerprints

    lakes, _ = datashop_lakes
    assert GEX_IV_SOURCE == "otm" and GEX.version.endswith("iv_source=otm") and "'otm'" in GEX.description
    other = dataclasses.replace(GEX, version=GEX.version.replace("iv_source=otm", "iv_source=vendor"))
    fp = unit_fingerprints(lakes["calcs"], GEX, [TRADE])[TRADE]
    assert fp != unit_fingerprints(lakes["calcs"], other, [TRADE])[TRADE]
    assert fp == unit_fingerprints(lakes["calcs"], GEX, [TRADE])[TRADE]
