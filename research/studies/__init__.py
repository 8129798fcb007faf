"""Event studies, regressions, factor regimes and the hypothesis registry (research layer)."""
