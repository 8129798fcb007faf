"""The refresh runner: compute exactly the factor units that are due, crash-safely.

A unit of work is (factor family, trade date). For every registered family (pipelines.registry)
the runner:

1. plans, under the lake's single-writer lock: the unit dates are the driver table's trade
   dates in [start, end]; a NYSE session in that range without driver rows has missing inputs
   (a failed unit); every other unit gets an *input fingerprint*, the hash of the
   content-addressed file names of the input partitions covering its date and its lookback
   window. A unit is due when `refresh_state` holds no fingerprint for it or a different one
   (or with `force`); the rest are skipped.
2. groups the due units by month into tasks (contiguous runs of due dates) and maps them
   with an executor (pipelines.executors: in-process or Dask);
3. per month, writes the family's factor rows for the computed dates (replacing the rows
   those dates had, so a unit that lost an entity loses its row) and only then the units'
   fingerprints into `refresh_state`. Each write is an atomic lake transaction; a kill
   between the two leaves the units due, and their recomputation gives the same values.

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
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from eventvol.data_lake import EventvolError, Lake, NoDataError, calendars
from eventvol.data_lake import spec as table_spec
from eventvol.data_lake.store import new_run_id, partition_of, where_sql
from eventvol.pipelines.executors import ENGINES, Task, make_executor
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
    due: list[Unit] = field(default_factory=list)
    skipped: list[Unit] = field(default_factory=list)
    missing: list[tuple[str, dt.date]] = field(default_factory=list)


@dataclass
class RefreshResult:
    """What one refresh did. `failed` holds (family, trade_date, reason)."""

    run_id: str | None
    engine: str
    computed: list[Unit]
    skipped: list[Unit]
    failed: list[tuple[str, dt.date, str]]
    rows_written: int
    seconds: float

    def summary(self) -> dict:
        return {
            "run_id": self.run_id,
            "engine": self.engine,
            "units_computed": len(self.computed),
            "units_skipped": len(self.skipped),
            "units_failed": len(self.failed),
            "rows_written": self.rows_written,
            "seconds": round(self.seconds, 3),
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


def _months(lo: dt.date, hi: dt.date) -> list[tuple[int, int]]:
    out, y, m = [], lo.year, lo.month
    while (y, m) <= (hi.year, hi.month):
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def window_start(d: dt.date, lookback_sessions: int) -> dt.date:
    """The first session of the window of `lookback_sessions` sessions before `d` (and d)."""
    if lookback_sessions <= 0:
        return d
    sess = calendars.sessions(d - dt.timedelta(days=int(lookback_sessions * 1.6) + 14), d)
    before = sess[sess < pd.Timestamp(d)]
    return before[-lookback_sessions].date() if len(before) >= lookback_sessions else before[0].date()


def unit_fingerprints(lake: Lake, spec: FactorSpec, dates: Sequence[dt.date]) -> dict[dt.date, str]:
    """Input fingerprint of each unit date: sha256 (24 hex) of the family's name, outputs and
    the file names of every input partition its window [date - lookback, date] covers.

    File names are content hashes, so equal names mean equal bytes. Tables partitioned by
    trade_date contribute the months the window covers; any other input table (members,
    events, ...) contributes all its files, conservatively."""
    indexes = {t: _file_index(lake, t) for t in spec.inputs if t not in OWN_TABLES}
    fixed = [f"{spec.name}|{','.join(spec.outputs)}|{spec.lookback_sessions}"]
    windowed = []
    for t in sorted(indexes):
        if table_spec(t).partition_col == "trade_date":
            windowed.append(t)
        else:
            fixed.append(f"{t}={','.join(indexes[t][1])}")
    head = "\n".join(fixed)
    out = {}
    for d in dates:
        months = _months(window_start(d, spec.lookback_sessions), d)
        parts = [head]
        for t in windowed:
            by_month = indexes[t][0]
            parts.append(f"{t}=" + ";".join(f"{y:04d}-{m:02d}:{','.join(by_month.get((y, m), ()))}" for y, m in months))
        out[d] = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]
    return out


def driver_dates(lake: Lake, spec: FactorSpec, start: dt.date | None, end: dt.date | None) -> list[dt.date]:
    """Distinct trade dates of the family's driver table in [start, end], ascending."""
    body, params = where_sql(start=start, end=end)
    where = f" WHERE {body}" if body else ""
    tbl = lake.query(f'SELECT DISTINCT trade_date FROM "{spec.driver_table}"{where} ORDER BY trade_date', params)
    return [pd.Timestamp(x).date() for x in tbl.column("trade_date").to_numpy(zero_copy_only=False)]


