"""Progress display: rich on an interactive terminal, silent under cron/CI (no TTY or CI set)."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from rich.console import Console


def interactive() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def status(message: str):
    """Yield a function `step(text)` that updates a spinner on a terminal and does nothing
    elsewhere."""
    if not interactive():
        yield lambda text: None
        return
    console = Console(stderr=True)
    with console.status(message) as st:
        yield lambda text: st.update(f"{message}: {text}")
