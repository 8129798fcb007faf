"""Shared pieces of the CLI command modules: options, consoles, parsing, JSON output."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from eventvol.data_lake import NoDataError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

LakeOpt = Annotated[Optional[Path], typer.Option("--lake", help="Lake directory (default $EVENTVOL_LAKE or ./lake).")]


def parse_date(value: str, option: str = "--date") -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise NoDataError(f"{option} must be a date as YYYY-MM-DD, not {value!r}") from None


def out_folder(path: Path, option: str = "--out") -> Path:
    """`path` as an output folder, refused before any work if it is a file (or under one)."""
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise NoDataError(f"{option} {path}: {p} is a file, not a folder; give a folder for the output")
            break
    return path


def _json_default(o):
    if isinstance(o, (dt.date, dt.datetime)):
        return o.isoformat()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(type(o).__name__)


def print_json(obj) -> None:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    sys.stdout.write(json.dumps(clean(obj), default=_json_default) + "\n")




CsvOpt = Annotated[Optional[Path], typer.Option("--csv", help="Also write the rows to this CSV file.")]
ParquetOpt = Annotated[Optional[Path], typer.Option("--parquet", help="Also write the rows to this Parquet file.")]


def export_frames(frames: dict[str, "object"], csv: Path | None, parquet: Path | None) -> list[Path]:
    """Write pandas frames for `--csv` / `--parquet`. One frame goes to the path given; several
    (e.g. a backtest's trades and metrics) go to `<stem>_<name><suffix>` beside it. Each file
    is written beside and renamed into place; a missing folder is a one-sentence error."""
    written = []
    for target, fmt in ((csv, "csv"), (parquet, "parquet")):
        if target is None:
            continue
        target = Path(target)
        if not target.parent.is_dir():
            raise NoDataError(f"--{fmt} {target}: the folder {target.parent} does not exist")
        for name, frame in frames.items():
            path = target if len(frames) == 1 else target.with_name(f"{target.stem}_{name}{target.suffix or '.' + fmt}")
            tmp = path.with_name(path.name + ".tmp")
            if fmt == "csv":
                frame.to_csv(tmp, index=False)
            else:
                frame.to_parquet(tmp, index=False)
            tmp.replace(path)
            written.append(path)
    return written
