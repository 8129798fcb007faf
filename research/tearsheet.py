"""A backtest tear sheet for the report: equity and drawdown of the strategy's daily returns,
P&L distribution, P&L by dealer-gamma regime and by year, implied vs realized move for
option event strategies, and the metrics table. Pure: frames in, charts and rows out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eventvol.research import charts as C
from eventvol.research import formatting as F

DEFAULT_CAPITAL = 100_000.0  # dollars: the base that turns daily P&L into returns (as the API's)


@dataclass
class Backtest:
    """What a tear sheet needs of one backtest (one parameter set): `returns` are daily simple
    returns (P&L / capital) on sessions, `trades` one row per event (traded or not, P&L in
    dollars with fees), `metrics` the strategy's metrics row, `params` the parameters."""

    strategy: str
    trades: pd.DataFrame
    returns: pd.Series
    metrics: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    capital: float = DEFAULT_CAPITAL


def daily_returns(trades: pd.DataFrame, capital: float = DEFAULT_CAPITAL) -> pd.Series:
    """P&L of traded events booked on their exit session, summed per session, over `capital`
    (sessions without an exit are absent, i.e. 0)."""
    done = trades[trades["traded"].astype(bool) & trades["pnl"].notna()]
    exit_col = "exit_session" if "exit_session" in done.columns else "reaction_session"
    pnl = done.groupby(pd.to_datetime(done[exit_col]))["pnl"].sum().sort_index()
    return (pnl / capital).rename("returns")


def from_result(res, param_id: int | None = None) -> Backtest:
    """A Backtest of one parameter set of a strategy result: the API's BacktestResult
    (strategy, params, trades, metrics, returns, capital) or a catalog SweepResult."""
    params = res.params
    pid = int(params["param_id"].iloc[0]) if param_id is None else int(param_id)
    trades = res.trades[res.trades["param_id"] == pid].reset_index(drop=True)
    capital = float(getattr(res, "capital", DEFAULT_CAPITAL))
    returns = getattr(res, "returns", None)
    if isinstance(returns, pd.DataFrame):
        returns = returns[pid]
    if returns is None:
        returns = daily_returns(trades, capital)
    metrics = res.metrics[res.metrics["param_id"] == pid].iloc[0].to_dict()
    p = params[params["param_id"] == pid].iloc[0].to_dict()
    return Backtest(strategy=getattr(res, "strategy", "") or "", trades=trades, returns=returns.astype(float),
                    metrics=metrics, params={k: v for k, v in p.items() if k != "param_id"}, capital=capital)


def gex_column(trades: pd.DataFrame) -> str | None:
    """The column holding net dealer GEX at entry ($ per 1%), whichever name the strategy uses."""
    for c in ("net_gex_per_1pct_at_entry", "net_gex"):
        if c in trades.columns:
            return c
    return None


