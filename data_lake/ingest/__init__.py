"""Vendor ingest: map Cboe, OptionMetrics IvyDB, ORATS and plain CSV files onto the canonical
tables, quarantining bad rows with file, line, column and reason (see docs/ingest.md)."""

from eventvol.data_lake.ingest.core import IngestReport, ingest_files, make_ingest_id, read_quarantine
from eventvol.data_lake.ingest.formats import FORMATS as _FORMAT_SPECS
from eventvol.data_lake.ingest.reader import IngestError

FORMATS: tuple[str, ...] = tuple(_FORMAT_SPECS)

__all__ = ["FORMATS", "IngestError", "IngestReport", "ingest_files", "make_ingest_id", "read_quarantine"]
