"""The shared chart module and the positioning chart: the zero gamma marked on the chart is
the one computed (checked against an independent closed-form GEX profile and a scipy root),
GEX by strike sums to net GEX, and every chart has a title, axis units and a legend entry per
series. Formatting of numbers for people, by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import brentq
from scipy.stats import norm

from eventvol.research import charts as C
from eventvol.research import formatting as F


def _with_zero_gamma(lake):
    """(underlying, date) of the first stored GEX row with a zero gamma within 15% of spot."""
    f = lake.df("SELECT z.entity, z.trade_date, z.value AS zg, s.value AS spot FROM factors z JOIN factors s "
                "ON s.entity = z.entity AND s.trade_date = z.trade_date AND s.factor = 'spot' "
                "WHERE z.factor = 'zero_gamma' AND abs(z.value / s.value - 1) < 0.15 ORDER BY z.trade_date, z.entity LIMIT 1")
    assert len(f), "the small lake has no chain with a zero gamma near spot"
    return str(f["entity"].iloc[0]), f["trade_date"].iloc[0]


def independent_profile(arrays, spots: np.ndarray) -> np.ndarray:
    """Net dealer GEX per 1% at each hypothetical spot, written here from the Black-Scholes
    gamma with scipy's normal pdf (dealers long calls, short puts)."""
    t = arrays.years()
    r, q = arrays.rates()
    iv = np.asarray(arrays.iv, float)
    oi = np.nan_to_num(np.asarray(arrays.open_interest, float))
    use = (t > 0) & np.isfinite(iv) & (iv > 0) & (oi > 0)
    k, t, iv, oi, r, q = (np.asarray(a, float)[use] for a in (arrays.strike, t, iv, oi, r, q))
    mult = np.asarray(arrays.multiplier, float)[use]
    sign = np.where(np.asarray(arrays.is_call)[use], 1.0, -1.0)
    out = []
    for s in spots:
        d1 = (np.log(s / k) + (r - q + 0.5 * iv ** 2) * t) / (iv * np.sqrt(t))
        gamma = np.exp(-q * t) * norm.pdf(d1) / (s * iv * np.sqrt(t))
        out.append(float(np.sum(sign * gamma * oi * mult * s * s * 0.01)))
    return np.array(out)


def test_positioning_chart_marks_the_computed_zero_gamma(small_lake):
    from eventvol.research.positioning import chain_arrays, positioning_view

    u, d = _with_zero_gamma(small_lake)
    day = dt.date.fromisoformat(str(d)[:10])
    view = positioning_view(small_lake, u, day)
    s = view["summary"]
    fig = C.positioning_chart(view)
    assert C.problems(fig) == []
    marks = {ln.get_label(): ln.get_xdata()[0] for ax in fig.axes for ln in ax.get_lines()
             if not ln.get_label().startswith("_")}
    zg_mark = next(v for k, v in marks.items() if k.startswith("zero gamma"))
    spot_mark = next(v for k, v in marks.items() if k.startswith("spot"))
    assert zg_mark == s["zero_gamma"] and spot_mark == s["spot"]
    # the same number as `eventvol gex` (the API) and the stored factor
    from eventvol.research import api

    assert api.gex(small_lake, u, day)["zero_gamma"] == s["zero_gamma"]
    # independently: scipy's root of a closed-form profile, nearest spot
    arrays = chain_arrays(small_lake, u, day)
    spot = float(s["spot"])
    grid = np.linspace(0.5 * spot, 1.5 * spot, 801)
    g = independent_profile(arrays, grid)
    roots = [brentq(lambda x: independent_profile(arrays, np.array([x]))[0], grid[i], grid[i + 1], xtol=1e-10)
             for i in np.flatnonzero(np.sign(g[:-1]) * np.sign(g[1:]) < 0)]
    nearest = min(roots, key=lambda x: abs(x - spot))
    assert zg_mark == pytest.approx(nearest, rel=1e-7)
    # the profile drawn is the computed one, in $bn
    prof = next(ln for ln in fig.axes[1].get_lines() if ln.get_label() == "net GEX re-priced at spot")
    np.testing.assert_allclose(prof.get_ydata() * 1e9, independent_profile(arrays, prof.get_xdata()), rtol=1e-9)
    # GEX by strike: calls + puts per strike sum to the net GEX; the walls are the largest bars
    bs = view["by_strike"]
    assert bs["net_gex_per_1pct"].sum() == pytest.approx(s["net_gex_per_1pct"], rel=1e-9)
    assert bs.loc[bs["call_gex_per_1pct"].abs().idxmax(), "strike"] == s["call_wall"]
    assert bs.loc[bs["put_gex_per_1pct"].abs().idxmax(), "strike"] == s["put_wall"]
    # the title says the regime in words with the numbers
    title = fig.axes[0].get_title("left")
    assert ("short gamma" if s["net_gex_per_1pct"] < 0 else "long gamma") in title
    assert f"zero gamma {s['zero_gamma']:,.0f}" in title


