"""The refresh runner: compute exactly the factor units that are due, crash-safely, in batches.

A unit of work is (factor family, trade date). For every registered family (pipelines.registry)
the runner:

1. plans, under the lake's single-writer lock. A family whose required inputs hold no rows
   (`FactorSpec.required_groups`: a price-only lake has no option_quotes) is skipped as a whole,
   with one summary line naming what is missing. Otherwise the unit dates are the driver
   table's trade dates in [start, end]. A session without driver rows inside the recorded
   history is "no data" (a sparse lake: counted, not a failure); a session after the driver's
   last recorded date, up to an explicit `end`, has missing inputs (the data has not arrived:
   a failed unit, exit 3). Every unit gets an *input fingerprint*, the hash of the family's
   name, version, outputs and lookback and of the content-addressed file names of the input
   partitions covering its date and its lookback window (clipped at the start of history). A
   unit is due when `refresh_state` holds no fingerprint for it or a different one (or with
   `force`); the rest are skipped.
2. groups the due units into tasks: per family, runs of due dates that are consecutive in the
   family's driver dates, cut into blocks of `FactorSpec.batch_months` calendar months (0: the
   whole run, e.g. a backfill of every price family is one task each). A task is one load, one
   vectorized compute and one write; an executor (pipelines.executors: in-process or Dask) maps
   them. The values equal a unit-by-unit refresh bit for bit (`unit_by_unit=True`, tested):
   every family computes each date from its own window only.
3. per block, writes the family's factor rows for the computed dates (replacing the rows those
   dates had, so a unit that lost an entity loses its row) and only then the units'
   fingerprints into `refresh_state`. Each write is an atomic lake transaction; a kill between
   the two leaves the units due, and their recomputation gives the same values.

The log has one line per family and month with computed or failed units, one per family for
units up to date or sessions whose data has not arrived, and one for the families skipped for
absent inputs; `verbose` adds a line per unit.

A run with nothing due writes nothing at all (no factor rows, no `runs` row), so a second
run on unchanged data changes no file of the lake. Fingerprints are per month partition:
a new session makes every unit of its month (and units whose lookback reaches into it) due
again, which costs at most a month of work whatever the length of the history.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from eventvol.data_lake import EventvolError, Lake, NoDataError, calendars
from eventvol.data_lake import spec as table_spec
from eventvol.data_lake.store import new_run_id, partition_of, where_sql
from eventvol.data_lake.vendors import stored_vendor_preference
from eventvol.pipelines.executors import ENGINES, Task, make_executor
from eventvol.pipelines.factors import family_row_blocks
from eventvol.pipelines.registry import FactorSpec, family_of, load_families

# Tables the refresh itself writes: never part of an input fingerprint, or every refresh
# would change the inputs of the next one.
OWN_TABLES = frozenset({"factors", "runs", "refresh_state"})

EXIT_MISSING_INPUTS = 3
EXIT_COMPUTE_FAILED = 4

# Test hooks (crash tests): when the runner reaches a stage named in EVENTVOL_REFRESH_PAUSE_AT
# (comma separated, e.g. "factors_written:0"), it creates EVENTVOL_REFRESH_PAUSE_FILE and
# waits until that file is removed, so a test can SIGKILL it at an exact point.
PAUSE_AT_ENV = "EVENTVOL_REFRESH_PAUSE_AT"
PAUSE_FILE_ENV = "EVENTVOL_REFRESH_PAUSE_FILE"
# Overrides the row budget of every family batched by rows (`FactorSpec.batch_rows`): a small
# machine bounds memory with it, and crash tests get several batches from a tiny lake.
BATCH_ROWS_ENV = "EVENTVOL_REFRESH_BATCH_ROWS"


class MissingInputsError(EventvolError):
    """Inputs of a due session are missing (the data has not arrived); retry later."""

    exit_code = EXIT_MISSING_INPUTS


class UnitsFailedError(EventvolError):
    """Computing some units raised an error."""

    exit_code = EXIT_COMPUTE_FAILED


@dataclass(frozen=True)
class Unit:
    """One (family, trade date) unit and the fingerprint of its inputs."""

    family: str
    trade_date: dt.date
    fingerprint: str
    reason: str = ""  # 'new', 'changed' or 'forced' for due units


@dataclass
class Plan:
    """due/skipped units; `missing`: (family, session) whose data has not arrived; `absent`:
    family -> the required input groups with no rows (the family is skipped); `no_data`:
    family -> sessions inside its recorded history that hold no driver rows."""

    due: list[Unit] = field(default_factory=list)
    skipped: list[Unit] = field(default_factory=list)
    missing: list[tuple[str, dt.date]] = field(default_factory=list)
    absent: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    no_data: dict[str, int] = field(default_factory=dict)


@dataclass
class RefreshResult:
    """What one refresh did. `failed` holds (family, trade_date, reason); `absent` the families
    skipped for absent inputs (family -> missing input groups); `no_data` the count of sessions
    without data per family."""

    run_id: str | None
    engine: str
    computed: list[Unit]
    skipped: list[Unit]
    failed: list[tuple[str, dt.date, str]]
    rows_written: int
    seconds: float
    absent: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    no_data: dict[str, int] = field(default_factory=dict)
    tasks: int = 0

    def summary(self) -> dict:
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "units_computed": len(self.computed),
            "units_skipped": len(self.skipped),
            "units_failed": len(self.failed),
            "rows_written": self.rows_written,
            "tasks": self.tasks,
            "seconds": round(self.seconds, 3),
            "families_skipped": {f: describe_absent(g) for f, g in sorted(self.absent.items())},
            "sessions_without_data": dict(sorted(self.no_data.items())),
            "failed": [{"family": f, "trade_date": d.isoformat(), "reason": r} for f, d, r in self.failed],
        }

    def error(self) -> EventvolError | None:
        """The one-sentence error a non-zero exit reports, or None when every unit is done."""
        if not self.failed:
            return None
        missing = [(f, d) for f, d, r in self.failed if r == "missing inputs"]
        if missing:
            f, d = missing[0]
            more = f" (and {len(missing) - 1} more units)" if len(missing) > 1 else ""
            return MissingInputsError(f"inputs of due session {d} for factor family {f!r} are missing from "
                                      f"table {_driver_of(f)!r}{more}; rerun when the data has arrived")
        f, d, r = self.failed[0]
        more = f" (and {len(self.failed) - 1} more units)" if len(self.failed) > 1 else ""
        return UnitsFailedError(f"computing factor family {f!r} for {d} failed: {r}{more}")


def _driver_of(family: str) -> str:
    return load_families()[family].driver_table


# ---------------------------------------------------------------------------- inputs
def table_has_rows(lake: Lake, table: str) -> bool:
    """True when `table` holds at least one row: a Parquet footer saying so, else (footers
    unreadable: a damaged part) a query, which names the damaged file if it needs it."""
    files = lake.files(table)
    if not files:
        return False
    try:
        return any(pq.ParquetFile(f).metadata.num_rows > 0 for f in files)
    except (OSError, pa.ArrowException):
        return lake.query(f'SELECT 1 FROM "{table}" LIMIT 1').num_rows > 0


def absent_inputs(lake: Lake, spec: FactorSpec) -> list[tuple[str, ...]]:
    """The family's required input groups none of whose tables holds a row (empty: it can
    compute)."""
    has: dict[str, bool] = {}
    out = []
    for group in spec.required_groups:
        if not any(has.setdefault(t, table_has_rows(lake, t)) for t in group):
            out.append(group)
    return out


def describe_absent(groups: Sequence[tuple[str, ...]]) -> str:
    """'no rows in option_quotes, nor in short_interest or option_quotes' style text."""
    return "no rows in " + " nor in ".join(" or ".join(g) for g in groups)


# ---------------------------------------------------------------------------- planning
def _pause(stage: str) -> None:
    stages = os.environ.get(PAUSE_AT_ENV)
    path = os.environ.get(PAUSE_FILE_ENV)
    if not stages or not path or stage not in stages.split(","):
        return
    with open(path, "w") as f:
        f.write(stage)
    while os.path.exists(path):
        time.sleep(0.01)


def _file_index(lake: Lake, table: str) -> tuple[dict[tuple[int, int], tuple[str, ...]], tuple[str, ...]]:
    """Visible file names of `table`: by (year, month) partition, and all of them."""
    by_month: dict[tuple[int, int], list[str]] = defaultdict(list)
    names = []
    for f in lake.files(table):
        names.append(f.name)
        if f.parent.name.startswith("month="):
            by_month[partition_of(f)].append(f.name)
    return {k: tuple(v) for k, v in by_month.items()}, tuple(names)


def window_starts(dates: np.ndarray, lookback_sessions: int) -> np.ndarray:
    """For each date (datetime64[D]), the first session of its window: the session
    `lookback_sessions` sessions before it, clipped at the first session of the calendar."""
    s = calendars._session_array()
    d = np.asarray(dates, dtype="datetime64[D]")
    if lookback_sessions <= 0:
        return d
    i = np.searchsorted(s, d, "left") - int(lookback_sessions)
    return s[np.maximum(i, 0)]


def window_start(d: dt.date, lookback_sessions: int) -> dt.date:
    """The first session of the window of `lookback_sessions` sessions before `d` (and d),
    clipped at the start of the calendar (the first session of recorded history has an empty
    lookback, not an error)."""
    return pd.Timestamp(window_starts(np.array([d], dtype="datetime64[D]"), lookback_sessions)[0]).date()


def _month_index(d64: np.ndarray) -> np.ndarray:
    """year*12 + month-1 of datetime64[D] values."""
    return np.asarray(d64, dtype="datetime64[M]").astype(np.int64) + 1970 * 12


def unit_fingerprints(lake: Lake, spec: FactorSpec, dates: Sequence[dt.date]) -> dict[dt.date, str]:
    """Input fingerprint of each unit date: sha256 (24 hex) of the family's name, version,
    outputs and lookback and the file names of every input partition its window
    [date - lookback, date] covers.

    Families reading option_quotes also hash the lake's stored vendor preference (it decides
    which vendor's chain they read). File names are content hashes, so equal names mean equal
    bytes. Tables partitioned by
    trade_date contribute the months the window covers; any other input table (members,
    events, ...) contributes all its files, conservatively. Dates whose windows cover the same
    months share a fingerprint, which is computed once."""
    indexes = {t: _file_index(lake, t) for t in spec.inputs if t not in OWN_TABLES}
    fixed = [f"{spec.name}|v{spec.version}|{','.join(spec.outputs)}|{spec.lookback_sessions}"]
    stored_pref = stored_vendor_preference(lake)
    if "option_quotes" in spec.inputs and stored_pref is not None:
        # option families read one vendor per chain by the lake's preference: a new order makes
        # their units due (a lake without a stored order keeps the fingerprints it had)
        fixed.append(f"vendor_preference={','.join(stored_pref)}")
    windowed = []
    for t in sorted(indexes):
        if table_spec(t).partition_col == "trade_date":
            windowed.append(t)
        else:
            fixed.append(f"{t}={','.join(indexes[t][1])}")
    head = "\n".join(fixed)
    if not len(dates):
        return {}
    d64 = np.array(dates, dtype="datetime64[D]")
    lo_m = _month_index(window_starts(d64, spec.lookback_sessions))
    hi_m = _month_index(d64)
    cache: dict[tuple[int, int], str] = {}
    out = {}
    for d, lo, hi in zip(dates, lo_m.tolist(), hi_m.tolist()):
        fp = cache.get((lo, hi))
        if fp is None:
            parts = [head]
            for t in windowed:
                by_month = indexes[t][0]
                parts.append(f"{t}=" + ";".join(
                    f"{m // 12:04d}-{m % 12 + 1:02d}:{','.join(by_month.get((m // 12, m % 12 + 1), ()))}"
                    for m in range(lo, hi + 1)))
            fp = cache[(lo, hi)] = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
        out[d] = fp
    return out


def driver_dates(lake: Lake, spec: FactorSpec, start: dt.date | None, end: dt.date | None) -> list[dt.date]:
    """Distinct trade dates of the family's driver table in [start, end], ascending."""
    body, params = where_sql(start=start, end=end)
    where = f" WHERE {body}" if body else ""
    tbl = lake.query(f'SELECT DISTINCT trade_date FROM "{spec.driver_table}"{where} ORDER BY trade_date', params)
    return tbl.column("trade_date").to_pylist()


