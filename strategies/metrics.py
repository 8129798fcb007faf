"""Metrics of an event stream: per-event P&L in dollars, aggregated per parameter set."""

from __future__ import annotations

import numpy as np
import pandas as pd

METRIC_COLUMNS = ["events", "trades", "hit_rate", "mean_pnl", "median_pnl", "std_pnl", "p05_pnl", "p95_pnl",
                  "total_pnl", "sharpe_per_event", "sharpe_annual", "max_drawdown"]


def max_drawdown(pnl_in_time_order: np.ndarray) -> float:
    """Largest peak-to-trough fall of the cumulative P&L (dollars, >= 0), starting from 0."""
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(pnl_in_time_order, float))])
    return float(np.max(np.maximum.accumulate(cum) - cum))


def event_metrics(pnl: pd.Series, exit_dates: pd.Series | None = None, n_events: int | None = None) -> dict:
    """Hit rate, mean/median/std/percentiles of P&L per traded event, total, Sharpe of the
    event stream (mean/std per event, and annualized by sqrt(events per year) over the span
    of exit dates) and max drawdown of cumulative P&L in exit order. NaN P&L = not traded."""
    traded = pnl.notna()
    p = pnl[traded].astype(float)
    if exit_dates is not None:
        order = np.argsort(pd.to_datetime(exit_dates[traded]).to_numpy(), kind="stable")
        p = p.iloc[order]
    x = p.to_numpy()
    n = len(x)
    std = float(np.std(x, ddof=1)) if n > 1 else np.nan
    mean = float(np.mean(x)) if n else np.nan
    sharpe = mean / std if n > 1 and std > 0 else np.nan
    annual = np.nan
    if exit_dates is not None and n > 1 and np.isfinite(sharpe):
        d = pd.to_datetime(exit_dates[traded])
        years = max((d.max() - d.min()).days / 365.25, 1.0 / 12)
        annual = sharpe * np.sqrt(n / years)
    return {
        "events": int(n_events if n_events is not None else len(pnl)), "trades": n,
        "hit_rate": float(np.mean(x > 0)) if n else np.nan, "mean_pnl": mean,
        "median_pnl": float(np.median(x)) if n else np.nan, "std_pnl": std,
        "p05_pnl": float(np.percentile(x, 5)) if n else np.nan,
        "p95_pnl": float(np.percentile(x, 95)) if n else np.nan,
        "total_pnl": float(np.sum(x)), "sharpe_per_event": sharpe, "sharpe_annual": float(annual),
        "max_drawdown": max_drawdown(x) if n else 0.0,
    }


def metrics_by_param(trades: pd.DataFrame) -> pd.DataFrame:
    """One row of METRIC_COLUMNS per param_id of a trades frame (pnl NaN = not traded);
    the same numbers as `event_metrics` per param_id, computed for all of them at once."""
    t = trades[["param_id", "pnl", "exit_session"]].assign(exit_session=lambda x: pd.to_datetime(x["exit_session"]))
    ids = pd.Index(np.sort(t["param_id"].unique()), name="param_id")
    events = t.groupby("param_id").size().reindex(ids)
    d = t[t["pnl"].notna()].sort_values(["param_id", "exit_session"], kind="stable")
    g = d.groupby("param_id")["pnl"]
    out = pd.DataFrame(index=ids)
    out["events"] = events.astype(int)
    out["trades"] = g.size().reindex(ids, fill_value=0).astype(int)
    out["hit_rate"] = (d["pnl"] > 0).groupby(d["param_id"]).mean().reindex(ids)
    out["mean_pnl"] = g.mean().reindex(ids)
    out["median_pnl"] = g.median().reindex(ids)
    out["std_pnl"] = g.std(ddof=1).reindex(ids)
    # numpy's default (linear) percentile, as in event_metrics
    out["p05_pnl"] = g.quantile(0.05).reindex(ids)
    out["p95_pnl"] = g.quantile(0.95).reindex(ids)
    out["total_pnl"] = g.sum().reindex(ids, fill_value=0.0)
    sharpe = out["mean_pnl"] / out["std_pnl"]
    out["sharpe_per_event"] = sharpe.where((out["trades"] > 1) & (out["std_pnl"] > 0))
    span = d.groupby("param_id")["exit_session"].agg(lambda x: (x.max() - x.min()).days).reindex(ids)
    years = np.maximum(span / 365.25, 1.0 / 12)
    out["sharpe_annual"] = out["sharpe_per_event"] * np.sqrt(out["trades"] / years)
    cum = d.groupby("param_id")["pnl"].cumsum()
    peak = np.maximum(cum.groupby(d["param_id"]).cummax(), 0.0)  # the curve starts at 0
    out["max_drawdown"] = (peak - cum).groupby(d["param_id"]).max().reindex(ids, fill_value=0.0).clip(lower=0.0)
    return out[METRIC_COLUMNS].reset_index()


def daily_pnl(trades: pd.DataFrame) -> pd.DataFrame:
    """Realized P&L in dollars per NYSE session (rows, a tz-naive DatetimeIndex named `date`)
    and parameter set (columns, `param_id`): each traded event's P&L is booked on its exit
    session; sessions from the first entry to the last exit, 0.0 where nothing exits.
    `trades` has param_id, entry_session, exit_session and pnl (NaN = not traded)."""
    from eventvol.data_lake import calendars

    ids = pd.Index(np.sort(trades["param_id"].unique()), name="param_id")
    done = trades[trades["pnl"].notna()]
    if done.empty:
        return pd.DataFrame(columns=ids, index=pd.DatetimeIndex([], name="date"), dtype=float)
    exits = pd.to_datetime(done["exit_session"])
    days = calendars.sessions(pd.to_datetime(trades["entry_session"]).min(), exits.max()).rename("date")
    booked = done.assign(date=exits).pivot_table(index="date", columns="param_id", values="pnl", aggfunc="sum")
    return booked.reindex(index=days, columns=ids).fillna(0.0)
