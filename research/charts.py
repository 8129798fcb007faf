"""The project's charts: one matplotlib style, and every chart with a title, axis labels with
units and a legend entry per plotted series (`problems` lists what a figure lacks; the tests
run it on every chart). Charts are pure: data in, a Figure out; `png_b64` / `save` write it."""

from __future__ import annotations

import base64
import io
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

NAVY, RED, GREEN, GREY, ORANGE, TEAL = "#1f4e79", "#b22222", "#2e7d32", "#888888", "#d9822b", "#2a9d8f"

STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "axes.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "figure.dpi": 110,
    "savefig.bbox": "tight",
}


@contextmanager
def styled():
    """The project style for everything drawn and saved inside the block."""
    with matplotlib.rc_context(STYLE):
        yield


def figure(w: float = 7.2, h: float = 2.6, **subplots):
    """A styled figure and axes (call inside `styled()` or use the chart functions)."""
    return plt.subplots(figsize=(w, h), **subplots)


def date_axis(ax) -> None:
    """Concise date ticks (no overlapping labels)."""
    loc = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))


def legend(ax, *others, **kw) -> None:
    """One legend for `ax` and any twin axes (`others`), so a series on a twin axis has its
    entry too."""
    handles, labels = ax.get_legend_handles_labels()
    for o in others:
        h, lab = o.get_legend_handles_labels()
        handles += h
        labels += lab
    ax.legend(handles, labels, **kw)


def png_b64(fig) -> str:
    """The figure as base64 PNG (for a self-contained HTML file); closes it."""
    buf = io.BytesIO()
    with styled():
        fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def save(fig, path: Path) -> Path:
    """Write the figure to `path` (format from the suffix: .png, .svg or .pdf); closes it.
    The file is written beside and renamed into place, so a failure leaves no half file."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        plt.close(fig)
        raise ValueError(f"cannot write a chart as {path.name}: use a .png, .svg or .pdf file name")
    tmp = path.with_name(path.name + ".tmp")
    with styled():
        fig.savefig(tmp, format=fmt, dpi=150)
    plt.close(fig)
    tmp.replace(path)
    return path


def problems(fig) -> list[str]:
    """What a chart lacks by the project's rules: a title (figure or first axes), a label on
    each visible axis, a legend entry for every labelled-or-not plotted series (lines and
    bar/fill/scatter collections) when an axes shows more than one series."""
    out = []
    axes = [a for a in fig.axes if a.get_visible()]
    titled = bool(fig._suptitle and fig._suptitle.get_text()) or any(
        a.get_title(loc) for a in axes for loc in ("left", "center", "right"))
    if not titled:
        out.append("no title")
    legend_texts = set()
    for a in axes:
        leg = a.get_legend()
        if leg:
            legend_texts |= {t.get_text() for t in leg.get_texts()}
    for i, a in enumerate(axes):
        if not a.get_ylabel():
            out.append(f"axes {i}: no y label")
        shared = [b for b in a.get_shared_x_axes().get_siblings(a) if b is not a]
        dated = any(isinstance(b.xaxis.get_major_formatter(), mdates.ConciseDateFormatter) for b in [a, *shared])
        if a.xaxis.get_visible() and not a.get_xlabel() and not dated and not any(b.get_xlabel() for b in shared):
            out.append(f"axes {i}: no x label")
        series = [ln for ln in a.get_lines() if not ln.get_label().startswith("_")]
        series += [c for c in a.collections if not c.get_label().startswith("_")]
        series += [c for c in a.containers if not c.get_label().startswith("_")]
        unlabeled = [ln for ln in a.get_lines() if ln.get_label().startswith("_child") and len(ln.get_xdata()) > 2]
        if unlabeled:
            out.append(f"axes {i}: {len(unlabeled)} plotted line(s) without a legend label")
        missing = [s.get_label() for s in series if s.get_label() not in legend_texts]
        if missing:
            out.append(f"axes {i}: series without a legend entry: {', '.join(missing)}")
    return out


# ------------------------------------------------------------------------- positioning

def positioning_chart(view: dict):
    """Dealer positioning of one chain on one day: GEX by strike (calls up, puts down, $bn per
    1%) above the re-priced net GEX profile, with spot, zero gamma and the call and put walls
    marked; the title states the regime. `view` is `research.positioning.positioning_view`'s."""
    from eventvol.research.formatting import level, pct, regime_statement

    s = view["summary"]
    by_strike = view["by_strike"]
    prof = s["profile"]
    spot, zg = s["spot"], s["zero_gamma"]
    with styled():
        fig, (top, bottom) = figure(7.2, 3.5, nrows=2, sharex=True, gridspec_kw={"height_ratios": [1.2, 1]})
        width = _bar_width(by_strike["strike"].to_numpy())
        top.bar(by_strike["strike"], by_strike["call_gex_per_1pct"] / 1e9, width=width, color=GREEN, alpha=0.75,
                label="call GEX")
        top.bar(by_strike["strike"], by_strike["put_gex_per_1pct"] / 1e9, width=width, color=RED, alpha=0.75,
                label="put GEX")
        top.axhline(0, color=GREY, lw=0.6)
        top.set_ylabel("GEX by strike\n($bn per 1%)")
        spots = np.asarray(prof["spots"], float)
        bottom.plot(spots, np.asarray(prof["net_gex_per_1pct"], float) / 1e9, color=NAVY, lw=1.5,
                    label="net GEX re-priced at spot")
        bottom.axhline(0, color=GREY, lw=0.6)
        bottom.set_ylabel("net GEX\n($bn per 1%)")
        bottom.set_xlabel(f"{s['underlying']} spot / strike ($)")
        for ax in (top, bottom):
            ax.axvline(spot, color="black", lw=1.0, label=f"spot {level(spot)}" if ax is bottom else "_spot")
            if np.isfinite(zg):
                ax.axvline(zg, color=ORANGE, lw=1.2, ls="--", label=f"zero gamma {level(zg)}" if ax is bottom else "_zg")
            if np.isfinite(s["call_wall"]):
                ax.axvline(s["call_wall"], color=GREEN, lw=0.9, ls=":", label=f"call wall {level(s['call_wall'])}"
                           if ax is top else "_cw")
            if np.isfinite(s["put_wall"]):
                ax.axvline(s["put_wall"], color=RED, lw=0.9, ls=":", label=f"put wall {level(s['put_wall'])}"
                           if ax is top else "_pw")
        lo, hi = _strike_window(by_strike, spot, zg)
        bottom.set_xlim(lo, hi)
        top.legend(loc="upper left", ncols=2)
        bottom.legend(loc="best")
        share = s.get("zero_dte_volume_share")
        zero_dte = f"0DTE volume share {pct(share)}; " if share is not None and np.isfinite(share) else ""
        top.set_title(f"{s['underlying']} dealer positioning on {s['trade_date']}: "
                      f"{zero_dte}{s['contracts_used']:,} contracts\n"
                      f"{regime_statement(spot, zg, s['net_gex_per_1pct'])}")
        bottom.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
        fig.tight_layout()
    return fig