def _last_driver_date(lake: Lake, spec: FactorSpec) -> dt.date | None:
    """The last trade date the driver table holds (None when empty): sessions after it have
    not arrived yet, sessions before it without rows are gaps of a sparse lake."""
    return lake.query(f'SELECT max(trade_date) AS d FROM "{spec.driver_table}"').column("d")[0].as_py()


def _driver_dates_and_last(lake: Lake, spec: FactorSpec, start: dt.date | None,
                           end: dt.date | None) -> tuple[list[dt.date], dt.date | None]:
    """`driver_dates` and `_last_driver_date` in one scan when the range is open-ended at the
    top (the usual nightly and backfill calls)."""
    if end is not None:
        return driver_dates(lake, spec, start, end), _last_driver_date(lake, spec)
    dates = driver_dates(lake, spec, start, None)
    return dates, (dates[-1] if dates else _last_driver_date(lake, spec))


def stored_fingerprints(lake: Lake, family: str, start: dt.date, end: dt.date) -> dict[dt.date, str]:
    tbl = lake.read_arrow("refresh_state", columns=["trade_date", "input_fingerprint"],
                          where="family = ? AND trade_date >= ? AND trade_date <= ?", params=[family, start, end])
    days = tbl.column("trade_date").to_numpy(zero_copy_only=False)
    return {pd.Timestamp(d).date(): fp for d, fp in zip(days, tbl.column("input_fingerprint").to_pylist())}


