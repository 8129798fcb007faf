"""One-page HTML report of an event strategy: summary, equity curve, P&L by GEX sign.

Charts are embedded as base64 PNG so the file is self-contained (opens with no network).
Every value taken from data is escaped by Jinja2's autoescape."""

from __future__ import annotations

import base64
import io
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from eventvol.research.event_table import equity_curve, gex_split, summarize  # noqa: E402

TEMPLATES = Path(__file__).parent / "templates"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def equity_chart(trades: pd.DataFrame) -> str:
    curve = equity_curve(trades)
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.plot(pd.to_datetime(curve.index), curve.values, color="#1f4e79", lw=1.5)
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_ylabel("cumulative P&L ($)")
    ax.set_title("Earnings straddle: cumulative P&L by reaction session")
    ax.grid(alpha=0.3)
    return _png(fig)


def gex_chart(trades: pd.DataFrame) -> str:
    traded = trades[trades["traded"]]
    neg = traded.loc[traded["net_gex_per_1pct_at_entry"] < 0, "pnl"]
    pos = traded.loc[traded["net_gex_per_1pct_at_entry"] > 0, "pnl"]
    fig, ax = plt.subplots(figsize=(8, 3))
    ax.boxplot([neg.values, pos.values], showfliers=False)
    ax.set_xticks([1, 2], [f"net GEX < 0 (n={len(neg)})", f"net GEX > 0 (n={len(pos)})"])
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_ylabel("P&L per event ($)")
    ax.set_title("P&L by dealer gamma regime at entry")
    ax.grid(alpha=0.3)
    return _png(fig)


