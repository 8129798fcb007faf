"""data_lake: canonical schemas, the point-in-time Parquet+DuckDB store, calendars and the
synthetic market. The bottom layer: it imports nothing from the other eventvol packages."""

from eventvol.data_lake.errors import (
    CorruptLakeError,
    EventvolError,
    LakeIOError,
    LakeLockedError,
    LakeNotFoundError,
    LakeWarning,
    NoDataError,
    SchemaError,
    ValidationError,
)
from eventvol.data_lake.schemas import TABLES, TableSpec, spec
from eventvol.data_lake.store import Lake, WriteResult

__all__ = [
    "CorruptLakeError", "EventvolError", "LakeIOError", "LakeLockedError", "LakeWarning", "LakeNotFoundError", "NoDataError", "SchemaError",
    "ValidationError", "TABLES", "TableSpec", "spec", "Lake", "WriteResult",
]
