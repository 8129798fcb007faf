"""`eventvol ingest FORMAT PATH...` and `eventvol lake quarantine`: vendor files into the lake."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eventvol.data_lake import TABLES, Lake
from eventvol.data_lake.store import default_lake_path
from eventvol.research.cli_common import LakeOpt, out, print_json

lake_app = typer.Typer(name="lake", help="Inspect the lake (what it holds, quarantined rows, integrity).", no_args_is_help=True)


def ingest(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="Vendor format, e.g. cboe-eod, ivydb-opprcd, prices-csv.")],
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Files to ingest.")],
    lake: LakeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Map vendor files onto the canonical tables; bad rows are quarantined with their reason."""
    from eventvol.data_lake.ingest import FORMATS, IngestError, ingest_files

    if fmt not in FORMATS:
        raise IngestError(f"unknown ingest format {fmt!r}; choose one of {', '.join(FORMATS)}")
    lk = Lake.open(lake or default_lake_path(), create=True)
    with _file_progress(len(paths)) as progress:
        report = ingest_files(lk, fmt, paths, progress=progress)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"eventvol ingest {fmt}: {report.rows_read:,} rows read from {len(paths)} file(s), "
              f"{report.rows_written:,} written, {report.rows_quarantined:,} quarantined "
              f"(ingest {report.ingest_id}, {report.seconds:.1f}s)")
    for table, n in report.tables.items():
        out.print(f"  {table}: {n:,} rows")
    if report.rows_quarantined:
        out.print(f"  see them with: eventvol lake quarantine --lake {lk.root}")


class _file_progress:
    """A progress bar over files on an interactive terminal with several files; else nothing."""

    def __init__(self, total: int):
        self.total = total
        self._bar = None

    def __enter__(self):
        from eventvol.research.progress import interactive

        if self.total < 2 or not interactive():
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("ingest {task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), transient=True)
        self._bar.start()
        task = self._bar.add_task("", total=self.total)
        return lambda done, total, name: self._bar.update(task, completed=done, description=name)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()


@lake_app.command("quarantine")
def quarantine(
    lake: LakeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of rows.")] = False,
    limit: Annotated[int, typer.Option(help="Show at most this many rows (0 = all).")] = 200,
) -> None:
    """List quarantined rows: ingest, file, line, column, reason, value."""
    from eventvol.data_lake.ingest import read_quarantine

    lk = Lake.open(lake or default_lake_path())
    rows = read_quarantine(lk).to_pylist()
    shown = rows[:limit] if limit else rows
    if as_json:
        print_json(shown)
        return
    if not rows:
        out.print(f"no quarantined rows in {lk.root}")
        return
    for r in shown:
        value = f" (value {r['value']!r})" if r["value"] is not None else ""
        column = f" column {r['column']}" if r["column"] else ""
        out.print(f"{r['ingest_id']} {r['file']}:{r['line']}{column}: {r['reason']}{value}", markup=False)
    if len(shown) < len(rows):
        out.print(f"... {len(rows) - len(shown):,} more (use --limit 0)")


@lake_app.command("info")
def info(
    lake: LakeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list, one object per table.")] = False,
) -> None:
    """What the lake holds per table: rows, first and last date, entities, vendors, partitions, size."""
    import pandas as pd

    lk = Lake.open(lake or default_lake_path())
    table = lk.info()
    if as_json:
        records = []
        for r in table.to_dict("records"):
            records.append({k: (None if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)
                                else v.date().isoformat() if k in ("first", "last") else v)
                            for k, v in r.items()})
        print_json(records)
        return
    held = table[table["rows"] > 0]
    out.print(f"lake {lk.root}: {int(table['rows'].sum()):,} rows in {len(held)} of {len(table)} tables, "
              f"{int(table['bytes'].sum()) / 1e6:,.1f} MB", markup=False)
    out.print(f"  {'table':<16}{'rows':>12}  {'first':<10}  {'last':<10}{'entities':>9}{'partitions':>11}{'MB':>9}  vendors",
              markup=False)
    for r in held.itertuples():
        first = "" if pd.isna(r.first) else f"{r.first:%Y-%m-%d}"
        last = "" if pd.isna(r.last) else f"{r.last:%Y-%m-%d}"
        ent = "" if pd.isna(r.entities) else f"{int(r.entities):,}"
        out.print(f"  {r.table:<16}{r.rows:>12,}  {first:<10}  {last:<10}{ent:>9}{r.partitions:>11,}"
                  f"{r.bytes / 1e6:>9,.2f}  {r.vendors if isinstance(r.vendors, str) else ''}", markup=False)
    empty = table[table["rows"] == 0]["table"].tolist()
    if empty:
        out.print(f"  empty: {', '.join(empty)}", markup=False)


