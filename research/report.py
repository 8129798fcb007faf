"""The PM research report: a first page of findings with units, then dealer positioning,
each hypothesis, backtest tear sheets, factor dashboards and provenance, rendered from one
Jinja2 template to a self-contained report.html (charts as base64 PNG) and report.pdf.

What the lake's data do not allow is left out and listed on the first page with the reason
(a chain-only lake gets positioning pages, a price-only lake its factor pages). Long event
and trade lists show the top N; the full lists are written as CSV beside the report and
linked. Every value taken from data is escaped by Jinja2's autoescape."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from eventvol.research import charts as C
from eventvol.research import formatting as F

TEMPLATES = Path(__file__).parent / "templates"
TOP_N = 10  # rows of an event or trade list shown in the report; the CSV beside it has all
MAX_POSITIONING_CHARTS = 3  # underlyings drawn (the index first, then by |net GEX|); the table lists all

# ============================================================================ study charts

def _off_label(r: dict) -> str:
    return "all other events"


def regime_names(r: dict) -> dict[str, str]:
    """Regime labels in words: the study's own label for the regime ('on'), and 'all other
    events' for its complement (instead of a raw expression such as `not (x < 0)`)."""
    regs = r.get("regimes") or {}
    on = regs.get("on", {}).get("label", "in the regime")
    return {"on": F.words(on), "off": _off_label(r)}


def caar_chart(r: dict) -> str | None:
    """CAAR (percent) by relative day with 95% bands: all events and, when the study has a
    regime split, each regime."""
    c = r.get("caar")
    if not c:
        return None
    names = regime_names(r)
    with C.styled():
        fig, ax = C.figure(7.2, 2.5)
        series = [("all events", c, C.NAVY)]
        for k, color in (("on", C.RED), ("off", C.GREEN)):
            if k in r.get("regime_caar", {}):
                series.append((names[k], r["regime_caar"][k], color))
        for label, s, color in series:
            d, m, se = (np.asarray(s[k], float) for k in ("rel_days", "caar", "se"))
            ax.plot(d, 100 * m, color=color, lw=1.6, label=label)
            ax.fill_between(d, 100 * (m - 1.96 * se), 100 * (m + 1.96 * se), color=color, alpha=0.12,
                            label="_band")
        ax.axvline(0, color=C.GREY, lw=0.8, ls="--")
        ax.axhline(0, color=C.GREY, lw=0.8)
        ax.set_xlabel("sessions relative to the reaction session")
        ax.set_ylabel("CAAR (% of price)")
        ax.legend(loc="best")
        ax.set_title(f"{r['name']}: cumulative average abnormal return, 95% bands")
    return C.png_b64(fig)


def regime_chart(r: dict) -> str | None:
    """Distribution of the tested outcome in each regime (box plot with the means marked)."""
    if "regimes" not in r or "outcome" not in r or not r.get("labels"):
        return None
    vals = np.asarray(r["outcome"]["values"], float)
    lab = np.asarray(r["labels"])
    groups = [vals[lab == k] for k in ("on", "off")]
    if min(len(g) for g in groups) == 0:
        return None
    names = regime_names(r)
    unit, scale = _outcome_unit(r["outcome"]["measure"])
    with C.styled():
        fig, ax = C.figure(7.2, 2.2)
        parts = ax.boxplot([g * scale for g in groups], orientation="horizontal", showfliers=True, widths=0.5)
        for artist in (a for group in parts.values() for a in group):
            artist.set_label("_boxplot")  # the groups are named on the y axis, not in the legend
        ax.scatter([g.mean() * scale for g in groups], [1, 2], color=C.RED, zorder=3, s=18, label="mean")
        ax.set_yticks([1, 2], [f"{names[k]} (n={len(g)})" for k, g in zip(("on", "off"), groups)], fontsize=7)
        ax.set_ylabel("regime at the pre-event close")
        ax.set_xlabel(f"{F.words(r['outcome']['measure'])} ({unit})")
        ax.legend(loc="best")
        ax.set_title(f"{r['name']}: outcome by regime")
    return C.png_b64(fig)


# unit and scale of an event-study outcome measure, for tables and axes (keyed by the
# measure a study declares, not by hypothesis)
OUTCOME_UNITS = {"car": ("%", 100.0), "abs_ar_over_implied_move": ("implied moves", 1.0)}