def stored_fingerprints(lake: Lake, family: str, start: dt.date, end: dt.date) -> dict[dt.date, str]:
    tbl = lake.read_arrow("refresh_state", columns=["trade_date", "input_fingerprint"],
                          where="family = ? AND trade_date >= ? AND trade_date <= ?", params=[family, start, end])
    days = tbl.column("trade_date").to_numpy(zero_copy_only=False)
    return {pd.Timestamp(d).date(): fp for d, fp in zip(days, tbl.column("input_fingerprint").to_pylist())}


def plan_refresh(lake: Lake, specs: Sequence[FactorSpec], start: dt.date | None = None,
                 end: dt.date | None = None, force: bool = False) -> Plan:
    """The units due, skipped and missing for each family in [start, end] (defaults: the
    driver table's first and last trade dates)."""
    plan = Plan()
    for spec in specs:
        if spec.unit != "trade_date":
            raise EventvolError(f"factor family {spec.name!r} has unit {spec.unit!r}; refresh handles 'trade_date' units")
        dates = driver_dates(lake, spec, start, end)
        lo = start or (dates[0] if dates else None)
        hi = end or (dates[-1] if dates else None)
        if lo is None or hi is None:
            continue  # an empty driver table and no explicit range: nothing is due yet
        have = set(dates)
        plan.missing += [(spec.name, s.date()) for s in calendars.sessions(lo, hi) if s.date() not in have]
        fps = unit_fingerprints(lake, spec, dates)
        stored = stored_fingerprints(lake, spec.name, lo, hi) if dates else {}
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


def make_tasks(due: Sequence[Unit], all_dates: dict[str, list[dt.date]]) -> list[Task]:
    """Split due units into tasks: per family and month, runs of due dates that are
    consecutive in the family's driver dates (so a task never loads a skipped day's data)."""
    by_group: dict[tuple[str, int, int], list[dt.date]] = defaultdict(list)
    for u in due:
        by_group[(u.family, u.trade_date.year, u.trade_date.month)].append(u.trade_date)
    tasks = []
    for (family, _, _), days in sorted(by_group.items()):
        days = sorted(days)
        pos = {d: i for i, d in enumerate(all_dates[family])}
        run = [days[0]]
        for d in days[1:]:
            if pos[d] == pos[run[-1]] + 1:
                run.append(d)
            else:
                tasks.append(Task(family, run[0], run[-1], tuple(run)))
                run = [d]
        tasks.append(Task(family, run[0], run[-1], tuple(run)))
    return tasks


