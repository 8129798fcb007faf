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
    """One row of METRIC_COLUMNS per param_id of a trades frame (pnl NaN = not traded)."""
    rows = {pid: event_metrics(t["pnl"], t["exit_session"]) for pid, t in trades.groupby("param_id", sort=True)}
    return pd.DataFrame.from_dict(rows, orient="index")[METRIC_COLUMNS].rename_axis("param_id").reset_index()