def _outcome_unit(measure: str) -> tuple[str, float]:
    return OUTCOME_UNITS.get(measure, ("", 1.0))


# ============================================================================ factor dashboards

def _factor_series(lake, name: str, entity: str) -> pd.Series:
    from eventvol.research.studies.data import factor_frame

    f = factor_frame(lake, name)
    f = f[f["entity"] == entity]
    return pd.Series(f["value"].to_numpy(), index=pd.to_datetime(f["trade_date"].to_numpy()), name=name)


def factor_dashboards(lake, index: str, *, gex_history: bool = True) -> list[dict]:
    """Charts of the factor families present in the lake, all over the same date range (the
    index's bars); a family that is absent is listed with a note instead of a chart."""
    from eventvol.research.studies.data import factor_names

    have = factor_names(lake)
    out = []
    close = lake.read("bars", columns=["trade_date", "close"], where="symbol = ?", params=[index])
    level = pd.Series(close["close"].to_numpy(), index=pd.to_datetime(close["trade_date"])).sort_index()
    span = (level.index.min(), level.index.max()) if len(level) else None

    def clip(s: pd.Series) -> pd.Series:
        return s[(s.index >= span[0]) & (s.index <= span[1])] if span else s

    if "net_gex_per_1pct" in have and gex_history:
        from eventvol.research.positioning import positioning_history

        h = positioning_history(lake, index)
        if not h.empty:
            h = h[(pd.to_datetime(h["trade_date"]) >= span[0]) & (pd.to_datetime(h["trade_date"]) <= span[1])] if span else h
            out.append({"title": "Dealer gamma: net GEX and zero gamma against the index",
                        "png": C.png_b64(C.positioning_history_chart(h, index)),
                        "note": "Bars: net dealer GEX (red when dealers are short gamma). Dashed: the spot at which "
                                "re-priced net GEX crosses zero."})
    elif "net_gex_per_1pct" not in have:
        out.append({"title": "Dealer gamma", "png": None, "note": "net_gex_per_1pct is not in the lake."})
    disp = "dispersion_ratio_21d"
    if disp in have:
        s = clip(_factor_series(lake, disp, index).dropna())
        roll = s.rolling(252, min_periods=60)
        with C.styled():
            fig, ax = C.figure(7.2, 2.4)
            ax.fill_between(s.index, roll.quantile(0.1), roll.quantile(0.9), color=C.NAVY, alpha=0.12,
                            label="trailing 10th-90th percentile")
            ax.plot(s.index, roll.quantile(0.5), color=C.GREY, lw=0.9, ls="--", label="trailing median")
            ax.plot(s.index, s.values, color=C.NAVY, lw=1.3, label="dispersion ratio (21 sessions)")
            ax.set_ylabel("mean member vol / index vol (x)")
            ax.legend(loc="upper left")
            ax.set_title(f"{index}: dispersion ratio with trailing percentile bands")
            if span:
                ax.set_xlim(*span)
            C.date_axis(ax)
        out.append({"title": "Dispersion ratio with percentile bands", "png": C.png_b64(fig),
                    "note": "Equal-weighted mean of members' 21-session realized vol over the index's; bands are the "
                            "trailing 252-session 10th/50th/90th percentiles (known at each date)."})
    else:
        out.append({"title": "Dispersion ratio", "png": None, "note": f"{disp} is not in the lake."})
    if "wml_return" in have:
        w = clip(_factor_series(lake, "wml_return", index).dropna())
        with C.styled():
            fig, ax = C.figure(7.2, 2.4)
            ax.plot(w.index, 100 * ((1 + w).cumprod() - 1), color=C.NAVY, lw=1.3, label="WML cumulative return")
            ax.set_ylabel("WML cumulative return (%)")
            others = []
            if "comomentum" in have:
                c = clip(_factor_series(lake, "comomentum", index).dropna())
                ax2 = ax.twinx()
                ax2.plot(c.index, c.values, color=C.RED, lw=1.0, alpha=0.8, label="crowding (comomentum)")
                ax2.set_ylabel("comomentum (correlation)")
                ax2.grid(False)
                others.append(ax2)
            C.legend(ax, *others, loc="upper left")
            ax.set_title(f"{index}: momentum (winners minus losers) and crowding")
            if span:
                ax.set_xlim(*span)
            C.date_axis(ax)
        out.append({"title": "Momentum (WML) and crowding", "png": C.png_b64(fig),
                    "note": "Winners-minus-losers daily return cumulated; crowding is the comomentum of winners and losers."})
    else:
        out.append({"title": "Momentum (WML) and crowding", "png": None, "note": "wml_return is not in the lake."})
    return out