def plan_refresh(lake: Lake, specs: Sequence[FactorSpec], start: dt.date | None = None,
                 end: dt.date | None = None, force: bool = False) -> Plan:
    """The units due, skipped and missing for each family in [start, end] (defaults: the
    driver table's first and last trade dates), the families skipped for absent inputs and
    the sessions without data."""
    plan = Plan()
    for spec in specs:
        if spec.unit != "trade_date":
            raise EventvolError(f"factor family {spec.name!r} has unit {spec.unit!r}; refresh handles 'trade_date' units")
        absent = absent_inputs(lake, spec)
        if absent:
            plan.absent[spec.name] = absent
            continue
        dates, last = _driver_dates_and_last(lake, spec, start, end)
        lo = start or (dates[0] if dates else None)
        hi = end or (dates[-1] if dates else None)
        if lo is None or hi is None:
            continue  # no driver rows and no explicit range: nothing is due yet
        sess = calendars.sessions(lo, hi).values.astype("datetime64[D]")
        without = sess[~np.isin(sess, np.array(dates, dtype="datetime64[D]"))]
        # after the last recorded session the data has not arrived yet (a nightly job's
        # --end today); before it, a session without rows is a gap of a sparse lake
        late = without > np.datetime64(last, "D") if last is not None else np.ones(len(without), bool)
        plan.missing += [(spec.name, pd.Timestamp(s).date()) for s in without[late]]
        if (~late).any():
            plan.no_data[spec.name] = int((~late).sum())
        fps = unit_fingerprints(lake, spec, dates)
        stored = stored_fingerprints(lake, spec.name, lo, hi) if dates and not force else {}
        for d in dates:
            old = stored.get(d)
            if force:
                plan.due.append(Unit(spec.name, d, fps[d], "forced"))
            elif old is None:
                plan.due.append(Unit(spec.name, d, fps[d], "new"))
            elif old != fps[d]:
                plan.due.append(Unit(spec.name, d, fps[d], "changed"))
            else:
                plan.skipped.append(Unit(spec.name, d, fps[d]))
    plan.missing.sort(key=lambda x: (x[0], x[1]))
    return plan