# ---------------------------------------------------------------------------- writing
def _write_month(lake: Lake, spec: FactorSpec, days: list[dt.date], rows: pd.DataFrame, run_id: str) -> int:
    """Replace the family's factor rows of `days` (all in one month) by `rows`, leaving every
    other factor's rows of that month partition as they are. Returns rows written."""
    first = dt.date(days[0].year, days[0].month, 1)
    last = (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
    old = lake.read_arrow("factors", where="trade_date >= ? AND trade_date <= ?", params=[first, last])
    drop = pc.and_(pc.is_in(old.column("factor"), pa.array(list(spec.outputs), pa.string())),
                   pc.is_in(old.column("trade_date"), pa.array(days, pa.date32())))
    had_rows = bool(pc.any(drop).as_py()) if old.num_rows else False
    new = rows.copy()
    new["run_id"] = run_id
    if new.empty and not had_rows:
        return 0
    if not had_rows:
        lake.write("factors", new, mode="upsert")  # nothing to remove: a keyed upsert suffices
        return len(new)
    keep = old.filter(pc.invert(drop)).to_pandas()
    merged = pd.concat([keep, new], ignore_index=True) if len(keep) else new
    if merged.empty:
        # Every row of this month belonged to the recomputed units and none came back;
        # the lake has no partition delete, so keep the old rows rather than lose them.
        return 0
    lake.write("factors", merged, mode="replace")
    return len(new)


def _record_units(lake: Lake, units: list[Unit], rows_by_date: dict[dt.date, int], run_id: str) -> None:
    now = pd.Timestamp(datetime.now(dt.UTC))
    lake.write("refresh_state", pd.DataFrame({
        "family": [u.family for u in units],
        "trade_date": [u.trade_date for u in units],
        "input_fingerprint": [u.fingerprint for u in units],
        "run_id": run_id,
        "computed_at": now,
        "rows_written": [int(rows_by_date.get(u.trade_date, 0)) for u in units],
    }))


def _families(names: Sequence[str] | None) -> list[FactorSpec]:
    reg = load_families()
    if not names:
        return [reg[k] for k in sorted(reg)]
    out: dict[str, FactorSpec] = {}
    for n in names:
        s = reg.get(n) or family_of(n)  # a family name or one of its output names
        out[s.name] = s
    return [out[k] for k in sorted(out)]


def refresh(lake: Lake, *, factors: Sequence[str] | None = None, start: dt.date | None = None,
            end: dt.date | None = None, force: bool = False, engine: str = "local",
            scheduler: str | None = None, executor=None,
            log: Callable[[str], None] | None = None) -> RefreshResult:
    """Compute the due units of the chosen families (all by default) in [start, end] and write
    them; see the module docstring. Raises LakeLockedError (exit 75) at once when another
    writer holds the lake. Failed units are returned, not raised: see `RefreshResult.error`."""
    t0 = time.perf_counter()
    log = log or (lambda line: None)
    if start and end and start > end:
        raise NoDataError(f"--start {start} is after --end {end}")
    if executor is None and (engine not in ENGINES or (scheduler and engine != "dask")):
        make_executor(engine, scheduler)  # raises the one-sentence error before touching the lake
    specs = _families(factors)
    started = datetime.now(dt.UTC)
    with lake.writer():
        _pause("locked")
        plan = plan_refresh(lake, specs, start, end, force)
        failed: list[tuple[str, dt.date, str]] = [(f, d, "missing inputs") for f, d in plan.missing]
        for u in plan.skipped:
            log(f"refresh {u.family} {u.trade_date} skipped fingerprint={u.fingerprint}")
        for f, d in plan.missing:
            log(f"refresh {f} {d} failed missing inputs in {load_families()[f].driver_table}")
        _pause("planned")
        if not plan.due and not failed:
            # Nothing to do: write nothing at all, not even a run log row.
            return RefreshResult(None, engine, [], plan.skipped, [], 0, time.perf_counter() - t0)
        run_id = new_run_id()
        computed: list[Unit] = []
        rows_written = 0
        if plan.due:
            reg = load_families()
            all_dates: dict[str, list[dt.date]] = defaultdict(list)
            for u in sorted(plan.due + plan.skipped, key=lambda u: (u.family, u.trade_date)):
                all_dates[u.family].append(u.trade_date)
            tasks = make_tasks(plan.due, all_dates)
            units = {(u.family, u.trade_date): u for u in plan.due}
            own_executor = executor is None
            ex = executor or make_executor(engine, scheduler)
            try:
                batch = 0
                pending: list[tuple[Task, pd.DataFrame]] = []

                def flush() -> None:
                    nonlocal batch, rows_written
                    if not pending:
                        return
                    spec = reg[pending[0][0].family]
                    days = [d for t, _ in pending for d in t.dates]
                    rows = pd.concat([r for _, r in pending], ignore_index=True)
                    _pause(f"computed:{batch}")
                    rows_written += _write_month(lake, spec, days, rows, run_id)
                    _pause(f"factors_written:{batch}")
                    counts = rows.groupby("trade_date").size().to_dict() if len(rows) else {}
                    done = [units[(spec.name, d)] for d in days]
                    _record_units(lake, done, counts, run_id)
                    _pause(f"state_written:{batch}")
                    for u in done:
                        computed.append(u)
                        log(f"refresh {u.family} {u.trade_date} computed ({u.reason}) rows={counts.get(u.trade_date, 0)} "
                            f"fingerprint={u.fingerprint}")
                    pending.clear()
                    batch += 1

                for task, res in ex.map(lake, tasks):
                    if pending and (pending[0][0].family, pending[0][0].start.year, pending[0][0].start.month) != \
                            (task.family, task.start.year, task.start.month):
                        flush()
                    if isinstance(res, BaseException):
                        reason = f"{type(res).__name__}: {str(res).splitlines()[0] if str(res) else ''}".strip()
                        for d in task.dates:
                            failed.append((task.family, d, reason))
                            log(f"refresh {task.family} {d} failed {reason}")
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
                               time.perf_counter() - t0)
        _pause("done")
        lake.record_run("refresh", status=status, started_at=started, rows_written=rows_written,
                        params={"factors": [s.name for s in specs], "start": start, "end": end, "force": force,
                                "engine": result.engine},
                        input_fingerprint=fp, run_id=run_id,
                        message=json.dumps({k: v for k, v in result.summary().items() if k != "failed"}))
        result.seconds = time.perf_counter() - t0
        return result