def momentum_chart(res: dict) -> str:
    with C.styled():
        fig, ax = C.figure(7.2, 2.2)
        names = ["not bear", "bear", "bear rebound"]
        vals = [res["mom_mean_not_bear"], res["mom_mean_bear"], res["mom_mean_bear_rebound"]]
        ax.bar(names, [100 * v for v in vals], color=[C.GREEN, C.NAVY, C.RED], label="mean monthly WML")
        ax.axhline(0, color=C.GREY, lw=0.8)
        ax.set_ylabel("mean monthly WML (%)")
        ax.set_xlabel("market state")
        ax.legend(loc="best")
        ax.set_title("Momentum by market state (Daniel-Moskowitz)")
    return C.png_b64(fig)


# ============================================================================ positioning

def positioning_section(lake, index: str | None, out_dir: Path, *, max_charts: int = MAX_POSITIONING_CHARTS,
                        top_n: int = TOP_N) -> dict | None:
    """The latest session of every underlying with option quotes: a table of all of them
    (spot, net GEX, zero gamma, walls, regime) and the positioning chart of up to
    `max_charts` (the index first, then by |net GEX|), plus the history of the index's (or the
    first drawn underlying's) stored GEX factors. The table shows `top_n` rows; all of them
    go to out_dir/positioning.csv (dollars, unformatted). None when the lake has no option quotes."""
    from eventvol.data_lake import EventvolError
    from eventvol.research.positioning import latest_sessions, positioning_history, positioning_view

    latest = latest_sessions(lake)
    if latest.empty:
        return None
    views, failed = [], []
    for u, d in zip(latest["underlying"], latest["trade_date"]):
        try:
            views.append(positioning_view(lake, str(u), pd.Timestamp(d).date()))
        except EventvolError as exc:
            failed.append(f"{u}: {exc}")
    views.sort(key=lambda v: (v["summary"]["underlying"] != index,
                              -abs(np.nan_to_num(v["summary"]["net_gex_per_1pct"]))))
    fields = ["underlying", "trade_date", "spot", "net_gex_per_1pct", "zero_gamma", "call_wall", "put_wall",
              "zero_dte_volume_share", "contracts_used"]
    csv = out_dir / "positioning.csv"
    _write_csv(pd.DataFrame([{k: v["summary"].get(k) for k in fields} for v in views], columns=fields), csv)
    rows = []
    for v in views[:top_n]:
        s = v["summary"]
        rows.append({"underlying": s["underlying"], "trade_date": s["trade_date"], "spot": F.level(s["spot"]),
                     "net_gex": F.gex_bn(s["net_gex_per_1pct"]).replace(" per 1%", ""),
                     "zero_gamma": F.level(s["zero_gamma"]), "call_wall": F.level(s["call_wall"]),
                     "put_wall": F.level(s["put_wall"]), "zero_dte": F.pct(s["zero_dte_volume_share"]),
                     "regime": F.regime_statement(s["spot"], s["zero_gamma"], s["net_gex_per_1pct"])})
    drawn = views[:max_charts]
    charts = [{"underlying": v["summary"]["underlying"], "trade_date": v["summary"]["trade_date"],
               "zero_gamma": v["summary"]["zero_gamma"], "png": C.png_b64(C.positioning_chart(v))} for v in drawn]
    history = None
    if drawn:
        who = drawn[0]["summary"]["underlying"]
        h = positioning_history(lake, who)
        if len(h) >= 2:
            history = {"underlying": who, "png": C.png_b64(C.positioning_history_chart(h, who))}
    return {"rows": rows, "n_all": len(views), "csv": csv.name, "charts": charts, "history": history, "failed": failed,
            "not_drawn": [v["summary"]["underlying"] for v in views[max_charts:]]}


# ============================================================================ backtests