def _block_of(d: dt.date, batch_months: int) -> int:
    """The batch block of a date: its calendar-month index // batch_months (0: one block)."""
    return (d.year * 12 + d.month - 1) // batch_months if batch_months > 0 else 0


def batch_rows_override() -> int | None:
    """The row budget `BATCH_ROWS_ENV` sets (None when unset); a value that is not a positive
    whole number of rows is refused in one sentence, before the lake is touched."""
    text = os.environ.get(BATCH_ROWS_ENV, "").strip()
    if not text:
        return None
    if not text.isdigit() or int(text) <= 0:
        raise EventvolError(f"{BATCH_ROWS_ENV} must be a positive whole number of rows, not {text!r}")
    return int(text)


def _block_fn(spec: FactorSpec, lake: Lake) -> Callable[[dt.date], int]:
    """The family's batch block of a date: by rows (`batch_rows`, `BATCH_ROWS_ENV` overriding
    the budget) or by calendar months."""
    blocks = family_row_blocks(lake, spec, batch_rows_override())
    if blocks is not None:
        return lambda d: blocks.get(d.year * 12 + d.month - 1, -1)
    return lambda d: _block_of(d, spec.batch_months)


def make_tasks(due: Sequence[Unit], all_dates: dict[str, list[dt.date]],
               batch_months: dict[str, int] | None = None, unit_by_unit: bool = False,
               blocks: dict[str, Callable[[dt.date], int]] | None = None) -> list[Task]:
    """Split due units into tasks: per family, runs of due dates that are consecutive in the
    family's driver dates (so a task never loads a skipped day's data), cut at the family's
    batch blocks: `blocks[family](date)` when given (`_block_fn`: row budgets), else
    `batch_months[family]` calendar months (default 1; 0: the whole run). Whole-range
    families come first. `unit_by_unit`: one task per unit."""
    by_family: dict[str, list[dt.date]] = defaultdict(list)
    for u in due:
        by_family[u.family].append(u.trade_date)
    tasks = []
    k_of = batch_months or {}
    blocks = blocks or {}
    # whole-range families first: the runner writes their rows together
    for family, days in sorted(by_family.items(), key=lambda kv: (k_of.get(kv[0], 1) != 0, kv[0])):
        days = sorted(days)
        if unit_by_unit:
            tasks += [Task(family, d, d, (d,)) for d in days]
            continue
        k = k_of.get(family, 1)
        block = blocks.get(family) or (lambda d, k=k: _block_of(d, k))
        pos = {d: i for i, d in enumerate(all_dates[family])}
        run = [days[0]]
        for d in days[1:]:
            if pos[d] == pos[run[-1]] + 1 and block(d) == block(run[-1]):
                run.append(d)
            else:
                tasks.append(Task(family, run[0], run[-1], tuple(run)))
                run = [d]
        tasks.append(Task(family, run[0], run[-1], tuple(run)))
    return tasks