def _bar_width(strikes: np.ndarray) -> float:
    if len(strikes) < 2:
        return 1.0
    d = np.diff(np.unique(strikes))
    return float(np.median(d)) * 0.8 if len(d) else 1.0


def _strike_window(by_strike: pd.DataFrame, spot: float, zg: float) -> tuple[float, float]:
    """Spot +- 25%, widened to show zero gamma, clipped to the profile's 0.5-1.5 S range."""
    lo, hi = 0.75 * spot, 1.25 * spot
    if np.isfinite(zg):
        lo, hi = min(lo, zg * 0.97), max(hi, zg * 1.03)
    return max(lo, 0.5 * spot), min(hi, 1.5 * spot)


def positioning_history_chart(history: pd.DataFrame, underlying: str):
    """Net GEX (bars, $bn per 1%) and zero gamma against spot over time. `history`: columns
    trade_date, spot, zero_gamma, net_gex_per_1pct."""
    h = history.sort_values("trade_date")
    d = pd.to_datetime(h["trade_date"])
    # a few snapshots years apart (vendor samples) are drawn as points: a line between them
    # would invent a history nobody observed
    sparse = len(d) < 20 or d.diff().dt.days.median() > 5
    spot_kw = dict(ls="none", marker="o", ms=4) if sparse else dict(lw=1.3)
    zg_kw = dict(ls="none", marker="x", ms=5) if sparse else dict(lw=1.0, ls="--")
    span_days = max((d.max() - d.min()).days, 1)
    bar_days = max(1.0, span_days / 150) if sparse else 1.0
    with styled():
        fig, ax = figure(7.2, 2.8)
        ax.plot(d, h["spot"], color=NAVY, label=f"{underlying} spot", **spot_kw)
        ax.plot(d, h["zero_gamma"], color=ORANGE, label="zero gamma", **zg_kw)
        ax.set_ylabel("level ($)")
        ax2 = ax.twinx()
        gex = h["net_gex_per_1pct"].to_numpy(float) / 1e9
        ax2.bar(d, gex, color=np.where(gex < 0, RED, GREEN), alpha=0.3, width=bar_days, label="net GEX ($bn per 1%)")
        ax2.set_ylabel("net GEX ($bn per 1%)")
        ax2.grid(False)
        legend(ax, ax2, loc="upper left")
        ax.set_title(f"{underlying}: net dealer GEX and zero gamma against spot")
        date_axis(ax)
    return fig
