"""Scheduled and unscheduled events of the synthetic market: earnings (BMO/AMC), macro
releases (NFP, CPI, FOMC) and short-seller disclosures."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from eventvol.data_lake import calendars

SOURCE = "synthetic"
MACRO_TIMES = {"NFP": ("08:30", "BMO"), "CPI": ("08:30", "BMO"), "FOMC": ("14:00", "INTRADAY")}
FOMC_MONTHS = (1, 3, 5, 6, 7, 9, 11, 12)


def _row(event_id, kind, symbol, sched, timing, reaction, known_at, payload) -> dict:
    return dict(event_id=event_id, kind=kind, symbol=symbol, scheduled_ts=sched, timing=timing,
                reaction_session=reaction, known_at=known_at, source=SOURCE, payload=json.dumps(payload, sort_keys=True))


def earnings(cfg, symbols, sessions: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    """Four reports a year per stock, BMO or AMC, announced 28 days ahead; the payload holds
    the true implied move (stdev of the reaction-session jump before the GEX scaling)."""
    rows = []
    first, last = sessions[5].date(), sessions[-1].date()
    for sym in symbols:
        lag = int(rng.integers(0, 15))
        for year in range(sessions[0].year, sessions[-1].year + 1):
            for month in (1, 4, 7, 10):
                day = calendars.session_on_or_after(dt.date(year, month, 18) + dt.timedelta(days=lag))
                timing = "BMO" if rng.random() < 0.5 else "AMC"
                move = float(rng.uniform(cfg.earnings_move_lo, cfg.earnings_move_hi))
                reaction = day if timing == "BMO" else calendars.next_session(day)
                if day <= first or reaction > last:
                    continue
                sched = calendars.market_time_utc(day, "07:00" if timing == "BMO" else "16:05")
                rows.append(_row(f"EARN-{sym}-{day:%Y%m%d}", "earnings", sym, sched, timing, reaction,
                                 calendars.market_time_utc(day - dt.timedelta(days=28), "00:00"),
                                 {"true_implied_move": round(move, 6)}))
    return pd.DataFrame(rows)


def macro(cfg, sessions: pd.DatetimeIndex) -> pd.DataFrame:
    """NFP (first Friday), CPI (around the 12th), FOMC (third Wednesday of eight months),
    announced 90 days ahead; the payload holds the true index move stdev."""
    moves = {"NFP": cfg.macro_move_nfp, "CPI": cfg.macro_move_cpi, "FOMC": cfg.macro_move_fomc}
    rows = []
    first, last = sessions[0].date(), sessions[-1].date()
    for period in pd.period_range(sessions[0], sessions[-1], freq="M"):
        y, m = period.year, period.month
        days = pd.date_range(dt.date(y, m, 1), periods=28, freq="D")
        cands = {"NFP": days[days.day_of_week == 4][0], "CPI": dt.date(y, m, 12)}
        if m in FOMC_MONTHS:
            cands["FOMC"] = days[days.day_of_week == 2][2]
        for kind, when in cands.items():
            day = calendars.session_on_or_after(when)
            hhmm, timing = MACRO_TIMES[kind]
            if first < day <= last:
                rows.append(_row(f"{kind}-{day:%Y%m%d}", kind, None, calendars.market_time_utc(day, hhmm), timing,
                                 day, calendars.market_time_utc(day - dt.timedelta(days=90), "00:00"),
                                 {"true_index_move": moves[kind]}))
    return pd.DataFrame(rows)


def disclosures(cfg, symbols, sessions: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    """Unscheduled after-close filings revealing large put positions; known only when filed.
    The payload holds the planted daily abnormal return of the next two sessions."""
    rows = []
    n_t, n = len(sessions), min(cfg.n_disclosures, len(symbols))
    picks = np.sort(rng.choice(np.arange(n_t // 5, n_t - 5), size=n, replace=False))
    names = rng.choice(len(symbols), size=n, replace=False)
    for t, i in zip(picks, names):
        day = sessions[t].date()
        sym = symbols[i]
        daily = float(rng.uniform(cfg.disclosure_daily_lo, cfg.disclosure_daily_hi))
        sched = calendars.market_time_utc(day, "16:30")
        rows.append(_row(f"DISC-{sym}-{day:%Y%m%d}", "disclosure", sym, sched, "AMC",
                         calendars.next_session(day), sched,
                         {"filer": "synthetic short seller", "position": "puts",
                          "true_daily_abnormal_return": round(daily, 6), "sessions": 2}))
    return pd.DataFrame(rows)


def jump_schedule(events: pd.DataFrame, sessions: pd.DatetimeIndex, symbols) -> tuple[np.ndarray, np.ndarray]:
    """(earnings jump stdev per session x stock, macro jump stdev per session) on reaction
    sessions."""
    pos = {d.date(): i for i, d in enumerate(sessions)}
    sym = {s: i for i, s in enumerate(symbols)}
    earn = np.zeros((len(sessions), len(symbols)))
    mac = np.zeros(len(sessions))
    for r in events.itertuples(index=False):
        p = json.loads(r.payload)
        if r.kind == "earnings" and r.reaction_session in pos:
            earn[pos[r.reaction_session], sym[r.symbol]] = p["true_implied_move"]
        elif r.kind in MACRO_TIMES and r.reaction_session in pos:
            mac[pos[r.reaction_session]] = p["true_index_move"]
    return earn, mac


def disclosure_returns(events: pd.DataFrame, sessions: pd.DatetimeIndex, symbols) -> np.ndarray:
    """Planted abnormal log returns per session x stock from disclosure events."""
    pos = {d.date(): i for i, d in enumerate(sessions)}
    sym = {s: i for i, s in enumerate(symbols)}
    out = np.zeros((len(sessions), len(symbols)))
    for r in events[events["kind"] == "disclosure"].itertuples(index=False):
        p = json.loads(r.payload)
        t = pos[r.reaction_session]
        out[t: t + p["sessions"], sym[r.symbol]] += p["true_daily_abnormal_return"]
    return out