def backtest_params(names: list[str], params: list[str] | None) -> dict[str, list[str]]:
    """`--param` strings per named backtest: 'k=v' applies to every backtest, 'NAME:k=v' to
    backtest NAME only. A report tear sheet shows one parameter set, so a value list
    ('k=v1,v2') is refused."""
    from eventvol.data_lake import NoDataError
    from eventvol.strategies.sweep import parse_param_options

    out: dict[str, list[str]] = {n: [] for n in names}
    for raw in params or []:
        head, sep, rest = raw.partition(":")
        if sep and "=" not in head:
            if head not in out:
                raise NoDataError(f"--param {raw!r} names backtest {head!r}, which is not among --backtest "
                                  f"{', '.join(names) or '(none)'}")
            targets, kv = [head], rest
        else:
            targets, kv = list(out), raw
        if not targets:
            raise NoDataError(f"--param {raw!r} given without --backtest NAME")
        grid = parse_param_options([kv])
        for k, v in grid.items():
            if len(v) > 1:
                raise NoDataError(f"--param {raw!r} has {len(v)} values; a report tear sheet takes one value per "
                                  f"parameter (use `eventvol backtest` for sweeps)")
        for t in targets:
            out[t].append(kv)
    return out


def backtest_for_report(lake, name: str, params: list[str] | None = None):
    """Run catalog strategy `name` through the API with `--param k=v` strings (one value
    each) and return its BacktestResult (daily `.returns`, trades, metrics)."""
    from eventvol.research import api
    from eventvol.strategies.sweep import parse_param_options

    return api.run_backtest(lake, name, parse_param_options(params or []))


def backtest_section(lake, bt, out_dir: Path, *, top_n: int = TOP_N) -> dict:
    """A tear sheet of one backtest, its full trade list written to out_dir as CSV."""
    from eventvol.research import tearsheet as T

    closes = None
    if "implied_move" in bt.trades.columns and lake.files("bars"):
        syms = sorted({str(u) for u in bt.trades["underlying"].dropna()})
        closes = lake.read("bars", columns=["trade_date", "symbol", "close"],
                           where="list_contains(?, symbol)", params=[syms])
    sheet = T.tearsheet(bt, closes, top_n=top_n)
    csv = out_dir / f"trades_{_slug(bt.strategy)}.csv"
    _write_csv(bt.trades, csv)
    sheet["csv"] = csv.name
    sheet["n_all"] = len(bt.trades)
    return sheet


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text)) or "x"


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


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
        r = lake.df("SELECT run_id, command, status, finished_at, rows_written FROM runs ORDER BY started_at DESC LIMIT 5")
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


def as_result_dict(r) -> dict:
    """A study result as the template reads it: the research layer's StudyResult (its
    `to_dict()`, with the per-event `frame` kept under `_frame`) or a result dict, with the
    headline fields (`estimate`, `ci_low`, `ci_high`, `p_value`, `counted_test`, `label`,
    `unit`, `scale`, `verdict`) filled from the primary test where a result lacks them."""
    if hasattr(r, "to_dict"):
        d = r.to_dict()
        d["_frame"] = getattr(r, "frame", None)
    else:
        d = dict(r)
    p = d.get("primary") or {}
    for k in ("estimate", "ci_low", "ci_high", "p_value"):
        if d.get(k) is None and k in p:
            d[k] = p[k]
    d.setdefault("counted_test", p.get("name", ""))
    d["counted_test"] = d["counted_test"] or p.get("name", "")
    if not d.get("unit") and d.get("kind") == "event_study" and d.get("outcome"):
        d["unit"], d["scale"] = _outcome_unit(d["outcome"]["measure"])
    d.setdefault("unit", "")
    d["scale"] = float(d.get("scale") or 1.0)
    d["label"] = d.get("label") or F.words(d["counted_test"])
    d.setdefault("verdict", "not evaluable" if not d.get("evaluable") else ("held" if d.get("held") else "not held"))
    return d


def headline(r: dict) -> dict:
    """The formatted headline of a study: estimate and interval with units, p-values, verdict
    and the counted test's name."""
    u, k = r["unit"], r["scale"]
    lo = r.get("ci_low")
    return {"estimate": F.with_unit(r.get("estimate"), u, k),
            "ci": f"{F.number(lo * k, 3) if lo is not None else 'n/a'} to {F.with_unit(r.get('ci_high'), u, k)}",
            "p": F.pvalue(r.get("p_value")), "p_bh": F.pvalue(r.get("p_bh")),
            "unit": u or "as measured", "label": r["label"], "test": F.words(r["counted_test"]), "verdict": r["verdict"]}


