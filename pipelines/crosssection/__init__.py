"""Cross-sectional factor families: dispersion (constituent/index vol ratio, realized and
implied correlation), momentum and crowding, leveraged-ETF rebalance flows, squeeze pressure.
Importing the package registers every family with `pipelines.registry`."""

from eventvol.pipelines.crosssection import dispersion  # noqa: F401
from eventvol.pipelines.crosssection import momentum  # noqa: F401
from eventvol.pipelines.crosssection import letf  # noqa: F401
from eventvol.pipelines.crosssection import squeeze  # noqa: F401
from eventvol.pipelines.crosssection import implied  # noqa: F401
