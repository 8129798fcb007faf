"""Exceptions raised by eventvol. Every user-facing failure is an `EventvolError` whose
message is one clear sentence; the CLI prints it and exits with `exit_code`."""

from __future__ import annotations


class EventvolError(Exception):
    """Base class for errors shown to users as one sentence."""

    exit_code: int = 2


class LakeNotFoundError(EventvolError):
    """The lake directory does not exist or is not a lake."""


class LakeLockedError(EventvolError):
    """Another process holds the single-writer lock (EX_TEMPFAIL, as cron wrappers expect)."""

    exit_code = 75


class SchemaError(EventvolError):
    """Data does not fit a canonical table's schema (missing column, wrong type)."""


class ValidationError(EventvolError):
    """Rows break a table's invariants; the write is refused as a whole."""


class NoDataError(EventvolError):
    """A query asked for an underlying, symbol or date that the lake does not hold."""


class CorruptLakeError(EventvolError):
    """A file of the lake is damaged (content hash, page checksum or Parquet structure do not
    hold); the message names the file and how to recover (EX_DATAERR)."""

    exit_code = 65


class LakeIOError(EventvolError):
    """The operating system refused a lake or file operation: permission, read-only place,
    disk full, not a folder (EX_IOERR)."""

    exit_code = 74


class LakeWarning(UserWarning):
    """Something the lake repaired or set aside on its own (e.g. a corrupt journal); the CLI
    prints it as one `warning:` line."""