def _finding(r: dict) -> str:
    """One plain-English line for the first page, naming the counted test."""
    if not r.get("evaluable"):
        return r["status"]
    h = headline(r)
    word = "held" if r.get("held") else "did not hold"
    bh = f", BH p = {h['p_bh']}" if r.get("p_bh") is not None else ""
    return f"{word} by {h['test']}: {h['label']} = {h['estimate']} (95% CI {h['ci']}, p = {h['p']}{bh})"


def study_frame(r: dict) -> pd.DataFrame:
    """The rows behind a study's counted test (one per event or observation): the
    StudyResult's frame, or one built from a result dict's outcome lists. Market-wide events
    (no symbol) are labelled with the index; regimes 'on'/'off' in words."""
    frame = r.get("_frame")
    if isinstance(frame, pd.DataFrame) and not frame.empty:
        full = frame.copy()
    elif r.get("outcome") and r["outcome"].get("event_ids"):
        o = r["outcome"]
        full = pd.DataFrame({"event_id": o["event_ids"], "symbol": o.get("symbols") or [None] * len(o["event_ids"]),
                             o["measure"]: o["values"]})
        if r.get("labels"):
            full.insert(2, "regime", r["labels"])
    else:
        return pd.DataFrame()
    for col in ("symbol", "entity"):
        if col in full.columns:
            full[col] = full[col].astype(object).where(full[col].notna() & ~full[col].astype(str).isin(["nan", "None", ""]),
                                                       r.get("_index") or "index")
    if "regime" in full.columns and r.get("regimes"):
        names = regime_names(r)
        full["regime"] = full["regime"].map(lambda x: names.get(x, x))
    return full


def _cell(v, unit: str = "", scale: float = 1.0) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(v).date())
    if isinstance(v, (float, np.floating)):
        return F.with_unit(float(v), unit, scale) if unit else F.number(float(v), 4)
    return str(v)


