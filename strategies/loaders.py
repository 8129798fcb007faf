"""Lake I/O for strategies: events, chains at given sessions, leg quotes, factor values."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from eventvol.data_lake import Lake
from eventvol.data_lake.vendors import picked_vendors_sql, vendor_rank_sql


def load_events(lake: Lake, kinds: tuple[str, ...], *, as_of=None) -> pd.DataFrame:
    """Events of the given kinds, known by `as_of` when given."""
    marks = ", ".join("?" for _ in kinds)
    return lake.read("events", where=f"kind IN ({marks})", params=list(kinds), as_of=as_of)


def chains_at(lake: Lake, wanted: pd.DataFrame) -> pd.DataFrame:
    """Chain rows for each (event_id, underlying, trade_date) in `wanted`, restricted to rows
    available by the row's `decision_ts` (the entry decision time)."""
    want = pa.table({
        "event_id": pa.array(wanted["event_id"].astype(str).tolist(), pa.string()),
        "underlying": pa.array(wanted["underlying"].astype(str).tolist(), pa.string()),
        "trade_date": pa.array(pd.to_datetime(wanted["trade_date"]).dt.date.tolist(), pa.date32()),
        "decision_ts": pa.array(pd.to_datetime(wanted["decision_ts"], utc=True).tolist(), pa.timestamp("us", tz="UTC")),
    })
    # one vendor per chain, chosen among the rows known at the decision (data_lake.vendors)
    rank = vendor_rank_sql(lake=lake, column="q.vendor")
    sql = f"""
        SELECT w.event_id, q.underlying, q.trade_date, q.root, q.expiration, q.strike, q.option_type,
               q.bid, q.ask, q.underlying_price, q.multiplier, q.available_ts,
               q.settlement, q.iv, q.delta
        FROM __want w JOIN option_quotes q
          ON q.underlying = w.underlying AND q.trade_date = w.trade_date
        WHERE q.available_ts <= w.decision_ts
        QUALIFY dense_rank() OVER (PARTITION BY w.event_id, q.underlying, q.trade_date ORDER BY {rank}, q.vendor) = 1
        ORDER BY w.event_id, q.root, q.expiration, q.strike, q.option_type
    """
    return lake.df(sql, tables={"__want": want})


def factor_at(lake: Lake, factor: str, keys: pd.DataFrame) -> pd.Series:
    """Factor value for each (entity, trade_date) row of `keys`, aligned to its index
    (NaN where the factor was not computed)."""
    want = pa.table({
        "i": pa.array(range(len(keys)), pa.int64()),
        "entity": pa.array(keys["entity"].astype(str).tolist(), pa.string()),
        "trade_date": pa.array(pd.to_datetime(keys["trade_date"]).dt.date.tolist(), pa.date32()),
    })
    df = lake.df(
        "SELECT w.i, f.value FROM __w w LEFT JOIN factors f ON f.factor = ? AND f.entity = w.entity "
        "AND f.trade_date = w.trade_date ORDER BY w.i", [factor], tables={"__w": want},
    )
    return pd.Series(df["value"].to_numpy(float), index=keys.index)


def leg_quotes_between(lake: Lake, legs: pd.DataFrame) -> pd.DataFrame:
    """Quotes of each leg (event_id, leg + contract key) on every trade date in
    [start, end] of its row; only the quoted days come back (the caller marks the gaps)."""
    want = pa.table({
        "event_id": pa.array(legs["event_id"].astype(str).tolist(), pa.string()),
        "leg": pa.array(legs["leg"].astype(int).tolist(), pa.int64()),
        "underlying": pa.array(legs["underlying"].astype(str).tolist(), pa.string()),
        "root": pa.array(legs["root"].astype(str).tolist(), pa.string()),
        "expiration": pa.array(pd.to_datetime(legs["expiration"]).dt.date.tolist(), pa.date32()),
        "strike": pa.array(legs["strike"].astype(float).tolist(), pa.float64()),
        "option_type": pa.array(legs["option_type"].astype(str).tolist(), pa.string()),
        "start": pa.array(pd.to_datetime(legs["start"]).dt.date.tolist(), pa.date32()),
        "end": pa.array(pd.to_datetime(legs["end"]).dt.date.tolist(), pa.date32()),
    })
    # the quotes of the vendor picked for each (underlying, trade_date) chain (data_lake.vendors)
    sql = f"""
        SELECT l.event_id, l.leg, q.trade_date, q.bid, q.ask, q.multiplier
        FROM __legs l JOIN option_quotes q
          ON q.underlying = l.underlying AND q.root = l.root AND q.expiration = l.expiration
         AND q.strike = l.strike AND q.option_type = l.option_type
         AND q.trade_date BETWEEN l.start AND l."end"
        SEMI JOIN {picked_vendors_sql(lake=lake)} p
          ON p.underlying = q.underlying AND p.trade_date = q.trade_date AND p.vendor = q.vendor
        ORDER BY l.event_id, l.leg, q.trade_date
    """
    return lake.df(sql, tables={"__legs": want})


def bars_of(lake: Lake, symbols) -> pd.DataFrame:
    """Bars (trade_date, symbol, open, close) of the given symbols."""
    symbols = sorted({str(s) for s in symbols})
    if not symbols:
        return pd.DataFrame(columns=["symbol", "trade_date", "open", "close"])
    marks = ", ".join("?" for _ in symbols)
    return lake.df(f"SELECT symbol, trade_date, open, close FROM bars WHERE symbol IN ({marks}) "
                   "ORDER BY symbol, trade_date", symbols)


def factor_names(lake: Lake) -> set[str]:
    """Names of the factors materialized in the lake."""
    try:
        return set(lake.df("SELECT DISTINCT factor FROM factors")["factor"].astype(str))
    except Exception:  # an empty lake has no factors view yet
        return set()
