"""eventvol: event-driven volatility research.

The four layers install under this one import name: `eventvol.data_lake` (the point-in-time
lake), `eventvol.pipelines` (option math and factors), `eventvol.strategies` (event backtests)
and `eventvol.research` (event studies, reports and the CLI). This module is the public
Python API, pandas in and out, and the `eventvol` CLI calls the same functions; see
docs/api.md.

    import eventvol as ev
    lake = ev.open_lake("lake")
    ev.gex(lake, "SPX", "2023-06-16")                  # positioning fields, a Series
    ev.factor(lake, "net_gex_per_1pct", "SPX")          # a Series indexed by date
    ev.backtest(lake, "earnings-straddle", side=["long", "short"]).metrics
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("eventvol")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from eventvol.data_lake import EventvolError, Lake, NoDataError  # noqa: E402
from eventvol.research.api import (  # noqa: E402
    ApiError,
    BacktestResult,
    DemoResult,
    StudyResult,
    backtest,
    demo,
    factor,
    gex,
    gex_profile,
    hypotheses,
    open_lake,
    refresh,
    report,
    study,
)

__all__ = [
    "__version__", "open_lake", "Lake", "gex", "gex_profile", "factor", "backtest", "BacktestResult",
    "study", "StudyResult", "hypotheses", "refresh", "report", "demo", "DemoResult",
    "EventvolError", "NoDataError", "ApiError",
]
