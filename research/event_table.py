"""Per-event tables and summaries of an event strategy's trades (pure pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def summarize(pnl: pd.Series) -> dict[str, float]:
    """Count, hit rate, mean/median/total P&L (dollars), and the t-stat of the mean."""
    x = pnl.dropna().astype(float)
    n = len(x)
    sd = float(x.std(ddof=1)) if n > 1 else float("nan")
    return {
        "events": n,
        "hit_rate": float((x > 0).mean()) if n else float("nan"),
        "mean_pnl": float(x.mean()) if n else float("nan"),
        "median_pnl": float(x.median()) if n else float("nan"),
        "total_pnl": float(x.sum()),
        "t_stat": float(x.mean() / (sd / np.sqrt(n))) if n > 1 and sd > 0 else float("nan"),
    }


def gex_split(trades: pd.DataFrame) -> pd.DataFrame:
    """Summary of traded events by the sign of net GEX at entry."""
    traded = trades[trades["traded"]]
    sign = np.sign(traded["net_gex_per_1pct_at_entry"])
    label = pd.Series(np.where(sign < 0, "negative GEX", np.where(sign > 0, "positive GEX", "no GEX")), index=traded.index)
    rows = {k: summarize(traded.loc[label == k, "pnl"]) for k in ("negative GEX", "positive GEX") if (label == k).any()}
    return pd.DataFrame(rows).T
