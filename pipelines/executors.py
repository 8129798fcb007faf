"""Executors for the refresh runner: map independent refresh tasks in-process or on a Dask
cluster.

A task is one contiguous run of due trade dates of one factor family inside one of the
family's batch blocks (`FactorSpec.batch_months` months, or the whole run). Its work is one
`spec.load` then one `spec.compute`, reading the lake read-only; only the driver (the
refresh runner) writes. Both executors yield results in task order, so the runner writes the
same rows in the same order whichever engine computed them, and the values are identical:
the same pure function runs on the same task boundaries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from eventvol.data_lake import EventvolError, Lake
from eventvol.pipelines.registry import FACTOR_ROW_COLUMNS, load_families

ENGINES = ("local", "dask")


@dataclass(frozen=True)
class Task:
    """Compute family `family` for the due trade dates `dates` (sorted, all in [start, end])."""

    family: str
    start: dt.date
    end: dt.date
    dates: tuple[dt.date, ...]


ROW_SCHEMA = pa.schema([("factor", pa.string()), ("trade_date", pa.date32()), ("entity", pa.string()),
                       ("value", pa.float64())])


def run_task(lake: Lake | str, task: Task) -> pa.Table:
    """Load and compute one task; rows (factor, trade_date, entity, value) for `task.dates`
    only, sorted by (factor, entity, trade_date), as Arrow (`ROW_SCHEMA`: the factors
    table's columns, so the runner writes them without a conversion). Pure apart from
    reading the lake."""
    if not isinstance(lake, Lake):
        # Workers only read: build the handle directly so that opening never tries to
        # recover (write) the staging area the driver may be using at this moment.
        lake = Lake(Path(lake))
    spec = load_families()[task.family]
    rows = spec.compute(spec.load(lake, task.start, task.end), task.start, task.end)
    if rows is None or len(rows) == 0:
        return ROW_SCHEMA.empty_table()
    tbl = pa.Table.from_pandas(rows[FACTOR_ROW_COLUMNS], preserve_index=False)
    days = tbl.column("trade_date")
    if not pa.types.is_date32(days.type):
        days = days.cast(pa.date32())
    tbl = pa.table([tbl.column("factor").cast(pa.string()), days, tbl.column("entity").cast(pa.string()),
                    tbl.column("value").cast(pa.float64())], schema=ROW_SCHEMA)
    tbl = tbl.filter(pc.is_in(days, pa.array(task.dates, pa.date32())))
    # (factor, entity, trade_date) is the factors key: a total order
    return tbl.sort_by([("factor", "ascending"), ("entity", "ascending"), ("trade_date", "ascending")])


class Executor(Protocol):
    name: str

    def map(self, lake: Lake, tasks: Sequence[Task]) -> Iterator[tuple[Task, pa.Table | BaseException]]:
        """(task, rows or the exception it raised), in task order."""
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """Compute tasks one after another in this process, lazily: the runner writes each
    batch's rows before the next batch is computed, so a crash loses at most one batch."""

    name = "local"

    def map(self, lake: Lake, tasks: Sequence[Task]) -> Iterator[tuple[Task, pa.Table | BaseException]]:
        for task in tasks:
            try:
                yield task, run_task(lake, task)
            except Exception as exc:  # noqa: BLE001 - a factor bug fails its units, not the whole refresh
                yield task, exc

    def close(self) -> None:
        pass


class DaskExecutor:
    """Compute tasks on a dask.distributed cluster: the scheduler at `address`, or a
    LocalCluster started (and stopped) here. Workers open the lake by path, read-only, so
    the lake must be on a file system every worker can see."""

    name = "dask"

    def __init__(self, address: str | None = None, *, n_workers: int = 2, threads_per_worker: int = 1):
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - dask[distributed] is a dependency
            raise EventvolError("--engine dask needs the dask[distributed] package installed") from None
        self._cluster = None
        if address:
            try:
                self.client = Client(address, timeout="10s")
            except (OSError, TimeoutError) as exc:
                raise EventvolError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                         processes=True, dashboard_address=None)
            self.client = Client(self._cluster)

    def map(self, lake: Lake, tasks: Sequence[Task]) -> Iterator[tuple[Task, pa.Table | BaseException]]:
        root = str(lake.root)
        futures = [self.client.submit(run_task, root, t, pure=False, key=f"refresh-{i}-{t.family}-{t.start}")
                   for i, t in enumerate(tasks)]
        try:
            for task, fut in zip(tasks, futures):
                try:
                    yield task, fut.result()
                except Exception as exc:  # noqa: BLE001 - as in LocalExecutor, raised on a worker
                    yield task, exc
        finally:
            for fut in futures:
                fut.release()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(engine: str = "local", scheduler: str | None = None) -> LocalExecutor | DaskExecutor:
    """The executor named `engine` ("local" or "dask"); `scheduler` is a Dask address."""
    if engine == "local":
        if scheduler:
            raise EventvolError("--scheduler only applies to --engine dask")
        return LocalExecutor()
    if engine == "dask":
        return DaskExecutor(scheduler)
    raise EventvolError(f"unknown --engine {engine!r}; choose one of {', '.join(ENGINES)}")
