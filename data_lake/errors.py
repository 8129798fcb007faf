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
