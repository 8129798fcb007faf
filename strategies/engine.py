"""The event-panel backtest engine on vectorbt.

An event panel has one column per (event, parameter set) and rows that are sessions relative
to the event; values are the fill prices of the traded structure in dollars per structure
(quote x multiplier). vectorbt simulates every column at once. Fixed fees are per order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import vectorbt as vbt

# Ample cash per column: vectorbt's default init_cash=100 silently shrinks orders.
INIT_CASH_PER_COLUMN = 1e9


@dataclass
class PanelResult:
    """Per-column P&L (dollars, fees included). The vectorbt portfolio stays inside: its
    rows are sessions relative to each event and its cash is the engine's ample float, so
    its own stats (period, start value, Sharpe) would mislead."""

    pnl: pd.Series


def positive_shift(lowest_price: np.ndarray, fees_per_order: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Per column, the constant to add to every price so that the lowest is above 1 + the
    fixed fee per unit: vectorbt fills only at positive prices and rejects a sale whose
    proceeds do not cover its fixed fee. Adding one constant to both fills of a round trip
    leaves its dollar P&L unchanged."""
    floor = 1.0 + np.asarray(fees_per_order, float) / np.maximum(np.abs(np.asarray(units, float)), 1.0)
    return np.where(np.isfinite(lowest_price), np.maximum(floor - lowest_price, 0.0), 0.0)


def simulate_panel(mark: np.ndarray, entry_fill: np.ndarray, exit_fill: np.ndarray, exit_row: np.ndarray,
                   units: np.ndarray, fees_per_order: np.ndarray, columns: pd.Index | None = None,
                   index: pd.Index | None = None) -> PanelResult:
    """Simulate a wide event panel in one vectorbt call.

    `mark` (rows x columns) is the structure's mid in dollars per unit, row 0 being the entry
    close; each column opens `units` (signed: negative is short) at row 0 at `entry_fill` and
    closes at `exit_row` at `exit_fill`, paying `fees_per_order` on each of the two orders.
    Columns with units == 0 do not trade (P&L 0).

    vectorbt only fills at positive prices, yet a structure can be worth zero (an expired
    out-of-the-money strangle) or less (a calendar filled at the worst side), so each column's
    prices are shifted by a constant making them >= 1; a round trip's dollar P&L is unchanged
    by a constant shift of both fills, and the position is flat outside [0, exit_row]."""
    mark = np.array(mark, dtype=float, copy=True)
    n_rows, n_cols = mark.shape
    rows = np.arange(n_rows)[:, None]
    after = rows > exit_row[None, :]
    # freeze the mark after the exit (flat position) so NaN rows never enter the valuation
    mark = pd.DataFrame(np.where(after, np.nan, mark)).ffill().to_numpy()
    price = mark.copy()
    cols = np.arange(n_cols)
    price[0, :] = entry_fill
    price[exit_row, cols] = exit_fill
    traded = units != 0
    lows = np.nanmin(np.vstack([price, mark]), axis=0)
    shift = positive_shift(lows, np.broadcast_to(fees_per_order, lows.shape), units)
    price = np.nan_to_num(price + shift, nan=1.0)
    close = np.nan_to_num(mark + shift, nan=1.0)
    size = np.full((n_rows, n_cols), np.nan)
    size[0, :] = np.where(traded, units, np.nan)
    size[exit_row, cols] = np.where(traded, -units, np.nan)
    fees = np.zeros((n_rows, n_cols))
    fees[0, :] = np.where(traded, fees_per_order, 0.0)
    fees[exit_row, cols] = np.where(traded, fees_per_order, 0.0)
    index = index if index is not None else pd.RangeIndex(n_rows, name="row")
    columns = columns if columns is not None else pd.RangeIndex(n_cols, name="column")

    def frame(a):
        return pd.DataFrame(a, index=index, columns=columns)

    pf = vbt.Portfolio.from_orders(
        close=frame(close), price=frame(price), size=frame(size), size_type="amount",
        fixed_fees=frame(fees), init_cash=INIT_CASH_PER_COLUMN, freq="1D", direction="both",
    )
    return PanelResult(pnl=pf.total_profit())
