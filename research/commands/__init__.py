"""CLI command modules; each defines `register(app)` and is listed in research.cli.COMMAND_MODULES."""
