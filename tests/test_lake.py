"""The lake: round trip, keyed upserts, atomic partition replacement, crash recovery, the
single-writer lock, validation refusals and point-in-time reads."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import pandas as pd
import pyarrow.parquet as pq
import pytest

from eventvol.data_lake import Lake, LakeLockedError, SchemaError, ValidationError
from eventvol.data_lake import store as store_mod


def _bars(closes, dates=("2024-01-02", "2024-01-03", "2024-02-01"), symbols=("AAA", "AAA", "BBB")):
    return pd.DataFrame({"trade_date": pd.to_datetime(list(dates)).date, "symbol": list(symbols),
                         "close": list(closes), "volume": [10, 20, 30]})


def _snapshot(lake: Lake) -> dict[str, str]:
    """Every visible file under tables/ with its sha256."""
    return {str(p.relative_to(lake.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((lake.root / "tables").rglob("*.parquet"))}


def test_round_trip_types_and_values(empty_lake):
    df = _bars([1.5, 2.25, 3.125])
    res = empty_lake.write("bars", df)
    assert res.rows == 3 and res.partitions_written == ["year=2024/month=01", "year=2024/month=02"]
    back = empty_lake.read("bars")
    assert back["close"].tolist() == [1.5, 2.25, 3.125]
    assert back["symbol"].tolist() == ["AAA", "AAA", "BBB"]
    assert [str(d) for d in back["trade_date"]] == ["2024-01-02", "2024-01-03", "2024-02-01"]
    assert back["volume"].tolist() == [10, 20, 30]
    # the file is sorted by the table's order and carries the canonical schema
    f = empty_lake.files("bars")[0]
    assert pq.read_schema(f).field("trade_date").type == "date32[day]"


def test_rewrite_is_a_noop_and_upsert_replaces_by_key(empty_lake):
    empty_lake.write("bars", _bars([1.0, 2.0, 3.0]))
    before = _snapshot(empty_lake)
    res = empty_lake.write("bars", _bars([1.0, 2.0, 3.0]))
    assert res.partitions_written == [] and _snapshot(empty_lake) == before
    res = empty_lake.write("bars", _bars([1.0, 2.5, 3.0]).iloc[[1]])
    after = _snapshot(empty_lake)
    assert res.partitions_written == ["year=2024/month=01"]
    # only the January partition changed; February's file is byte-identical
    assert {k: v for k, v in after.items() if "month=02" in k} == {k: v for k, v in before.items() if "month=02" in k}
    assert empty_lake.read("bars")["close"].tolist() == [1.0, 2.5, 3.0]


def test_failure_midway_leaves_previous_partitions_intact(empty_lake, monkeypatch):
    empty_lake.write("bars", _bars([1.0, 2.0, 3.0]))
    before = _snapshot(empty_lake)
    calls = {"n": 0}
    real = pq.write_table

    def failing(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the second partition of the write
            raise OSError("disk full")
        return real(*a, **kw)

    monkeypatch.setattr(store_mod.pq, "write_table", failing)
    with pytest.raises(OSError):
        empty_lake.write("bars", _bars([9.0, 9.0, 9.0]))
    assert _snapshot(empty_lake) == before
    assert list((empty_lake.root / "staging").iterdir()) == []
    assert empty_lake.read("bars")["close"].tolist() == [1.0, 2.0, 3.0]


def test_crash_after_commit_is_rolled_forward_on_next_open(empty_lake, monkeypatch):
    empty_lake.write("bars", _bars([1.0, 2.0, 3.0]))

    def crash(self, txn):
        raise KeyboardInterrupt("killed between journal commit and file moves")

    monkeypatch.setattr(Lake, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        empty_lake.write("bars", _bars([4.0, 5.0, 6.0]))
    monkeypatch.undo()
    assert empty_lake.read("bars")["close"].tolist() == [1.0, 2.0, 3.0]  # not yet visible
    reopened = Lake.open(empty_lake.root)
    assert reopened.read("bars")["close"].tolist() == [4.0, 5.0, 6.0]  # all partitions, not a mix
    assert len(reopened.files("bars")) == 2
    assert list((reopened.root / "staging").iterdir()) == []


def test_uncommitted_staging_is_discarded_on_open(empty_lake):
    empty_lake.write("bars", _bars([1.0, 2.0, 3.0]))
    before = _snapshot(empty_lake)
    junk = empty_lake.root / "staging" / "txn-dead"
    junk.mkdir()
    (junk / "0.parquet").write_bytes(b"half a file")
    reopened = Lake.open(empty_lake.root)
    assert not junk.exists() and _snapshot(reopened) == before


def test_lock_refuses_a_second_writer_in_another_process(empty_lake):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from eventvol.data_lake import Lake
            lake = Lake.open({str(empty_lake.root)!r})
            with lake.writer():
                print("locked", flush=True)
                sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LakeLockedError) as exc:
            empty_lake.write("bars", _bars([1.0, 2.0, 3.0]))
        assert exc.value.exit_code == 75 and str(holder.pid) in str(exc.value)
        assert empty_lake.files("bars") == []
    finally:
        holder.communicate("\n", timeout=30)
    empty_lake.write("bars", _bars([1.0, 2.0, 3.0]))  # free again once the holder is gone
    assert len(empty_lake.files("bars")) == 2


def test_lock_refuses_a_second_writer_in_the_same_process(empty_lake):
    other = Lake.open(empty_lake.root)
    with empty_lake.writer():
        with pytest.raises(LakeLockedError):
            other.write("bars", _bars([1.0, 2.0, 3.0]))


@pytest.mark.parametrize("mutate, error, fragment", [
    (lambda d: d.drop(columns=["close"]), SchemaError, "requires column 'close'"),
    (lambda d: d.assign(colour="red"), SchemaError, "no column 'colour'"),
    (lambda d: d.assign(close=[1.0, -2.0, 3.0]), ValidationError, "row 1 column 'close'"),
    (lambda d: pd.concat([d, d.assign(close=[7.0, 2.0, 3.0]).iloc[[0]]]), ValidationError, "conflicting rows"),
])
def test_bad_writes_are_refused_and_change_nothing(empty_lake, mutate, error, fragment):
    empty_lake.write("bars", _bars([1.0, 2.0, 3.0]))
    before = _snapshot(empty_lake)
    with pytest.raises(error) as exc:
        empty_lake.write("bars", mutate(_bars([1.0, 2.0, 3.0])))
    assert fragment in str(exc.value)
    assert _snapshot(empty_lake) == before


def test_identical_duplicate_rows_collapse(empty_lake):
    d = _bars([1.0, 2.0, 3.0])
    res = empty_lake.write("bars", pd.concat([d, d.iloc[[0]]]))
    assert res.rows == 3 and len(empty_lake.read("bars")) == 3


def test_crossed_option_quote_is_refused(empty_lake, small_lake):
    rows = small_lake.read("option_quotes", where="underlying = 'SYNX' AND trade_date = DATE '2023-03-01'").head(3)
    rows.loc[rows.index[1], ["bid", "ask"]] = [5.0, 4.0]
    with pytest.raises(ValidationError, match="row 1 column 'bid': crossed quote"):
        empty_lake.write("option_quotes", rows)


def test_as_of_reads_hide_later_knowledge(small_lake):
    ev = small_lake.read("events")
    cut = pd.Timestamp("2023-03-01", tz="UTC")
    known = small_lake.read("events", as_of=cut)
    assert len(known) == int((ev["known_at"] <= cut).sum()) > 0
    assert (known["known_at"] <= cut).all()
    quotes = small_lake.read("option_quotes", columns=["trade_date", "available_ts"],
                             where="trade_date BETWEEN DATE '2023-02-27' AND DATE '2023-03-02'",
                             as_of=pd.Timestamp("2023-02-28 21:10", tz="UTC"))
    # the 2023-02-28 snapshot becomes available at 16:15 ET (21:15 UTC): not yet visible
    assert sorted({str(d) for d in quotes["trade_date"]}) == ["2023-02-27"]


def test_catalog_is_rebuilt_and_queryable(small_lake):
    import duckdb

    con = duckdb.connect(str(small_lake.root / "catalog.duckdb"), read_only=True)
    try:
        n = con.sql("SELECT count(*) FROM bars").fetchall()[0][0]
    finally:
        con.close()
    assert n == len(small_lake.read("bars"))


def test_missing_lake_is_a_one_sentence_error(tmp_path):
    from eventvol.data_lake import LakeNotFoundError

    with pytest.raises(LakeNotFoundError, match="no lake at"):
        Lake.open(tmp_path / "nowhere")


def test_a_long_lived_reader_sees_a_table_written_by_another_process(empty_lake):
    reader = Lake.open(empty_lake.root)
    assert reader.read("bars").empty  # its connection now holds bars as an empty view
    writer = Lake.open(empty_lake.root)
    writer.write("bars", _bars([1.0, 2.0, 3.0]))
    assert reader.read("bars")["close"].tolist() == [1.0, 2.0, 3.0]
    writer.write("bars", _bars([1.0, 2.0, 4.0]))  # not a first write: the glob view is live
    assert reader.read("bars")["close"].tolist() == [1.0, 2.0, 4.0]
