"""Parameter grids and walk-forward evaluation of a sweep's per-event P&L.

A grid maps parameter names to lists of values (strings from the CLI are converted to the
dataclass field's type); the sweep is their cartesian product, in a fixed order.

Walk-forward: events in entry order are cut into folds of `train` events followed by `test`
events; on each fold the parameter set with the best in-sample mean P&L is chosen and its
out-of-sample trades are kept. Test events that enter before the last training event has
exited are purged, so no choice ever uses an outcome not yet known at the test entry.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import typing

import numpy as np
import pandas as pd

from eventvol.data_lake import EventvolError
from eventvol.strategies.metrics import event_metrics


class ParamError(EventvolError):
    """A --param or --split value that cannot be used."""


def _convert(name: str, kind, text):
    if not isinstance(text, str):
        # values from Python (the API) are already typed; a non-finite number is refused alike
        if isinstance(text, float) and not math.isfinite(text):
            raise ParamError(f"parameter {name} must be a finite number, not {text!r}")
        return text
    try:
        if kind in (int, "int"):
            return int(text)
        if kind in (float, "float"):
            value = float(text)
            if not math.isfinite(value):  # nan, inf and overflows such as 1e400
                raise ParamError(f"parameter {name} must be a finite number, not {text!r}")
            return value
        if kind in (bool, "bool"):
            if text.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ParamError(f"parameter {name} must be true or false, not {text!r}")
            return text.lower() in ("1", "true", "yes")
    except ValueError:
        raise ParamError(f"parameter {name} must be a {getattr(kind, '__name__', kind)}, not {text!r}") from None
    return text


def values_of(value) -> list:
    """The values of one grid entry: a list/tuple/set as its items, anything else (a string
    above all: "long" is one value, not the letters l, o, n, g) as one value."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return [value]


def param_grid(cls, grid: dict[str, list], defaults: dict | None = None, strategy: str = "the strategy") -> list:
    """Cartesian product of `grid` over the dataclass `cls` (other fields from `defaults`)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for name in grid:
        if name not in fields:
            raise ParamError(f"unknown parameter {name!r} for {strategy}; choose from {', '.join(fields)}")
    base = dict(defaults or {})
    grid = {n: values_of(v) for n, v in grid.items()}
    names = list(grid)
    out = []
    for combo in itertools.product(*(grid[n] for n in names)):
        kw = dict(base)
        kw.update({n: _convert(n, hints[n], v) for n, v in zip(names, combo)})
        try:
            out.append(cls(**kw))
        except ValueError as exc:
            raise ParamError(f"bad parameters for {strategy}: {exc}") from None
    return out


def parse_param_options(options: list[str]) -> dict[str, list[str]]:
    """['side=long,short', 'fee_per_contract=0.65'] -> {'side': ['long', 'short'], ...}."""
    grid: dict[str, list[str]] = {}
    for opt in options or []:
        if "=" not in opt:
            raise ParamError(f"--param must look like key=v1,v2, not {opt!r}")
        key, values = opt.split("=", 1)
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not key.strip() or not vals:
            raise ParamError(f"--param must look like key=v1,v2, not {opt!r}")
        grid.setdefault(key.strip(), []).extend(vals)
    return grid


def parse_split(text: str | None) -> tuple[int, int] | None:
    """'walk-forward:train=N,test=M' -> (N, M)."""
    if not text:
        return None
    kind, _, rest = text.partition(":")
    if kind != "walk-forward":
        raise ParamError(f"--split must look like walk-forward:train=N,test=M, not {text!r}")
    try:
        kv = dict(part.split("=", 1) for part in rest.split(","))
        train, test = int(kv["train"]), int(kv["test"])
    except (KeyError, ValueError):
        raise ParamError(f"--split must look like walk-forward:train=N,test=M, not {text!r}") from None
    if train < 2 or test < 1:
        raise ParamError("--split needs train >= 2 and test >= 1 events")
    return train, test


def walk_forward(trades: pd.DataFrame, train: int, test: int, objective: str = "mean_pnl") -> dict:
    """In-sample and out-of-sample results of choosing the best parameter set per fold.

    `trades` has param_id, event_id, entry_session, exit_session, pnl (NaN = not traded).
    Returns {'folds': [...], 'in_sample': metrics, 'out_of_sample': metrics,
    'oos_trades': frame}."""
    order = (trades.drop_duplicates("event_id")[["event_id", "entry_session", "exit_session"]]
             .sort_values(["entry_session", "event_id"], kind="mergesort").reset_index(drop=True))
    pnl = trades.pivot(index="event_id", columns="param_id", values="pnl").reindex(order["event_id"])
    if len(order) < train + test:
        raise ParamError(f"walk-forward needs at least {train + test} events, the backtest has {len(order)}")
    folds, is_parts, oos_parts = [], [], []
    for start in range(0, len(order) - train - test + 1, test):
        tr = order.iloc[start:start + train]
        te = order.iloc[start + train:start + train + test]
        te = te[te["entry_session"] > tr["exit_session"].max()]  # purge overlaps
        if te.empty:
            continue
        scores = {pid: event_metrics(pnl.loc[tr["event_id"], pid])[objective] for pid in pnl.columns}
        finite = {k: v for k, v in scores.items() if np.isfinite(v)}
        if not finite:
            continue
        best = max(sorted(finite), key=lambda k: finite[k])
        sel = trades[trades["param_id"] == best]
        is_parts.append(sel[sel["event_id"].isin(tr["event_id"])])
        oos_parts.append(sel[sel["event_id"].isin(te["event_id"])])
        folds.append({"train_start": tr["entry_session"].iloc[0], "train_end": tr["exit_session"].max(),
                      "test_start": te["entry_session"].iloc[0], "test_end": te["exit_session"].max(),
                      "chosen_param_id": int(best), "in_sample_" + objective: finite[best],
                      "out_of_sample_" + objective: event_metrics(pnl.loc[te["event_id"], best])[objective]})
    if not folds:
        raise ParamError("walk-forward found no fold with a traded in-sample window")
    is_t, oos_t = pd.concat(is_parts, ignore_index=True), pd.concat(oos_parts, ignore_index=True)
    return {"folds": folds, "in_sample": event_metrics(is_t["pnl"], is_t["exit_session"]),
            "out_of_sample": event_metrics(oos_t["pnl"], oos_t["exit_session"]), "oos_trades": oos_t}