@lake_app.command("verify")
def verify(
    lake: LakeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    set_aside: Annotated[bool, typer.Option("--set-aside", help="Move every damaged file to DIR/damaged/<time>/ "
                                                               "so its partition can be re-ingested.")] = False,
) -> None:
    """Check every file of the lake (whole Parquet, content hash equal to its name, page
    checksums) and list the damaged ones; exit 65 when any is damaged (0 after --set-aside)."""
    from eventvol.data_lake.errors import CorruptLakeError
    from eventvol.research.progress import status

    lk = Lake.open(lake or default_lake_path())
    with status("eventvol lake verify") as step:
        damaged = lk.verify(progress=lambda done, total, name: step(f"{done}/{total} {name}"))
    checked = sum(len(lk.files(t)) for t in TABLES)
    moved = [lk.relative(p) for p in lk.set_aside_damaged(damaged)] if (set_aside and not damaged.empty) else []
    rows = damaged.to_dict("records")
    if as_json:
        print_json({"lake": str(lk.root), "files_checked": checked + len(moved), "damaged": rows, "set_aside": moved})
    else:
        for r in rows:
            out.print(f"damaged: {r['file']}: {r['problem']}", markup=False)
        for p in moved:
            out.print(f"set aside: {p}", markup=False)
        out.print(f"{checked + len(moved)} files checked in {lk.root}, {len(rows)} damaged", markup=False)
    if rows and not moved:
        first = rows[0]
        raise CorruptLakeError(
            f"{len(rows)} damaged file(s) in lake {lk.root}, first {first['file']} ({first['problem']}); "
            f"set them aside with `eventvol lake verify --set-aside --lake {lk.root}` and re-ingest their partitions")


@lake_app.command("vendors")
def vendors(
    lake: LakeOpt = None,
    order: Annotated[str | None, typer.Option("--set", help="Store the lake's vendor order, most preferred first, "
                                                              "comma-separated (e.g. cboe-datashop,orats).")] = None,
    reset: Annotated[bool, typer.Option("--reset", help="Restore the default vendor order.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """The vendor order readers use to pick one vendor per (underlying, trade_date), and the
    chains each vendor holds (docs/ingest.md, "Several vendors side by side")."""
    from eventvol.data_lake.vendors import DEFAULT_VENDOR_PREFERENCE, set_vendor_preference, vendor_preference

    if order is not None and reset:
        raise typer.BadParameter("give --set or --reset, not both")
    lk = Lake.open(lake or default_lake_path())
    if order is not None:
        set_vendor_preference(lk, [v.strip() for v in order.split(",") if v.strip()])
    elif reset:
        set_vendor_preference(lk, None)
    current = vendor_preference(lk)
    held = lk.df("SELECT vendor, count(*) AS rows, count(DISTINCT (underlying, trade_date)) AS chains "
                 "FROM option_quotes GROUP BY vendor ORDER BY vendor")
    held = [{"vendor": r.vendor, "rows": int(r.rows), "chains": int(r.chains)} for r in held.itertuples()]
    if as_json:
        print_json({"order": list(current), "default": current == DEFAULT_VENDOR_PREFERENCE, "held": held})
        return
    where = "default" if current == DEFAULT_VENDOR_PREFERENCE else "lake setting"
    out.print(f"vendor order ({where}): {', '.join(current)}; unlisted vendors follow alphabetically", markup=False)
    for h in held:
        out.print(f"  {h['vendor']}: {h['rows']:,} option rows in {h['chains']:,} chains", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.add_typer(lake_app)
