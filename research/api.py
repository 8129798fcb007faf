"""The notebook API behind `import eventvol` and the `eventvol` CLI: pandas in, pandas out.

Every function takes a lake (a `Lake` or a path), dates as 'YYYY-MM-DD' strings or
date/datetime/Timestamp values, and single values or lists, and delegates to the layer that
owns the work (positioning and factors in `pipelines`, backtests in `strategies`, studies and
reports in `research`). Heavy libraries are imported inside the functions so that
`import eventvol` and `eventvol --help` stay fast. Failures raise `EventvolError` subclasses
whose message is one sentence.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from eventvol.data_lake import EventvolError, Lake, NoDataError
from eventvol.research.studies.result import StudyResult  # noqa: F401  (the API's result type)

DateLike = str | dt.date | dt.datetime | pd.Timestamp | np.datetime64
LakeLike = Lake | str | os.PathLike
Progress = Callable[[str], None] | None

DEFAULT_CAPITAL = 100_000.0  # dollars: the base that turns a backtest's daily P&L into returns


class ApiError(EventvolError):
    """A value given to the Python API that it cannot use (a bad date, an unknown name)."""


# ----------------------------------------------------------------------------- arguments
def as_date(value: DateLike, what: str = "date") -> dt.date:
    """A calendar date from 'YYYY-MM-DD', a date, a datetime or a Timestamp; an impossible
    date (2023-02-29) or any other text is refused, never rolled over."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).date()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ApiError(f"{what} must be a date as YYYY-MM-DD, not {value!r}") from None
    raise ApiError(f"{what} must be a date (YYYY-MM-DD or a date object), not {type(value).__name__} {value!r}")


