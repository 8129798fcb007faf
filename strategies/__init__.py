"""strategies: event calendars, option structures and vectorized backtests on vectorbt.
Imports pipelines and data_lake only."""