def event_list(r: dict, out_dir: Path, *, top_n: int = TOP_N) -> dict | None:
    """The rows behind a study, written in full to out_dir/events_<name>.csv; for event
    studies the report shows the top N events by absolute outcome, other frames are linked."""
    full = study_frame(r)
    if full.empty:
        return None
    path = out_dir / f"{'events' if 'event_id' in full.columns else 'rows'}_{_slug(r['name'])}.csv"
    _write_csv(full, path)
    out = {"csv": path.name, "n": len(full), "shown": 0, "rows": [], "columns": []}
    if "event_id" not in full.columns:
        return out
    measure = (r.get("outcome") or {}).get("measure")
    value_col = measure if measure in full.columns else next(
        (c for c in full.columns if pd.api.types.is_float_dtype(full[c])), None)
    top = full.reindex(full[value_col].abs().sort_values(ascending=False).index) if value_col else full
    top = top.head(top_n)
    unit, scale = _outcome_unit(value_col) if value_col else ("", 1.0)
    cols = list(full.columns)
    out.update(shown=len(top), by=F.words(value_col) if value_col else "",
               columns=[F.words(c) + (f" ({unit})" if c in OUTCOME_UNITS and OUTCOME_UNITS[c][0] else "") for c in cols],
               rows=[[_cell(v, *(_outcome_unit(c) if c in OUTCOME_UNITS else ("", 1.0))) for c, v in zip(cols, row)]
                     for row in top.itertuples(index=False)])
    return out


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
                          trades: pd.DataFrame | None = None, backtests: list | None = None,
                          title: str = "Event-driven volatility: research note", progress=None,
                          extra_provenance: dict | None = None, top_n: int = TOP_N,
                          left_out: list[dict] | None = None) -> list[Path]:
    """Write report.html (and report.pdf) into out_dir with the sections this lake's data
    allow: dealer positioning (option quotes), the hypotheses and factor dashboards (a market
    index in index_members), momentum regimes (monthly factor returns), a tear sheet per
    backtest (`backtests`: tearsheet.Backtest or API BacktestResult objects; `trades`: an
    earnings-straddle trade frame, shown as one more). Sections left out are listed on the
    first page with the reason. Event and trade lists beyond `top_n` rows are CSV files
    beside the report. `left_out`: more {section, reason} entries for that list (e.g. a
    backtest that could not run). Returns the report paths."""
    from eventvol.data_lake import NoDataError
    from eventvol.research import tearsheet as T

    step = progress or (lambda text: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skipped: list[dict] = list(left_out or [])
    index = None
    try:
        from eventvol.research.studies.data import market_symbol

        index = market_symbol(lake)
    except NoDataError as exc:
        skipped.append({"section": "Hypotheses and factor dashboards", "reason": str(exc)})

    # hypotheses (need a market index for the market model)
    sections = []
    if index is not None:
        from eventvol.research.studies.registry import load_hypotheses, run_all

        specs = load_hypotheses()
        if studies:
            unknown = [s for s in studies if s not in specs]
            if unknown:
                raise NoDataError(f"unknown study {unknown[0]!r}; choose among {', '.join(specs)}")
            specs = {k: v for k, v in specs.items() if k in studies}
        results = run_all(lake, specs, events_file=events_file, progress=lambda n: step(f"study {n}"))
        step("drawing charts")
        for res in results:
            r = as_result_dict(res)
            r["_index"] = index
            sec = {"r": r, "finding": _finding(r), "head": headline(r)}
            if r.get("evaluable"):
                sec["caar_png"] = caar_chart(r)
                sec["regime_png"] = regime_chart(r)
                sec["events"] = event_list(r, out_dir, top_n=top_n)
                sec["regime_names"] = regime_names(r)
                # the regime table is in the outcome's unit (the counted test may be another one)
                sec["ou"] = _outcome_unit((r.get("outcome") or {}).get("measure", ""))
            sections.append(sec)

    # dealer positioning (needs option quotes)
    step("dealer positioning")
    positioning = positioning_section(lake, index, out_dir, top_n=top_n)
    if positioning is None:
        skipped.append({"section": "Dealer positioning", "reason": "the lake has no option quotes"})

    # backtest tear sheets
    sheets = []
    items = list(backtests or [])
    if trades is not None:
        items.append(T.Backtest(strategy="earnings-straddle", trades=trades, returns=T.daily_returns(trades),
                                metrics=_trade_metrics(trades)))
    for bt in items:
        if not isinstance(bt, T.Backtest):
            name = getattr(bt, "strategy", "")
            bt = T.from_result(bt)
            bt.strategy = name or bt.strategy
        step(f"tear sheet {bt.strategy}")
        sheets.append(backtest_section(lake, bt, out_dir, top_n=top_n))
    if not sheets and not left_out:
        skipped.append({"section": "Backtest tear sheets",
                        "reason": "no backtest was requested (eventvol report --backtest NAME [--param k=v])"})

    momentum = None
    if lake.files("factor_returns"):
        from eventvol.research.studies.regimes import factor_returns_wide, momentum_regimes

        wide = factor_returns_wide(lake)
        if {"MktRF", "RF", "Mom"} <= set(wide.columns):
            res = momentum_regimes(wide)
            momentum = {"res": res, "png": momentum_chart(res)}
    if momentum is None:
        skipped.append({"section": "Momentum regimes", "reason": "the lake has no monthly MktRF, RF and Mom factor returns"})
    dashboards = []
    if index is not None:
        step("factor dashboards")
        shown = positioning and positioning["history"] and positioning["history"]["underlying"] == index
        dashboards = factor_dashboards(lake, index, gex_history=not shown)
    mechanisms = []
    for s in sections:
        r = s["r"]
        if r.get("mechanism"):
            mechanisms.append(dict(r["mechanism"], hypothesis=r["name"]))
        if r.get("truth") and r.get("primary"):
            mechanisms.append(dict(r["primary"], hypothesis=r["name"], truth=r["truth"]["value"],
                                   truth_covered=r["truth"]["covered"]))
    prov = provenance(lake)
    prov.update(extra_provenance or {})
    evaluable = [s for s in sections if s["r"].get("evaluable")]
    context = dict(
        title=title, index=index or "none",
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        sections=sections, n_tested=len(sections), n_evaluable=len(evaluable),
        n_held=sum(bool(s["r"].get("held")) for s in sections), mechanisms=mechanisms,
        momentum=momentum, dashboards=dashboards, provenance=prov, positioning=positioning,
        backtests=sheets, skipped=skipped, top_n=top_n, fmt=F,
    )
    step("rendering")
    return render_research_report(context, out_dir, pdf=pdf)


def _trade_metrics(trades: pd.DataFrame) -> dict:
    """The strategies' metrics of a bare trade frame (P&L NaN or `traded` False = not traded)."""
    from eventvol.strategies.metrics import event_metrics

    pnl = trades["pnl"].where(trades["traded"].astype(bool))
    exits = trades["exit_session"] if "exit_session" in trades.columns else trades["reaction_session"]
    return event_metrics(pnl, exits)