# ---------------------------------------------------------------------------- writing
def _rows_of_units(done: dict[str, list[dt.date]], of_family: Callable[[str], pc.Expression]) -> pc.Expression:
    """The rows of the units in `done` (family -> its days): `of_family(family)` on one of its
    days, for any family."""
    out = None
    for family, days in done.items():
        mine = of_family(family) & pc.field("trade_date").isin(pa.array(days, pa.date32()))
        out = mine if out is None else out | mine
    return out


def _write_rows(lake: Lake, done: dict[str, list[dt.date]], outputs: dict[str, tuple[str, ...]],
               rows: pa.Table, run_id: str) -> int:
    """Replace the factor rows of the families in `done` (family -> its computed days) by
    `rows` (`executors.ROW_SCHEMA`) in one lake transaction (`Lake.replace_rows`), leaving
    every other factor's rows of the month partitions touched as they are. A unit whose entity
    disappeared loses its row. Returns rows written."""
    delete = _rows_of_units(done, lambda f: pc.field("factor").isin(pa.array(list(outputs[f]), pa.string())))
    new = rows.append_column("run_id", pa.array([run_id] * rows.num_rows, pa.string()))
    months = sorted({(d.year, d.month) for days in done.values() for d in days})
    lake.replace_rows("factors", new, delete=delete, months=months)
    return new.num_rows


def _record_units(lake: Lake, units: list[Unit], rows_by_unit: dict[tuple[str, dt.date], int], run_id: str) -> None:
    """The units' fingerprints into `refresh_state`, in one transaction after their factor rows."""
    now = pd.Timestamp(datetime.now(dt.UTC))
    state = pa.table({
        "family": pa.array([u.family for u in units], pa.string()),
        "trade_date": pa.array([u.trade_date for u in units], pa.date32()),
        "input_fingerprint": pa.array([u.fingerprint for u in units], pa.string()),
        "run_id": pa.array([run_id] * len(units), pa.string()),
        "computed_at": pa.array([now] * len(units), pa.timestamp("us", tz="UTC")),
        "rows_written": pa.array([int(rows_by_unit.get((u.family, u.trade_date), 0)) for u in units], pa.int64()),
    })
    done: dict[str, list[dt.date]] = defaultdict(list)
    for u in units:
        done[u.family].append(u.trade_date)
    lake.replace_rows("refresh_state", state, delete=_rows_of_units(done, lambda f: pc.field("family") == f))