def as_list(value) -> list:
    """A list of values: a list, tuple, set, Series or array as its items; anything else (a
    string above all: 'long' is one value, never the letters l, o, n, g) as one value."""
    if isinstance(value, (list, tuple, pd.Series, pd.Index, np.ndarray)):
        return list(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return [value]


def open_lake(path: str | os.PathLike | None = None) -> Lake:
    """The lake at `path` (default $EVENTVOL_LAKE or ./lake). `lake.info()` lists its tables,
    `lake.sql(query)` runs a read-only SELECT over them."""
    from eventvol.data_lake.store import default_lake_path

    return Lake.open(path if path is not None else default_lake_path())


def _lake(lake: LakeLike) -> Lake:
    return lake if isinstance(lake, Lake) else open_lake(lake)


def _is_many(value) -> bool:
    """A list-like argument (even of one item) asks for a frame; a single value for a Series."""
    return isinstance(value, (list, tuple, set, frozenset, pd.Series, pd.Index, np.ndarray))


# ----------------------------------------------------------------------------- positioning
def check_gex_options(iv_source: str, sign_model: str, n_grid: int, *,
                      names: tuple[str, str, str] = ("iv_source", "sign_model", "n_grid")) -> None:
    """Refuse an unknown IV source or sign model, or a grid of fewer than 3 spots, in one
    sentence naming the option as the caller spells it (`names`: the CLI passes its flags)."""
    from eventvol.pipelines.gex import SIGN_MODELS
    from eventvol.pipelines.ivsource import IV_SOURCES

    iv_name, sign_name, grid_name = names
    if iv_source not in IV_SOURCES:
        raise ApiError(f"unknown {iv_name} {iv_source!r}; choose one of {', '.join(IV_SOURCES)}")
    if sign_model not in SIGN_MODELS:
        raise ApiError(f"unknown {sign_name} {sign_model!r}; choose one of {', '.join(SIGN_MODELS)}")
    if n_grid < 3:
        raise ApiError(f"{grid_name} must be at least 3 spots, not {n_grid}")


def gex(lake: LakeLike, underlying: str | Sequence[str], date: DateLike | Sequence[DateLike], *,
        sign_model: str = "dealer_long_calls_short_puts", all_roots: bool = False,
        n_grid: int = 201, iv_source: str = "otm") -> pd.Series | pd.DataFrame:
    """Dealer positioning of one chain: net_gex_per_1pct and net_gex_per_point (dollars of
    hedge per 1% / per point), zero_gamma, call_wall and put_wall (dollars of the
    underlying), net_vex_per_volpt, net_cex_per_day, GEX by expiry bucket, 0DTE volume
    share, contracts_used and spot. A Series for one (underlying, date); a DataFrame indexed
    by (underlying, trade_date) when either is a list (chains missing from the lake are
    skipped with a warning). `all_roots` adds zero_gamma_roots (every crossing in
    [0.5 S, 1.5 S]); `n_grid` spots bracket the roots. `iv_source`: otm (default), vendor or
    solved (docs/gex.md, "Implied volatility source"); the Series carries it as `iv_source`,
    and `warning` when no contract was usable."""
    from eventvol.pipelines.positioning import positioning_summary

    check_gex_options(iv_source, sign_model, n_grid)
    lk = _lake(lake)
    names, days = as_list(underlying), [as_date(d) for d in as_list(date)]

    def one(u: str, d: dt.date) -> pd.Series:
        s = positioning_summary(lk, u, d, sign_model=sign_model, all_roots=all_roots, n_grid=n_grid,
                                iv_source=iv_source)
        s["trade_date"] = d
        return pd.Series(s, name=f"{u} {d}")

    if not _is_many(underlying) and not _is_many(date):
        return one(names[0], days[0])
    rows, skipped = [], []
    for u in names:
        for d in days:
            try:
                rows.append(one(u, d))
            except NoDataError as exc:
                skipped.append(f"{u} {d} ({exc})")
    if skipped:
        warnings.warn(f"gex skipped {len(skipped)} chain(s) the lake lacks: {'; '.join(skipped[:3])}", stacklevel=2)
    if not rows:
        raise NoDataError(f"the lake holds none of the {len(names) * len(days)} chains asked for")
    return pd.DataFrame(rows).set_index(["underlying", "trade_date"])


def gex_profile(lake: LakeLike, underlying: str, date: DateLike, *,
                sign_model: str = "dealer_long_calls_short_puts", n_grid: int = 201,
                iv_source: str = "otm") -> pd.DataFrame:
    """Net GEX re-priced at `n_grid` hypothetical spots from 0.5 S to 1.5 S: columns `spot`
    (dollars) and `net_gex_per_1pct` (dollars of hedge per 1% move at that spot); the zero
    gamma level is where it crosses zero."""
    from eventvol.pipelines.positioning import positioning_summary

    check_gex_options(iv_source, sign_model, n_grid)
    s = positioning_summary(_lake(lake), underlying, as_date(date), sign_model=sign_model, profile=True, n_grid=n_grid,
                            iv_source=iv_source)
    p = s["profile"]
    return pd.DataFrame({"spot": np.asarray(p["spots"], float), "net_gex_per_1pct": np.asarray(p["net_gex_per_1pct"], float)})


# ----------------------------------------------------------------------------- factors
def _missing_months(lake: Lake, spec, start: dt.date | None, end: dt.date | None) -> bool:
    """True when some month of the family's driver table in [start, end] has driver rows but
    no materialized row of any of the family's outputs (a month whose outputs are all
    legitimately empty, e.g. inside every lookback, is recomputed each time: that costs time,
    never correctness)."""
    from eventvol.pipelines.loaders import month_ranges

    months = month_ranges(lake, spec.driver_table, start, end)
    if not months:
        return False
    have = lake.df(
        "SELECT DISTINCT year(trade_date) AS y, month(trade_date) AS m FROM factors "
        "WHERE list_contains(?, factor)", [list(spec.outputs)])
    done = {(int(y), int(m)) for y, m in zip(have["y"], have["m"])}
    return any((lo.year, lo.month) not in done for lo, _ in months)


def factor_rows(lake: LakeLike, name: str, entity: str | Sequence[str] | None = None,
                start: DateLike | None = None, end: DateLike | None = None,
                progress: Progress = None) -> pd.DataFrame:
    """Long rows (trade_date, entity, value) of one factor output, sorted by entity then date,
    after computing and storing the factor's family for the range when it is missing."""
    from eventvol.pipelines.factors import materialize, read_factor
    from eventvol.pipelines.refresh import absent_inputs, describe_absent
    from eventvol.pipelines.registry import family_of

    lo = as_date(start, "start") if start is not None else None
    hi = as_date(end, "end") if end is not None else None
    if lo and hi and lo > hi:
        raise ApiError(f"start {lo} is after end {hi}")
    spec = family_of(name)
    lk = _lake(lake)
    absent = absent_inputs(lk, spec)
    if absent:
        raise NoDataError(f"factor {name!r} (family {spec.name!r}) cannot be computed from the lake at {lk.root}: "
                          f"{describe_absent(absent)}")
    if _missing_months(lk, spec, lo, hi):
        materialize(lk, spec, start=lo, end=hi, progress=progress)
    one = entity is not None and not _is_many(entity)
    rows = read_factor(lk, name, entity=str(entity) if one else None, start=lo, end=hi)
    if entity is not None and not one:
        rows = rows[rows["entity"].isin([str(e) for e in as_list(entity)])]
    if rows.empty:
        where = f" for entity {entity!r}" if entity is not None else ""
        raise NoDataError(f"factor {name!r} has no values{where} in the requested range")
    return rows.sort_values(["entity", "trade_date"], kind="stable").reset_index(drop=True)


def factor(lake: LakeLike, name: str, entity: str | Sequence[str] | None = None,
           start: DateLike | None = None, end: DateLike | None = None) -> pd.Series | pd.DataFrame:
    """Values of factor output `name` (e.g. 'net_gex_per_1pct', 'dispersion_ratio_21d') in
    the factor's own unit, computed and stored first when missing. One entity: a Series
    indexed by trade date (a DatetimeIndex named `trade_date`); entity None or a list: a
    DataFrame, one column per entity."""
    rows = factor_rows(lake, name, entity, start, end)
    wide = rows.assign(trade_date=pd.to_datetime(rows["trade_date"])).pivot(
        index="trade_date", columns="entity", values="value").sort_index()
    wide.columns.name = "entity"
    if entity is not None and not _is_many(entity):
        return wide.iloc[:, 0].rename(name)
    return wide


# ----------------------------------------------------------------------------- backtests
@dataclass
class BacktestResult:
    """One strategy run over every parameter set of a sweep.

    params: one row per `param_id` (every parameter of the set); trades: one row per
    (param_id, event), traded or not (`skip_reason` says why not), P&L in dollars with fees;
    metrics: one row per param_id (params joined with event metrics); pnl: realized P&L in
    dollars per NYSE session (rows) and param_id (columns), each trade booked on its exit
    session; capital: the dollars `returns` divides `pnl` by; walk_forward: the walk-forward
    evaluation when `split` was given, else None."""

    strategy: str
    params: pd.DataFrame
    trades: pd.DataFrame
    metrics: pd.DataFrame
    pnl: pd.DataFrame
    capital: float = DEFAULT_CAPITAL
    walk_forward: dict | None = field(default=None)

    @property
    def returns(self) -> pd.Series | pd.DataFrame:
        """Daily simple returns, pnl / capital, on a tz-naive DatetimeIndex of sessions (the
        shape quantstats and pyfolio take): a Series for one parameter set, else a DataFrame
        with one column per param_id."""
        r = self.pnl / float(self.capital)
        if r.shape[1] == 1:
            return r.iloc[:, 0].rename(self.strategy)
        return r

    def __repr__(self) -> str:
        return (f"BacktestResult({self.strategy}: {len(self.params)} parameter set(s) x "
                f"{self.trades['event_id'].nunique()} events, {int(self.trades['traded'].sum())} trades)")


def backtest(lake: LakeLike, strategy: str, *, capital: float = DEFAULT_CAPITAL, split: str | None = None,
             **params) -> BacktestResult:
    """Backtest catalog strategy `strategy` (earnings-straddle, macro-strangle, gamma-regime,
    momentum-crash, squeeze; see `strategies.catalog`). Each keyword is a parameter of the
    strategy; a list value sweeps it (`side=["long", "short"]`), a plain string is one value.
    `underlying`, `symbols` and `kinds` choose what is traded and are not swept. `split`
    'walk-forward:train=N,test=M' adds a walk-forward evaluation; `capital` (dollars) is the
    base of `.returns`. All parameter sets run in one vectorbt simulation."""
    return run_backtest(lake, strategy, params, capital=capital, split=split)


def run_backtest(lake: LakeLike, strategy: str, params: dict, *, capital: float = DEFAULT_CAPITAL,
                 split: str | None = None) -> BacktestResult:
    """`backtest` with the strategy's parameters as one dict (any name, e.g. from the CLI)."""
    from eventvol.strategies.catalog import run_strategy
    from eventvol.strategies.sweep import parse_split, walk_forward

    if isinstance(capital, bool) or not (isinstance(capital, (int, float)) and np.isfinite(capital) and capital > 0):
        raise ApiError(f"capital must be a positive number of dollars, not {capital!r}")
    wf = parse_split(split)
    grid = {k: as_list(v) for k, v in params.items()}
    res = run_strategy(_lake(lake), strategy, grid)
    return BacktestResult(strategy=strategy, params=res.params, trades=res.trades,
                          metrics=res.params.merge(res.metrics, on="param_id"), pnl=res.daily_pnl(),
                          capital=float(capital), walk_forward=walk_forward(res.trades, *wf) if wf else None)


# ----------------------------------------------------------------------------- studies
def hypotheses() -> pd.DataFrame:
    """The declared hypotheses (research/hypotheses/*.toml): name, title, claim, kind, file."""
    from eventvol.research.studies.registry import load_hypotheses

    specs = load_hypotheses()
    cols = ["name", "title", "claim", "kind", "file"]
    return pd.DataFrame([{c: s.get(c) if isinstance(s, dict) else getattr(s, c, None) for c in cols}
                         for s in specs.values()], columns=cols)


def study(lake: LakeLike, hypothesis: str, *, events: str | os.PathLike | None = None,
          expected: str | None = None, car_window: tuple[int, int] | None = None) -> StudyResult:
    """Run one declared hypothesis (see `hypotheses()`); `events` is a CSV event list
    (date,symbol[,name]) for the hypotheses that take one; `expected` ("positive",
    "negative", "two-sided") and `car_window` (first, last session) override the file's."""
    from eventvol.research.studies.registry import load_hypotheses, run_hypothesis
    from eventvol.research.studies.spec import user_overrides

    specs = load_hypotheses()
    if hypothesis not in specs:
        raise ApiError(f"unknown hypothesis {hypothesis!r}; choose one of {', '.join(specs)}")
    spec = user_overrides(specs[hypothesis], expected, car_window)
    return run_hypothesis(_lake(lake), spec, events_file=events)


# ----------------------------------------------------------------------------- refresh, report, demo
def refresh(lake: LakeLike, factors: str | Sequence[str] | None = None, start: DateLike | None = None,
            end: DateLike | None = None, *, force: bool = False, engine: str = "local",
            scheduler: str | None = None, log: Progress = None) -> pd.Series:
    """Compute the factor units (family x session) that are missing or whose inputs changed
    and store them; returns the run summary (run_id, units computed/skipped/failed, rows
    written, seconds). Raises when a unit failed, naming it."""
    from eventvol.pipelines.refresh import refresh as run_refresh

    result = run_refresh(_lake(lake), factors=as_list(factors) if factors is not None else None,
                         start=as_date(start, "start") if start is not None else None,
                         end=as_date(end, "end") if end is not None else None,
                         force=force, engine=engine, scheduler=scheduler, log=log)
    error = result.error()
    if error is not None:
        raise error
    return pd.Series(result.summary(), name="refresh")


STRADDLE = "earnings-straddle"


def straddle_trades(lake: LakeLike) -> tuple[BacktestResult | None, str | None]:
    """The catalog earnings straddle with its default parameters, as the report shows it, or
    (None, why) when this lake cannot run it."""
    try:
        return backtest(lake, STRADDLE), None
    except EventvolError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def write_report(lake: LakeLike, out_dir: str | os.PathLike = "out", *, pdf: bool = True,
           studies: Sequence[str] | None = None, events: str | os.PathLike | None = None,
           straddle: BacktestResult | bool = True, backtests: Sequence[BacktestResult] = (),
           title: str | None = None, progress: Progress = None, extra_provenance: dict | None = None) -> list[Path]:
    """Write the PM research report: out_dir/report.html (self-contained) and, with `pdf`,
    report.pdf. `studies` limits the hypotheses; `straddle` True runs the catalog
    earnings-straddle with its defaults for the report's backtest section (a BacktestResult is
    used as given, False leaves the section out); `backtests` adds a tear sheet per result
    (its first parameter set). Sections the lake's data do not allow are left out and listed
    on the first page. Returns the paths written."""
    from eventvol.research.report import build_research_report

    lk = _lake(lake)
    bt, why = (straddle, None) if isinstance(straddle, BacktestResult) else \
        (straddle_trades(lk) if straddle else (None, None))
    kw = {"title": title} if title else {}
    runs = ([bt] if bt is not None else []) + list(backtests)
    # the reason without the exception's class name (straddle_trades prefixes it)
    left_out = [{"section": f"Backtest {STRADDLE}", "reason": why.split(": ", 1)[-1]}] if why else []
    return build_research_report(lk, Path(out_dir), studies=list(studies) if studies else None, events_file=events,
                                 pdf=pdf, progress=progress, backtests=runs, extra_provenance=extra_provenance,
                                 left_out=left_out, **kw)


report = write_report  # the public name; `demo` has a `report` flag


@dataclass
class DemoResult:
    """What `demo` built: the lake, the synthetic row counts (None when the lake already held
    data), the factor run, the straddle backtest the report shows (None with `warnings` saying
    why), the report and trade files written."""

    lake: Lake
    counts: dict | None
    run_id: str | None
    straddle: BacktestResult | None
    paths: list[Path]
    warnings: list[str] = field(default_factory=list)


DEMO_FAMILIES = ("gex", "dispersion", "momentum", "letf", "squeeze")
TRADES_FILE = "trades_earnings-straddle.csv"  # written by the report's tear sheet


def demo(lake_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike = "out", *, seed: int = 7,
         scale: str = "small", pdf: bool = True, report: bool = True, progress: Progress = None) -> DemoResult:
    """Build the synthetic market into `lake_dir` (when it is empty; `scale` tiny, small,
    medium or large, `seed` fixes it), compute the factors, run the catalog earnings straddle,
    and write the research report (report.html, report.pdf with `pdf`) with the straddle's
    full trade list beside it (out_dir/trades_earnings-straddle.csv). `report=False` stops after the factors."""
    from eventvol.data_lake.store import default_lake_path
    from eventvol.data_lake.synthetic import build, config_for
    from eventvol.pipelines.refresh import refresh as run_refresh
    from eventvol.pipelines.registry import load_families

    step = progress or (lambda text: None)
    cfg = config_for(scale, seed=seed)
    lk = Lake.open(lake_dir if lake_dir is not None else default_lake_path(), create=True)
    counts = None
    if lk.is_empty():
        step("simulating the synthetic market")
        counts = build(lk, cfg, progress=lambda t: step(f"writing {t}"))
    notes = []
    # the refresh runner computes only what is due: a rerun on the same lake is quick. A unit
    # that cannot be computed leaves its hypotheses "not evaluable" instead of failing the demo.
    families = [f for f in DEMO_FAMILIES if f in load_families()]
    result = run_refresh(lk, factors=families, log=lambda line: step(line.split(" fingerprint=")[0]))
    if result.failed:
        notes.append(str(result.error()))
    if not report:
        return DemoResult(lake=lk, counts=counts, run_id=result.run_id, straddle=None, paths=[], warnings=notes)
    step("backtesting the earnings straddle")
    # the report is the demo's product: a backtest that cannot run on this lake is reported
    # and left out of the report rather than losing it
    bt, failure = straddle_trades(lk)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    extra = {"factor run": result.run_id or "no new factor units", "synthetic seed": seed, "synthetic scale": scale}
    if bt is not None:
        p = bt.params.iloc[0]
        extra["straddle"] = f"catalog {STRADDLE}, fee ${p['fee_per_contract']}/contract, quantity {p['quantity']}"
    else:
        notes.append(f"the earnings straddle backtest failed ({failure}); the report omits it")
    paths += write_report(lk, out, pdf=pdf, straddle=bt if bt is not None else False, progress=step,
                    title="eventvol demo: event-driven volatility research note", extra_provenance=extra)
    if bt is not None:
        paths.insert(0, out / TRADES_FILE)
    return DemoResult(lake=lk, counts=counts, run_id=result.run_id, straddle=bt, paths=paths, warnings=notes)