def render_straddle_report(trades: pd.DataFrame, out_dir: Path, *, title: str, params: dict,
                           provenance: dict) -> Path:
    """Write `out_dir/report.html` and return its path."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    split = gex_split(trades)
    html = env.get_template("straddle_report.html.j2").render(
        title=title,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        params=params,
        provenance=provenance,
        summary=summarize(trades.loc[trades["traded"], "pnl"]),
        split=split.reset_index(names="regime").to_dict("records"),
        equity_png=equity_chart(trades),
        gex_png=gex_chart(trades),
        trades=trades.to_dict("records"),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


# ============================================================================ research report
# The PM research report: a first page of findings, a section per hypothesis, factor
# dashboards and provenance, rendered from one template to report.html and report.pdf.

NAVY, RED, GREEN, GREY = "#1f4e79", "#b22222", "#2e7d32", "#888888"


def _dates(ax) -> None:
    """Concise date ticks (no overlapping labels)."""
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def _fig(w=7.2, h=2.6):
    fig, ax = plt.subplots(figsize=(w, h))
    ax.grid(alpha=0.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def caar_chart(result: dict) -> str | None:
    """CAAR (percent) by relative day with 95% bands: all events and, when the study has a
    regime split, each regime."""
    c = result.get("caar")
    if not c:
        return None
    fig, ax = _fig()
    series = [("all events", c, NAVY)]
    for k, color in (("on", RED), ("off", GREEN)):
        if k in result.get("regime_caar", {}):
            label = result["regimes"][k]["label"]
            series.append((label, result["regime_caar"][k], color))
    for label, s, color in series:
        d, m, se = (np.asarray(s[k], float) for k in ("rel_days", "caar", "se"))
        ax.plot(d, 100 * m, color=color, lw=1.6, label=label)
        ax.fill_between(d, 100 * (m - 1.96 * se), 100 * (m + 1.96 * se), color=color, alpha=0.12)
    ax.axvline(0, color=GREY, lw=0.8, ls="--")
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_xlabel("sessions relative to the reaction session")
    ax.set_ylabel("CAAR (%)")
    ax.legend(fontsize=7, frameon=False, loc="best")
    return _png(fig)


def regime_chart(result: dict) -> str | None:
    """Distribution of the tested outcome in each regime (box plot with the means marked)."""
    if "regimes" not in result or "outcome" not in result:
        return None
    vals = np.asarray(result["outcome"]["values"], float)
    lab = np.asarray(result["labels"])
    groups = [vals[lab == k] for k in ("on", "off")]
    if min(len(g) for g in groups) == 0:
        return None
    fig, ax = _fig(7.2, 2.4)
    ax.boxplot(groups, orientation="horizontal", showfliers=True, widths=0.5)
    ax.scatter([g.mean() for g in groups], [1, 2], color=RED, zorder=3, s=18, label="mean")
    ax.set_yticks([1, 2], [f"{result['regimes'][k]['label']} (n={len(g)})" for k, g in zip(("on", "off"), groups)], fontsize=7)
    ax.set_xlabel(result["outcome"]["measure"].replace("_", " "))
    ax.legend(fontsize=7, frameon=False)
    return _png(fig)


def straddle_charts(trades: pd.DataFrame) -> dict[str, str]:
    """Equity curve by GEX regime and P&L distributions of the earnings straddle backtest."""
    traded = trades[trades["traded"]].copy()
    if traded.empty:
        return {}
    traded["regime"] = np.where(traded["net_gex_per_1pct_at_entry"] < 0, "net GEX < 0", "net GEX >= 0")
    fig, ax = _fig()
    for (name, g), color in zip(traded.groupby("regime"), (RED, GREEN)):
        curve = g.groupby("reaction_session")["pnl"].sum().sort_index().cumsum()
        ax.plot(pd.to_datetime(curve.index), curve.values, color=color, lw=1.4, label=name)
    total = equity_curve(trades)
    ax.plot(pd.to_datetime(total.index), total.values, color=NAVY, lw=1.8, label="all events")
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_ylabel("cumulative P&L ($)")
    ax.legend(fontsize=7, frameon=False)
    _dates(ax)
    eq = _png(fig)
    fig, ax = _fig(7.2, 2.4)
    # a few huge winners would squash the picture: bins span the 1st-99th percentiles and
    # the tails are piled into the end bins (the caption says so)
    lo, hi = np.percentile(traded["pnl"], [1, 99])
    bins = np.linspace(lo, hi, 31)
    for (name, g), color in zip(traded.groupby("regime"), (RED, GREEN)):
        ax.hist(np.clip(g["pnl"], lo, hi), bins=bins, alpha=0.5, color=color, label=f"{name} (n={len(g)})")
    ax.axvline(0, color=GREY, lw=0.8)
    ax.set_xlabel("P&L per straddle ($), tails beyond the 1st/99th percentiles in the end bins")
    ax.legend(fontsize=7, frameon=False)
    return {"equity": eq, "pnl_hist": _png(fig)}


def _factor_series(lake, name: str, entity: str) -> pd.Series:
    from eventvol.research.studies.data import factor_frame

    f = factor_frame(lake, name)
    f = f[f["entity"] == entity]
    return pd.Series(f["value"].to_numpy(), index=f["trade_date"].to_numpy(), name=name)


def factor_dashboards(lake, index: str) -> list[dict]:
    """Charts of the factor families present in the lake; a family that is absent is listed
    with a note instead of a chart."""
    from eventvol.research.studies.data import factor_names

    have = factor_names(lake)
    out = []
    close = lake.read("bars", columns=["trade_date", "close"], where="symbol = ?", params=[index])
    level = pd.Series(close["close"].to_numpy(), index=pd.to_datetime(close["trade_date"]))
    # 1. net GEX and zero gamma against the index level
    if "net_gex_per_1pct" in have:
        gex = _factor_series(lake, "net_gex_per_1pct", index)
        fig, ax = _fig(7.2, 3.0)
        ax.plot(level.index, level.values, color=NAVY, lw=1.3, label=f"{index} close")
        if "zero_gamma" in have:
            zg = _factor_series(lake, "zero_gamma", index)
            ax.plot(pd.to_datetime(zg.index), zg.values, color=RED, lw=1.0, ls="--", label="zero gamma")
        ax.set_ylabel("index level")
        ax2 = ax.twinx()
        ax2.bar(pd.to_datetime(gex.index), gex.values / 1e9, color=np.where(gex.values < 0, RED, GREEN), alpha=0.35, width=1.0)
        ax2.set_ylabel("net GEX ($bn per 1%)")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        _dates(ax)
        out.append({"title": "Dealer gamma: net GEX and zero gamma against the index", "png": _png(fig),
                    "note": "Bars: net dealer GEX (red when dealers are short gamma). Dashed: the spot at which re-priced net GEX crosses zero."})
    else:
        out.append({"title": "Dealer gamma", "png": None, "note": "net_gex_per_1pct is not in the lake."})
    # 2. dispersion ratio with trailing percentile bands
    disp = "dispersion_ratio_21d"
    if disp in have:
        s = _factor_series(lake, disp, index).dropna()
        roll = s.rolling(252, min_periods=60)
        fig, ax = _fig()
        ax.fill_between(pd.to_datetime(s.index), roll.quantile(0.1), roll.quantile(0.9), color=NAVY, alpha=0.12, label="trailing 10-90th pct")
        ax.plot(pd.to_datetime(s.index), roll.quantile(0.5), color=GREY, lw=0.9, ls="--", label="trailing median")
        ax.plot(pd.to_datetime(s.index), s.values, color=NAVY, lw=1.3, label="dispersion ratio (21d)")
        ax.set_ylabel("mean member vol / index vol")
        ax.legend(fontsize=7, frameon=False)
        _dates(ax)
        out.append({"title": "Dispersion ratio with percentile bands", "png": _png(fig),
                    "note": "Equal-weighted mean of members' 21-session realized vol over the index's; bands are the trailing 252-session 10th/50th/90th percentiles (known at each date)."})
    else:
        out.append({"title": "Dispersion ratio", "png": None, "note": f"{disp} is not in the lake."})
    # 3. WML with crowding
    if "wml_return" in have:
        w = _factor_series(lake, "wml_return", index).dropna()
        fig, ax = _fig()
        ax.plot(pd.to_datetime(w.index), 100 * ((1 + w).cumprod() - 1), color=NAVY, lw=1.3, label="WML cumulative (%)")
        ax.set_ylabel("WML cumulative return (%)")
        if "comomentum" in have:
            c = _factor_series(lake, "comomentum", index).dropna()
            ax2 = ax.twinx()
            ax2.plot(pd.to_datetime(c.index), c.values, color=RED, lw=1.0, alpha=0.8, label="crowding (comomentum)")
            ax2.set_ylabel("comomentum")
        ax.legend(fontsize=7, frameon=False, loc="upper left")
        _dates(ax)
        out.append({"title": "Momentum (WML) and crowding", "png": _png(fig),
                    "note": "Winners-minus-losers daily return cumulated; crowding is the comomentum of winners and losers."})
    else:
        out.append({"title": "Momentum (WML) and crowding", "png": None, "note": "wml_return is not in the lake."})
    return out


def momentum_chart(res: dict, wide: pd.DataFrame) -> str:
    fig, ax = _fig(7.2, 2.4)
    names = ["not bear", "bear", "bear rebound"]
    vals = [res["mom_mean_not_bear"], res["mom_mean_bear"], res["mom_mean_bear_rebound"]]
    ax.bar(names, [100 * v for v in vals], color=[GREEN, NAVY, RED])
    ax.axhline(0, color=GREY, lw=0.8)
    ax.set_ylabel("mean monthly Mom (%)")
    return _png(fig)


def provenance(lake) -> dict:
    """Lake state (tables, files, rows), recent runs and the code version."""
    import subprocess

    from eventvol.data_lake.schemas import TABLES

    tables = []
    for name in TABLES:
        files = lake.files(name)
        if files:
            n = lake.df(f'SELECT count(*) AS n FROM "{name}"')["n"].iloc[0]
            tables.append({"table": name, "files": len(files), "rows": int(n)})
    runs = []
    if lake.files("runs"):
        r = lake.df("SELECT run_id, command, status, finished_at, rows_written FROM runs ORDER BY started_at DESC LIMIT 8")
        runs = r.astype(str).to_dict("records")
    try:
        code = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=Path(__file__).parents[1],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        code = (code + (" (uncommitted changes)" if dirty else "")) if code else "unknown"
    except (OSError, subprocess.SubprocessError):
        code = "unknown"
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg = version("eventvol")
    except PackageNotFoundError:
        pkg = "unknown"
    return {"lake": str(lake.root), "tables": tables, "runs": runs, "code_version": code, "package_version": pkg}


def _finding(r: dict) -> str:
    """One plain-English line for the first page."""
    if not r.get("evaluable"):
        return r["status"]
    word = "held" if r["held"] else "did not hold"
    k, unit = r["scale"], (" " + r["unit"]) if r["unit"] else ""
    return (f"{word}: {r['label']} = {r['estimate'] * k:.3g}{unit} (95% CI {r['ci_low'] * k:.3g} to {r['ci_high'] * k:.3g}, "
            f"p = {r['p_value']:.3g}" + (f", BH p = {r['p_bh']:.3g}" if r.get("p_bh") is not None else "") + ")")


def render_research_report(context: dict, out_dir: Path, *, pdf: bool = True) -> list[Path]:
    """Render `research_report.html.j2` to out_dir/report.html (and report.pdf). Writes go
    to temporary files renamed into place, so a failure leaves the previous report."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    html = env.get_template("research_report.html.j2").render(**context)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    paths = [path]
    if pdf:
        import logging

        import weasyprint

        logging.getLogger("weasyprint").setLevel(logging.ERROR)
        logging.getLogger("fontTools").setLevel(logging.ERROR)
        pdf_path = out_dir / "report.pdf"
        tmp_pdf = pdf_path.with_suffix(".pdf.tmp")
        weasyprint.HTML(string=html, base_url=str(out_dir)).write_pdf(tmp_pdf)
        tmp_pdf.replace(pdf_path)
        paths.append(pdf_path)
    return paths


