"""Configuration of the synthetic market: every planted mechanism has a named strength.

Scales: `tiny` (tests), `small` (the demo default), `medium`, `large` (>= 100M option rows,
generated and written one month partition at a time).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

NAMED_TICKERS = (
    "ACME BOLT CRUX DYNA ECHO FLUX GRID HALO IONX JADE KITE LUMA MESA NOVA ORBT PIKE QURK "
    "RIFT SOLR TIDE UMBR VOLT WISP XENO YARD ZEST APEX BRIO CORE DUNE EMBR FERN GALE HELM "
    "IRIS JOLT KNOT LYNX MOSS NEXA"
).split()


def tickers(n: int) -> list[str]:
    """n distinct synthetic tickers: 40 named ones, then S040, S041, ..."""
    return NAMED_TICKERS[:n] + [f"S{i:03d}" for i in range(len(NAMED_TICKERS), n)]


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the synthetic market. Vols are annualized decimals unless named daily;
    returns are log returns; money in dollars."""

    seed: int = 7
    start: str = "2023-01-03"
    end: str = "2024-12-31"
    index: str = "SYNX"
    n_stocks: int = 32
    n_members: int = 30
    index_level: float = 4000.0
    market_vol: float = 0.16
    # a bear phase then a rebound, as fractions of the sample: (start, end, annual drift)
    market_drift_schedule: tuple = ((0.20, 0.38, -0.70), (0.38, 0.50, 0.80))

    # 1. dealer gamma feedback
    vol_mult_negative_gex: float = 1.30  # next-session vol scale after net GEX < 0
    vol_mult_positive_gex: float = 0.85  # ... after net GEX >= 0
    gap_continuation_negative_gex: float = 0.25  # intraday move += k * overnight gap
    gap_continuation_positive_gex: float = -0.15

    # 2. earnings: jump stdev (the true implied move) drawn in [lo, hi], scaled by the GEX regime
    earnings_move_lo: float = 0.03
    earnings_move_hi: float = 0.08

    # 3. macro events: index jump stdev on the release session, and vanna drift that session
    macro_move_cpi: float = 0.010
    macro_move_nfp: float = 0.008
    macro_move_fomc: float = 0.009
    # index log-return drift on release sessions when the index's net VEX at the previous
    # close is below (low) or above (high) its trailing 63-session median: IV is crushed after
    # the release and dealers' vanna hedge sells when their vanna exposure is low
    vanna_drift_low_vex: float = -0.006
    vanna_drift_high_vex: float = 0.002

    # 4. momentum, crowding, crashes, dispersion regimes
    momentum_premium_daily: float = 0.0006  # mean daily return of the rotation (WML) factor
    wml_vol_daily: float = 0.006
    crash_size_sd: float = 6.0  # crash = -crash_size_sd * current WML daily vol
    crash_hazard_base: float = 0.002
    crash_hazard_rebound: float = 0.12  # extra daily hazard in a rebound state, x crowding prob
    dispersion_p_enter: float = 0.02
    dispersion_p_exit: float = 0.10
    dispersion_idio_mult: float = 1.6
    dispersion_rotation_mult: float = 3.0
    dispersion_market_mult: float = 0.6

    # 5. leveraged ETFs: (fund, leverage, AUM at start); flow_t = sum AUM(t-1) L (L-1) r_t
    letf_funds: tuple = (("SYNU", 3.0, 10e9), ("SYNZ", -3.0, 5e9), ("SYNL", 2.0, 8e9))
    letf_impact_per_billion: float = 0.0007  # next-session index log return per $1B of flow

    # 6. short squeezes
    n_squeeze_candidates: int = 3
    squeeze_si_threshold: float = 0.15  # short interest / float above which squeezes can start
    squeeze_hazard: float = 0.04  # daily, while above the threshold during call buying
    squeeze_jump_lo: float = 0.08  # per session, two sessions
    squeeze_jump_hi: float = 0.15

    # 7. disclosure events (a famous short seller's puts): two sessions of negative returns
    n_disclosures: int = 4
    disclosure_daily_lo: float = -0.09
    disclosure_daily_hi: float = -0.05

    # option chains
    stock_expiries: int = 3
    index_monthlies: int = 3
    index_weeklies_days: int = 35
    index_dailies: int = 5
    stock_strike_range: float = 0.30
    index_strike_range: float = 0.12
    oi_persistence: float = 0.90  # share of yesterday's open interest still open today

    def __post_init__(self):
        if not 2 <= self.n_members <= self.n_stocks:
            raise ValueError("need 2 <= n_members <= n_stocks")


SCALES: dict[str, dict] = {
    "tiny": dict(start="2023-01-03", end="2023-08-31", n_stocks=6, n_members=5),
    "small": {},
    "medium": dict(start="2022-01-03", end="2024-12-31", n_stocks=100, n_members=95),
    "large": dict(start="2020-01-02", end="2024-12-31", n_stocks=500, n_members=480, stock_expiries=4),
}


def config_for(scale: str = "small", **overrides) -> SyntheticConfig:
    """The configuration of a named scale, with overrides (e.g. seed=3)."""
    if scale not in SCALES:
        from eventvol.data_lake.errors import EventvolError

        raise EventvolError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return replace(SyntheticConfig(), **{**SCALES[scale], **overrides})
