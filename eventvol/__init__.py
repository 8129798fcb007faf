"""eventvol: event-driven volatility research.

The four layers install under this one import name: `eventvol.data_lake` (the point-in-time
lake), `eventvol.pipelines` (option math and factors), `eventvol.strategies` (event backtests)
and `eventvol.research` (event studies, reports and the CLI). This module is the public
Python API; see docs/api.md.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _dist_version

try:
    __version__ = _dist_version("eventvol")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