def equity_chart(bt: Backtest):
    """Cumulative return (% of capital, P&L not compounded) and its drawdown from the peak."""
    r = bt.returns.sort_index()
    cum = 100 * r.cumsum()
    dd = cum - cum.cummax().clip(lower=0)
    with C.styled():
        fig, (ax, ax2) = C.figure(7.2, 3.4, nrows=2, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        ax.plot(cum.index, cum.values, color=C.NAVY, lw=1.4, label="cumulative return")
        ax.axhline(0, color=C.GREY, lw=0.6)
        ax.set_ylabel(f"% of ${bt.capital:,.0f}")
        ax.legend(loc="upper left")
        ax2.fill_between(dd.index, dd.values, 0, color=C.RED, alpha=0.35, step="post", label="drawdown")
        ax2.set_ylabel("drawdown (% of capital)")
        ax2.legend(loc="lower left")
        C.date_axis(ax2)
        ax.set_title(f"{bt.strategy}: equity and drawdown of daily returns")
        fig.tight_layout()
    return fig


def traded(bt: Backtest) -> pd.DataFrame:
    return bt.trades[bt.trades["traded"].astype(bool) & bt.trades["pnl"].notna()]


def regime_labels(trades: pd.DataFrame) -> pd.Series:
    """'dealers short gamma' / 'dealers long gamma' / 'no GEX' by net GEX at entry."""
    col = gex_column(trades)
    if col is None:
        return pd.Series("no GEX", index=trades.index)
    g = trades[col].to_numpy(float)
    return pd.Series(np.where(g < 0, "dealers short gamma", np.where(g >= 0, "dealers long gamma", "no GEX")),
                     index=trades.index)


def pnl_by(trades: pd.DataFrame, key: pd.Series) -> pd.DataFrame:
    """Per group: trades, hit rate, mean and total P&L ($)."""
    g = trades.groupby(key)["pnl"]
    return pd.DataFrame({"trades": g.size(), "hit_rate": g.apply(lambda x: float((x > 0).mean())),
                         "mean_pnl": g.mean(), "total_pnl": g.sum()})


def distribution_chart(bt: Backtest):
    """P&L per trade histogram (1st-99th percentile bins, tails piled in the end bins) by
    regime at entry, and total P&L by year and regime."""
    t = traded(bt)
    lab = regime_labels(t)
    with C.styled():
        fig, (ax, ax2) = C.figure(7.2, 2.6, ncols=2, gridspec_kw={"width_ratios": [1.3, 1]})
        lo, hi = np.percentile(t["pnl"], [1, 99]) if len(t) else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1, 25)
        colors = {"dealers short gamma": C.RED, "dealers long gamma": C.GREEN, "no GEX": C.GREY}
        for name, g in t.groupby(lab):
            ax.hist(np.clip(g["pnl"], bins[0], bins[-1]), bins=bins, alpha=0.55, color=colors[name],
                    label=f"{name} (n={len(g)})")
        ax.axvline(0, color=C.GREY, lw=0.6)
        ax.set_xlabel("P&L per trade ($)")
        ax.set_ylabel("trades")
        ax.legend(loc="upper left")
        ax.set_title("P&L per trade by dealer gamma at entry")
        year = pd.to_datetime(t["exit_session"] if "exit_session" in t else t["reaction_session"]).dt.year
        by = t.groupby([year.rename("year"), lab.rename("regime")])["pnl"].sum().unstack(fill_value=0.0)
        x = np.arange(len(by.index))
        w = 0.8 / max(len(by.columns), 1)
        for i, name in enumerate(by.columns):
            ax2.bar(x + i * w - 0.4 + w / 2, by[name].to_numpy() / 1e3, width=w, color=colors[name], label=name)
        ax2.set_xticks(x, [str(y) for y in by.index])
        ax2.axhline(0, color=C.GREY, lw=0.6)
        ax2.set_xlabel("year of exit")
        ax2.set_ylabel("total P&L ($ thousands)")
        ax2.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside: the bars fill the axes
        ax2.set_title("P&L by year and regime")
        fig.tight_layout()
    return fig


def realized_moves(trades: pd.DataFrame, closes: pd.DataFrame) -> pd.Series:
    """|close at exit / close at entry - 1| of each trade's underlying (decimal), from `closes`
    (columns trade_date, symbol, close); NaN where a close is missing."""
    c = closes.assign(trade_date=pd.to_datetime(closes["trade_date"])).set_index(["symbol", "trade_date"])["close"]
    c = c[~c.index.duplicated()]
    entry = c.reindex(pd.MultiIndex.from_arrays([trades["underlying"], pd.to_datetime(trades["entry_session"])])).to_numpy()
    exit_ = c.reindex(pd.MultiIndex.from_arrays([trades["underlying"], pd.to_datetime(trades["exit_session"])])).to_numpy()
    return pd.Series(np.abs(exit_ / entry - 1), index=trades.index, name="realized_move")