def test_history_chart_and_dashboards_follow_the_rules(small_lake):
    from eventvol.research.positioning import positioning_history

    h = positioning_history(small_lake, "ACME")
    assert len(h) > 100 and list(h.columns) == ["trade_date", "spot", "zero_gamma", "net_gex_per_1pct"]
    fig = C.positioning_history_chart(h, "ACME")
    assert C.problems(fig) == []
    # the GEX bars are on the twin axis and still have their legend entry
    assert "net GEX ($bn per 1%)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_history_chart_draws_sparse_snapshots_as_points():
    """Two vendor snapshots three years apart are two points each, not a line between them."""
    h = pd.DataFrame({"trade_date": pd.to_datetime(["2022-02-04", "2025-01-06"]).date,
                      "spot": [4500.53, 5975.38], "zero_gamma": [4575.63, 5984.09],
                      "net_gex_per_1pct": [-17.04e9, -3.97e9]})
    fig = C.positioning_history_chart(h, "SPX")
    assert C.problems(fig) == []
    spot, zg = fig.axes[0].get_lines()[:2]
    assert spot.get_linestyle() == "None" and spot.get_marker() == "o"
    assert zg.get_linestyle() == "None" and list(zg.get_ydata()) == [4575.63, 5984.09]
    bars = fig.axes[1].patches
    assert len(bars) == 2 and bars[0].get_width() > 5  # days: visible at a three-year scale


def test_problems_names_what_a_chart_lacks():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [1, 2, 3])
    ax.plot([1, 2, 3], [3, 2, 1], label="b")
    found = C.problems(fig)
    plt.close(fig)
    assert "no title" in found and "axes 0: no y label" in found and "axes 0: no x label" in found
    assert any("without a legend label" in p for p in found) and any("series without a legend entry: b" in p for p in found)


def test_save_writes_each_format_and_refuses_others(tmp_path):
    import matplotlib.pyplot as plt

    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        path = C.save(fig, tmp_path / f"c{suffix}")
        assert path.read_bytes().startswith(magic)
    fig, _ = plt.subplots()
    with pytest.raises(ValueError, match=r"c\.gif: use a \.png, \.svg or \.pdf"):
        C.save(fig, tmp_path / "c.gif")
    assert not list(tmp_path.glob("*.tmp"))


def test_numbers_for_people():
    assert F.money(-148.93) == "-$148.93" and F.money(1234.5) == "$1,234.50"
    assert F.gex_bn(-18_706_892_042.40) == "-$18.71bn per 1%"
    assert F.usd_scaled(2.5e6) == "$2.50m" and F.usd_scaled(-157_340_000) == "-$157.34m"
    assert F.regime_statement(4500.53, 4591.0, -1e9) == \
        "dealers short gamma (-$1.00bn per 1%): spot 4,500.53 is 2.0% below zero gamma 4,591"
    assert F.regime_statement(150.0, float("nan"), 2e8).endswith("no zero-gamma crossing within 50% of spot 150.00")
    assert F.number(0.000123) == "0.0001230" and F.number(12345.678) == "12,346"
    assert F.number(4.51e-13, 3) == "4.51\u00d710\u207b\u00b9\u00b3"
    assert F.with_unit(-0.00538, "% of the index", 100) == "-0.538% of the index"
    assert F.with_unit(4.51e-13, "bp per $1B", 1e13) == "4.51 bp per $1B"
    assert F.pvalue(2.6e-11) == "< 0.0001" and F.pvalue(0.665) == "0.665" and F.pvalue(0.0123) == "0.012"
    assert F.words("net_gex_per_1pct < 0") == "net dealer GEX < 0" and F.words("scary_car") == "scary car"
