"""The event-panel backtest engine on vectorbt.

An event panel has one column per (event, parameter set) and rows that are sessions relative
to the event; values are the fill prices of the traded structure in dollars per structure
(quote x multiplier). vectorbt simulates every column at once. Fixed fees are per order.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import vectorbt as vbt

# Ample cash per column: vectorbt's default init_cash=100 silently shrinks orders.
INIT_CASH_PER_COLUMN = 1e9


@dataclass
class PanelResult:
    """Per-column P&L (dollars, fees included) and the vectorbt portfolio that produced it."""

    pnl: pd.Series
    portfolio: vbt.Portfolio


def simulate_round_trips(entry_price: pd.Series, exit_price: pd.Series, quantity: pd.Series,
                         fees_per_order: pd.Series) -> PanelResult:
    """Buy `quantity` structures at `entry_price` and sell them at `exit_price`, per column.

    `quantity` may be 0 (a filtered-out event: no trade, P&L 0); a negative quantity is a
    short round trip (sell first, buy back). Prices are dollars per structure."""
    cols = entry_price.index
    rel = pd.Index([-1, 0], name="session_rel_reaction")
    price = pd.DataFrame([entry_price.to_numpy(float), exit_price.to_numpy(float)], index=rel, columns=cols)
    q = quantity.to_numpy(float)
    size = pd.DataFrame([q, -q], index=rel, columns=cols)
    fees = pd.DataFrame([fees_per_order.to_numpy(float)] * 2, index=rel, columns=cols)
    fees = fees.where(size != 0, 0.0)
    pf = vbt.Portfolio.from_orders(
        close=price, size=size, size_type="amount", fixed_fees=fees,
        init_cash=INIT_CASH_PER_COLUMN, freq="1D", direction="both",
    )
    return PanelResult(pnl=pf.total_profit(), portfolio=pf)