def move_scatter(bt: Backtest, realized: pd.Series):
    """Implied move at entry against the realized move to exit, per event (percent), with the
    45-degree line: above it the straddle buyer won before costs."""
    t = traded(bt)
    imp = 100 * t["implied_move"].to_numpy(float)
    rea = 100 * realized.reindex(t.index).to_numpy(float)
    lab = regime_labels(t).to_numpy()
    with C.styled():
        fig, ax = C.figure(4.6, 3.2)
        for name, color in (("dealers short gamma", C.RED), ("dealers long gamma", C.GREEN), ("no GEX", C.GREY)):
            m = lab == name
            if m.any():
                ax.scatter(imp[m], rea[m], s=12, color=color, alpha=0.7, label=f"{name} (n={int(m.sum())})")
        top = float(np.nanmax(np.r_[imp, rea, 1.0]))
        ax.plot([0, top], [0, top], color=C.GREY, lw=0.8, ls="--", label="realized = implied")
        ax.set_xlabel("implied move at entry (%)")
        ax.set_ylabel("realized move to exit (%)")
        ax.legend(loc="upper left")
        ax.set_title("Implied vs realized event move")
    return fig


def metrics_rows(bt: Backtest) -> list[tuple[str, str]]:
    """The metrics table in words and units."""
    m = bt.metrics
    r = bt.returns
    years = max((r.index.max() - r.index.min()).days / 365.25, 1 / 252) if len(r) else float("nan")
    cum = r.cumsum()
    rows = [
        ("parameters", ", ".join(f"{k}={v}" for k, v in bt.params.items()) or "defaults"),
        ("trades (events)", f"{int(m.get('trades', 0)):,} of {int(m.get('events', 0)):,}"),
        ("hit rate", F.pct(m.get("hit_rate"))),
        ("mean P&L per trade", F.money(m.get("mean_pnl"))),
        ("median P&L per trade", F.money(m.get("median_pnl"))),
        ("total P&L", F.money(m.get("total_pnl"))),
        ("max drawdown", F.money(-abs(m["max_drawdown"])) if m.get("max_drawdown") is not None else "n/a"),
        ("Sharpe per trade", F.number(m.get("sharpe_per_event"), 3)),
        ("Sharpe annualized", F.number(m.get("sharpe_annual"), 3)),
        (f"return on ${bt.capital:,.0f} (not compounded)", F.pct(float(cum.iloc[-1]) if len(cum) else None, 2)),
        ("return per year", F.pct(float(cum.iloc[-1]) / years if len(cum) else None, 2)),
    ]
    return rows


def tearsheet(bt: Backtest, closes: pd.DataFrame | None = None, *, top_n: int = 10) -> dict:
    """Everything the report's tear sheet shows: charts (base64 PNG), metrics rows, P&L by
    regime and year rows, and the top-N trades by absolute P&L."""
    t = traded(bt)
    out = {"strategy": bt.strategy, "metrics": metrics_rows(bt), "n_trades": len(t)}
    if t.empty:
        out["empty"] = "no trade was made with these parameters on this lake"
        return out
    out["equity_png"] = C.png_b64(equity_chart(bt))
    out["dist_png"] = C.png_b64(distribution_chart(bt))
    reg = pnl_by(t, regime_labels(t)).reset_index(names="group")
    year = pd.to_datetime(t["exit_session"]).dt.year.astype(str)
    yr = pnl_by(t, year).reset_index(names="group")
    out["by_regime"] = reg.to_dict("records")
    out["by_year"] = yr.to_dict("records")
    if "implied_move" in t.columns and closes is not None and t["implied_move"].notna().any():
        out["scatter_png"] = C.png_b64(move_scatter(bt, realized_moves(t, closes)))
    cols = [c for c in ("event_id", "underlying", "entry_session", "exit_session", "strikes", "implied_move", "pnl")
            if c in t.columns]
    top = t.reindex(t["pnl"].abs().sort_values(ascending=False).index)[cols].head(top_n)
    out["top_trades"] = [{**r, "entry_session": str(pd.Timestamp(r["entry_session"]).date()),
                          "exit_session": str(pd.Timestamp(r["exit_session"]).date())} for r in top.to_dict("records")]
    out["trade_columns"] = cols
    return out