def _families(names: Sequence[str] | None) -> list[FactorSpec]:
    reg = load_families()
    if not names:
        return [reg[k] for k in sorted(reg)]
    out: dict[str, FactorSpec] = {}
    for n in names:
        s = reg.get(n) or family_of(n)  # a family name or one of its output names
        out[s.name] = s
    return [out[k] for k in sorted(out)]


# ---------------------------------------------------------------------------- the log
def _by_month(days: Sequence[dt.date]) -> dict[str, list[dt.date]]:
    out: dict[str, list[dt.date]] = defaultdict(list)
    for d in days:
        out[f"{d:%Y-%m}"].append(d)
    return out


def _reasons(units: Sequence[Unit]) -> str:
    c = Counter(u.reason for u in units)
    return ", ".join(f"{k} {v}" for k, v in sorted(c.items()))


def _log_plan(plan: Plan, log: Callable[[str], None], verbose: bool) -> None:
    if plan.absent:
        log("refresh skipped families without inputs: " + "; ".join(
            f"{f} ({describe_absent(g)})" for f, g in sorted(plan.absent.items())))
    skipped: dict[str, list[Unit]] = defaultdict(list)
    for u in plan.skipped:
        skipped[u.family].append(u)
        if verbose:
            log(f"refresh {u.family} {u.trade_date} skipped fingerprint={u.fingerprint}")
    for f, us in sorted(skipped.items()):
        log(f"refresh {f} {len(us)} units up to date ({us[0].trade_date}..{us[-1].trade_date})")
    for f, n in sorted(plan.no_data.items()):
        log(f"refresh {f} {n} sessions without data in {load_families()[f].driver_table} (no unit)")
    missing: dict[str, list[dt.date]] = defaultdict(list)
    for f, d in plan.missing:
        missing[f].append(d)
        if verbose:
            log(f"refresh {f} {d} failed missing inputs in {load_families()[f].driver_table}")
    for f, ds in sorted(missing.items()):
        log(f"refresh {f} {len(ds)} sessions failed missing inputs in {load_families()[f].driver_table} "
            f"({ds[0]}..{ds[-1]}: data not arrived)")