def build_research_report(lake, out_dir: Path, *, studies=None, events_file=None, pdf: bool = True,
                          trades: pd.DataFrame | None = None, title: str = "Event-driven volatility: research note",
                          progress=None, extra_provenance: dict | None = None) -> list[Path]:
    """Run the hypotheses (all, or `studies`), the momentum regimes when monthly factor
    returns exist, draw the charts and write report.html and report.pdf into out_dir."""
    from eventvol.data_lake import NoDataError
    from eventvol.research.studies.data import market_symbol
    from eventvol.research.studies.registry import load_hypotheses, run_all

    step = progress or (lambda text: None)
    specs = load_hypotheses()
    if studies:
        unknown = [s for s in studies if s not in specs]
        if unknown:
            raise NoDataError(f"unknown study {unknown[0]!r}; choose among {', '.join(specs)}")
        specs = {k: v for k, v in specs.items() if k in studies}
    results = [r.to_dict() for r in run_all(lake, specs, events_file=events_file, progress=lambda n: step(f"study {n}"))]
    index = market_symbol(lake)
    step("drawing charts")
    sections = []
    for r in results:
        sec = {"r": r, "finding": _finding(r)}
        if r.get("evaluable"):
            sec["caar_png"] = caar_chart(r)
            sec["regime_png"] = regime_chart(r)
        sections.append(sec)
    if trades is not None:
        for sec in sections:
            if sec["r"]["shows_trades"] and sec["r"]["evaluable"]:
                sec["straddle"] = straddle_charts(trades)
                sec["straddle_split"] = gex_split(trades).reset_index(names="regime").to_dict("records")
    momentum = None
    if lake.files("factor_returns"):
        from eventvol.research.studies.regimes import factor_returns_wide, momentum_regimes

        wide = factor_returns_wide(lake)
        if {"MktRF", "RF", "Mom"} <= set(wide.columns):
            res = momentum_regimes(wide)
            momentum = {"res": res, "png": momentum_chart(res, wide)}
    step("factor dashboards")
    dashboards = factor_dashboards(lake, index)
    mechanisms = [dict(s["r"]["mechanism"], hypothesis=s["r"]["name"]) for s in sections if s["r"].get("mechanism")]
    for s in sections:
        r = s["r"]
        if r.get("truth"):
            mechanisms.append(dict(r["primary"], hypothesis=r["name"], truth=r["truth"]["value"],
                                   truth_covered=r["truth"]["covered"]))
    prov = provenance(lake)
    prov.update(extra_provenance or {})
    context = dict(
        title=title, index=index,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sections=sections, n_tested=len(results), n_evaluable=sum(bool(r.get("evaluable")) for r in results),
        n_held=sum(bool(r.get("held")) for r in results), mechanisms=mechanisms,
        momentum=momentum, dashboards=dashboards, provenance=prov,
    )
    step("rendering")
    return render_research_report(context, out_dir, pdf=pdf)
