"""research: event studies, reports and the `eventvol` CLI. The top layer."""