def refresh(lake: Lake, *, factors: Sequence[str] | None = None, start: dt.date | None = None,
            end: dt.date | None = None, force: bool = False, engine: str = "local",
            scheduler: str | None = None, executor=None, unit_by_unit: bool = False, verbose: bool = False,
            log: Callable[[str], None] | None = None) -> RefreshResult:
    """Compute the due units of the chosen families (all by default) in [start, end] and write
    them; see the module docstring. Raises LakeLockedError (exit 75) at once when another
    writer holds the lake. Failed units are returned, not raised: see `RefreshResult.error`.
    `unit_by_unit` computes every unit on its own (the reference batching is checked against);
    `verbose` logs a line per unit besides the per-family-and-month summary."""
    t0 = time.perf_counter()
    log = log or (lambda line: None)
    if start and end and start > end:
        raise NoDataError(f"--start {start} is after --end {end}")
    if executor is None and (engine not in ENGINES or (scheduler and engine != "dask")):
        make_executor(engine, scheduler)  # raises the one-sentence error before touching the lake
    batch_rows_override()  # likewise for a bad row budget
    specs = _families(factors)
    started = datetime.now(dt.UTC)
    with lake.writer():
        _pause("locked")
        plan = plan_refresh(lake, specs, start, end, force)
        failed: list[tuple[str, dt.date, str]] = [(f, d, "missing inputs") for f, d in plan.missing]
        _log_plan(plan, log, verbose)
        _pause("planned")
        if not plan.due and not failed:
            # Nothing to do: write nothing at all, not even a run log row.
            return RefreshResult(None, engine, [], plan.skipped, [], 0, time.perf_counter() - t0,
                                 plan.absent, plan.no_data)
        run_id = new_run_id()
        computed: list[Unit] = []
        rows_written = 0
        tasks: list[Task] = []
        if plan.due:
            reg = load_families()
            all_dates: dict[str, list[dt.date]] = defaultdict(list)
            for u in sorted(plan.due + plan.skipped, key=lambda u: (u.family, u.trade_date)):
                all_dates[u.family].append(u.trade_date)
            due_families = {u.family for u in plan.due}
            block_of = {s.name: _block_fn(s, lake) for s in specs if s.name in due_families}
            tasks = make_tasks(plan.due, all_dates, {s.name: s.batch_months for s in specs}, unit_by_unit, block_of)
            units = {(u.family, u.trade_date): u for u in plan.due}
            own_executor = executor is None
            ex = executor or make_executor(engine, scheduler)
            try:
                batch = 0
                pending: list[tuple[Task, pa.Table]] = []

                def write_key(task: Task) -> tuple:
                    # Families computed over whole ranges share one write (a backfill of every
                    # price family rewrites each month partition once); the others write per
                    # family and batch block (runs split by skipped days inside a month are one
                    # partition rewrite).
                    if unit_by_unit:
                        return (task.family, task.start)
                    spec = reg[task.family]
                    if spec.batch_months == 0 and spec.batch_rows <= 0:
                        return ("whole",)
                    return (task.family, block_of[task.family](task.start))

                def flush() -> None:
                    nonlocal batch, rows_written
                    if not pending:
                        return
                    done_days: dict[str, list[dt.date]] = defaultdict(list)
                    for t, _ in pending:
                        done_days[t.family].extend(t.dates)
                    rows = pa.concat_tables([r for _, r in pending])
                    _pause(f"computed:{batch}")
                    rows_written += _write_rows(lake, done_days, {f: reg[f].outputs for f in done_days}, rows, run_id)
                    _pause(f"factors_written:{batch}")
                    counts: dict[tuple[str, dt.date], int] = {}
                    for t, r in pending:
                        if r.num_rows:
                            per_day = pc.value_counts(r.column("trade_date")).flatten()
                            for d, n in zip(per_day[0].to_pylist(), per_day[1].to_pylist()):
                                counts[(t.family, d)] = counts.get((t.family, d), 0) + int(n)
                    done = [units[(f, d)] for f, ds in done_days.items() for d in ds]
                    _record_units(lake, done, counts, run_id)
                    _pause(f"state_written:{batch}")
                    computed.extend(done)
                    for family, days in done_days.items():
                        for month, ds in _by_month(days).items():
                            us = [units[(family, d)] for d in ds]
                            if verbose:
                                for u in us:
                                    log(f"refresh {family} {u.trade_date} computed ({u.reason}) "
                                        f"rows={counts.get((family, u.trade_date), 0)} fingerprint={u.fingerprint}")
                            log(f"refresh {family} {month} computed {len(us)} units ({_reasons(us)}) "
                                f"rows={sum(counts.get((family, d), 0) for d in ds)}")
                    pending.clear()
                    batch += 1

                for task, res in ex.map(lake, tasks):
                    if pending and write_key(pending[0][0]) != write_key(task):
                        flush()
                    if isinstance(res, BaseException):
                        reason = f"{type(res).__name__}: {str(res).splitlines()[0] if str(res) else ''}".strip()
                        failed.extend((task.family, d, reason) for d in task.dates)
                        for month, ds in _by_month(task.dates).items():
                            if verbose:
                                for d in ds:
                                    log(f"refresh {task.family} {d} failed {reason}")
                            log(f"refresh {task.family} {month} failed {len(ds)} units: {reason}")
                        continue
                    pending.append((task, res))
                flush()
            finally:
                if own_executor:
                    ex.close()
        failed.sort(key=lambda x: (x[0], x[1]))
        status = "ok" if not failed else "failed"
        fp = hashlib.sha256("\n".join(f"{u.family}|{u.trade_date}|{u.fingerprint}" for u in computed).encode()).hexdigest()[:24]
        result = RefreshResult(run_id, ex.name if plan.due else engine, computed, plan.skipped, failed, rows_written,
                               time.perf_counter() - t0, plan.absent, plan.no_data, len(tasks))
        _pause("done")
        lake.record_run("refresh", status=status, started_at=started, rows_written=rows_written,
                        params={"factors": [s.name for s in specs], "start": start, "end": end, "force": force,
                                "engine": result.engine},
                        input_fingerprint=fp, run_id=run_id,
                        message=json.dumps({k: v for k, v in result.summary().items() if k != "failed"}))
        result.seconds = time.perf_counter() - t0
        return result
