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
import pandas as pd  # noqa: E402

from research.event_table import equity_curve, gex_split, summarize  # noqa: E402

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
