"""The lake write's Arrow sort and neighbour key check (issue 16, ingest speed) against the
DuckDB ORDER BY and GROUP BY they replace: same order, same verdicts, same Parquet bytes."""

from __future__ import annotations

import hashlib
import io

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from eventvol.data_lake import Lake
from eventvol.data_lake.schemas import spec
from eventvol.data_lake.store import ROW_GROUP_ROWS
from eventvol.data_lake.validate import conform, in_lake_order, keys_unique, keys_unique_sorted, lake_order

QUOTES = spec("option_quotes")


def _quotes(n: int, seed: int) -> pa.Table:
    """Option rows in shuffled order with awkward strikes (NaN, inf, tiny, huge), unique keys."""
    rng = np.random.default_rng(seed)
    strikes = np.array([np.nan, np.inf, 1e-300, 0.5, 1.0, 5.0, 4999.5, 5000.0, 1e300])
    i = np.arange(n)
    df = pd.DataFrame({
        "trade_date": (pd.Timestamp("2024-03-01") + pd.to_timedelta(i % 3, "D")).date,
        "quote_ts": pd.Timestamp("2024-03-01 21:00", tz="UTC"),
        "available_ts": pd.Timestamp("2024-03-01 22:00", tz="UTC"),
        "underlying": np.array(["SPX", "NDX", "spx", "Ärger", "SPX "])[(i // 3) % 5],
        "root": np.array(["SPX", "SPXW"])[(i // 15) % 2],
        "expiration": (pd.Timestamp("2024-04-01") + pd.to_timedelta((i // 30) % 4, "D")).date,
        "settlement": "PM",
        "strike": strikes[(i // 120) % len(strikes)],
        "option_type": np.array(["C", "P"])[(i // 1080) % 2],
        "underlying_price": 5000.0, "multiplier": 100, "vendor": "cboe",
        "bid": rng.uniform(0, 1, n),
    })
    assert n <= 2160  # every row a distinct key
    perm = rng.permutation(n)
    tbl = conform(QUOTES, df.iloc[perm].reset_index(drop=True))
    # a real NaN strike (pandas would hand Arrow a NULL)
    return tbl.set_column(QUOTES.schema.names.index("strike"), "strike", pa.array(df["strike"].to_numpy()[perm]))


def _duckdb_order(s, tbl: pa.Table) -> pa.Table:
    order = ", ".join(f'"{c}"' for c in s.order)
    return duckdb.sql(f"SELECT * FROM tbl ORDER BY {order}").to_arrow_table().cast(s.schema)


def _no_nan(tbl: pa.Table) -> pa.Table:
    i = tbl.column_names.index("strike")
    strike = tbl.column(i)
    assert pc.sum(pc.is_nan(strike)).as_py() > 0
    return tbl.set_column(i, "strike", pc.if_else(pc.is_nan(strike), -1.0, strike))


def _parquet_sha(tbl: pa.Table) -> str:
    buf = io.BytesIO()
    pq.write_table(tbl, buf, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_page_checksum=True)
    return hashlib.sha256(buf.getvalue()).hexdigest()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arrow_sort_is_duckdbs_order_by(seed):
    tbl = _quotes(2160, seed)
    ours = tbl.take(lake_order(QUOTES, tbl))
    ref = _duckdb_order(QUOTES, tbl)
    assert _no_nan(ours).equals(_no_nan(ref))  # Arrow's equals holds NaN unequal to NaN
    # NaN after +inf, the tiny strike first within its chain
    strikes = ours.column("strike").to_numpy()[:18:2]  # C and P of each strike
    assert strikes[0] == 1e-300 and np.isinf(strikes[7]) and np.isnan(strikes[8])
    # the same Parquet bytes however the rows were chunked
    assert _parquet_sha(ours) == _parquet_sha(ref) == _parquet_sha(pa.concat_tables(
        [ours.slice(k, 77) for k in range(0, ours.num_rows, 77)]))


def _duckdb_has_dup(s, tbl: pa.Table) -> bool:
    keys = ", ".join(f'"{k}"' for k in s.key)
    return duckdb.sql(f"SELECT count(*) FROM (SELECT {keys} FROM tbl GROUP BY ALL HAVING count(*) > 1)").fetchall()[0][0] > 0


@pytest.mark.parametrize("row,other", [(0, 1), (5, 2000), (2159, 17)])
def test_neighbour_key_check_agrees_with_group_by(row, other):
    tbl = _quotes(2160, 3)
    assert keys_unique(QUOTES, tbl) and not _duckdb_has_dup(QUOTES, tbl)
    # copy one row's key onto another (its bid differs: a conflicting duplicate)
    keys = {k: tbl.column(k)[row] for k in QUOTES.key}
    cols = {c: (pa.array([keys[c].as_py() if j == other else v for j, v in enumerate(tbl.column(c).to_pylist())],
                         tbl.schema.field(c).type) if c in keys else tbl.column(c)) for c in tbl.column_names}
    dup = pa.table(cols, schema=tbl.schema)
    assert _duckdb_has_dup(QUOTES, dup)
    assert not keys_unique(QUOTES, dup)
    assert not keys_unique_sorted(QUOTES, dup.take(lake_order(QUOTES, dup)))


def test_null_and_nan_keys_group_like_group_by():
    s = spec("bars")
    tbl = conform(s, pd.DataFrame({"trade_date": pd.to_datetime(["2024-01-02"] * 3).date,
                                   "symbol": ["A", "B", "C"], "close": [1.0, 2.0, 3.0]}))
    assert keys_unique(s, tbl)
    two_nan = pa.table({"k": pa.array([np.nan, 1.0, np.nan]), "v": [1, 2, 3]})
    t = type(s)(name="t", schema=two_nan.schema, key=("k",))
    assert not keys_unique(t, two_nan)  # GROUP BY puts NaN with NaN
    two_null = pa.table({"k": pa.array([None, 1.0, None], pa.float64()), "v": [1, 2, 3]})
    assert not keys_unique(t, two_null)  # and NULL with NULL
    assert keys_unique(t, pa.table({"k": pa.array([None, np.nan, 1.0]), "v": [1, 2, 3]}))


def test_order_not_led_by_the_key_never_claims_unique():
    tbl = pa.table({"k": [1, 2, 3], "other": [3, 2, 1]})
    t = type(QUOTES)(name="t", schema=tbl.schema, key=("k",), sort_by=("other",))
    assert not keys_unique(t, tbl)  # "maybe": the caller runs the GROUP BY


def test_rows_already_in_order_are_not_copied():
    tbl = _quotes(2160, 5)
    ordered = in_lake_order(QUOTES, tbl)
    assert ordered is not tbl and _no_nan(ordered).equals(_no_nan(_duckdb_order(QUOTES, tbl)))
    assert in_lake_order(QUOTES, ordered) is ordered


@pytest.mark.parametrize("presorted", [False, True])
def test_lake_files_equal_a_duckdb_sorted_write(tmp_path, presorted):
    """The lake's part (new partition, then an upsert over it) is byte for byte the Parquet of
    the DuckDB-ordered rows it used to write, whether the rows came shuffled or in order (in
    77-row chunks, as the ingest hands them)."""
    lake = Lake.open(tmp_path / "lake", create=True)
    first = _quotes(2160, 4)
    if presorted:
        first = in_lake_order(QUOTES, first)
        first = pa.concat_tables([first.slice(k, 77) for k in range(0, first.num_rows, 77)])
    lake.write("option_quotes", first)
    parts = [p for p in lake.files("option_quotes") if "month=03" in str(p)]
    assert len(parts) == 1 and hashlib.sha256(parts[0].read_bytes()).hexdigest() == _parquet_sha(
        _duckdb_order(QUOTES, first))
    # an upsert: half the rows again with new bids, plus the old rows not in it
    second = first.slice(0, 1080).set_column(first.column_names.index("bid"), "bid",
                                              pa.array(np.linspace(2, 3, 1080)))
    lake.write("option_quotes", second)
    keys = ", ".join(f'"{k}"' for k in QUOTES.key)
    merged = duckdb.sql(f"SELECT * FROM first ANTI JOIN second USING ({keys}) UNION ALL SELECT * FROM second"
                        ).to_arrow_table().cast(QUOTES.schema)
    part = lake.files("option_quotes")[0]
    assert hashlib.sha256(part.read_bytes()).hexdigest() == _parquet_sha(_duckdb_order(QUOTES, merged))
    assert pq.read_table(part).column("bid").to_numpy().max() == 3.0


def test_ingest_hash_check_groups_like_group_by():
    """The ingest proves keys unique by counting distinct DuckDB hashes: that needs values GROUP
    BY puts together to hash equal (-0.0 with 0.0, NaN with NaN, NULL with NULL)."""
    same = duckdb.sql("SELECT hash(-0.0::DOUBLE, 'a') = hash(0.0::DOUBLE, 'a'), "
                      "hash('nan'::DOUBLE, 'a') = hash(-('nan'::DOUBLE), 'a'), "
                      "hash(NULL::DOUBLE, 'a') = hash(NULL::DOUBLE, 'a')").fetchall()[0]
    assert same == (True, True, True)
    assert duckdb.sql("SELECT count(DISTINCT (k, s)) FROM (VALUES (-0.0::DOUBLE, 'a'), (0.0::DOUBLE, 'a')) t(k, s)"
                      ).fetchall()[0][0] == 1


def test_ingest_still_quarantines_conflicting_keys(tmp_path):
    """A conflicting duplicate in a file otherwise unique goes through the exact path."""
    from eventvol.data_lake.ingest import ingest_files, read_quarantine
    header = ("underlying_symbol,quote_date,root,expiration,strike,option_type,open,high,low,close,"
              "trade_volume,bid_size_1545,bid_1545,ask_size_1545,ask_1545,underlying_bid_1545,"
              "underlying_ask_1545,bid_size_eod,bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,"
              "underlying_ask_eod,vwap,open_interest,delivery_code")
    row = "^SPX,2024-03-01,SPXW,2024-03-15,{k},C,1,1,1,1,5,1,{b},1,{a},5099,5101,1,{b},1,{a},5099,5101,1,10,"
    lines = [row.format(k=5000 + 5 * i, b=1.0, a=1.5) for i in range(20)]
    lines.append(row.format(k=5000, b=2.0, a=2.5))  # same key as the first line, other quote
    f = tmp_path / "eod.csv"
    f.write_text("\n".join([header] + lines) + "\n")
    lake = Lake.open(tmp_path / "lake", create=True)
    rep = ingest_files(lake, "cboe-eod", [f])
    assert rep.rows_written == 19 and rep.rows_quarantined == 2
    q = read_quarantine(lake).to_pandas()
    assert sorted(q["line"]) == [2, 22] and set(q["reason"]) == {"conflicting rows share the key"}


def test_joined_read_blocks_keep_line_numbers(tmp_path):
    """20k rows span five of the reader's 1 MiB blocks, which the ingest maps as one batch: a
    short line and a bad volume deep in the file are quarantined at their own lines. (Before,
    the short line, reported by Arrow's read-ahead while an earlier block was numbered, shifted
    every later line number by a block: the volume was blamed on line 19565.)"""
    from eventvol.data_lake.ingest import ingest_files, read_quarantine
    header = ("underlying_symbol,quote_date,root,expiration,strike,option_type,open,high,low,close,"
              "trade_volume,bid_size_1545,bid_1545,ask_size_1545,ask_1545,underlying_bid_1545,"
              "underlying_ask_1545,bid_size_eod,bid_eod,ask_size_eod,ask_eod,underlying_bid_eod,"
              "underlying_ask_eod,vwap,open_interest,delivery_code")
    pad = "x" * 40  # longer lines: more blocks
    row = "^SPX,2024-03-01,SPXW,2024-03-15,{k},{t},1,1,1,1,5,1,1.0,1,1.5,5099,5101,1,1.0,1,1.5,5099,5101,1,10," + pad
    lines = [row.format(k=f"{4000 + (i // 2) * 0.1:.1f}", t="CP"[i % 2]) for i in range(20_000)]  # near spot
    lines[12_000 - 2] = "^SPX,2024-03-01,SPXW"  # file line 12000: too few fields
    lines[15_001 - 2] = lines[15_001 - 2].replace(",1,1,1,1,5,", ",1,1,1,1,five,", 1)  # line 15001: volume
    f = tmp_path / "eod.csv"
    f.write_text("\n".join([header] + lines) + "\n")
    assert f.stat().st_size > 2 * (1 << 20)
    lake = Lake.open(tmp_path / "lake", create=True)
    rep = ingest_files(lake, "cboe-eod", [f])
    q = read_quarantine(lake).to_pandas().sort_values("line")
    assert q["line"].tolist() == [12_000, 15_001] and rep.rows_written == 19_998
    assert q["column"].tolist()[1] == "trade_volume"


def test_prefetched_reader_keeps_order_errors_and_closes():
    from eventvol.data_lake.ingest.core import _prefetched
    closed = []

    def gen(n, fail_at=None):
        try:
            for i in range(n):
                if i == fail_at:
                    raise ValueError(f"bad block {i}")
                yield i
        finally:
            closed.append(n)

    assert list(_prefetched(gen(50))) == list(range(50)) and closed == [50]
    with pytest.raises(ValueError, match="bad block 7"):
        list(_prefetched(gen(20, fail_at=7)))
    assert closed == [50, 20]
    it = _prefetched(gen(1000))
    assert next(it) == 0
    it.close()  # the caller stops early (a refused file): the reader thread stops and closes
    assert closed == [50, 20, 1000]
