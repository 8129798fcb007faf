"""Hardening of the lake itself: a path is a path (never a DuckDB glob), journals are confined
to the lake, a corrupt journal is set aside, and every part's integrity is checked (content
hash, page checksums, Parquet structure) with reads of intact partitions unaffected."""

from __future__ import annotations

import hashlib
import json
import os
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from eventvol.data_lake import CorruptLakeError, Lake, LakeWarning
from eventvol.data_lake.store import content_problem, duckdb_path

MONTHS = ("2024-01", "2024-02", "2024-03", "2024-04")


def _bars(symbol: str = "AAA", months=MONTHS, days: int = 15, scale: float = 1.0) -> pd.DataFrame:
    """`days` weekday bars per month for `symbol`, closes 100*scale + k (k = running row number)."""
    dates = [d for m in months for d in pd.bdate_range(f"{m}-01", periods=days)]
    n = len(dates)
    return pd.DataFrame({"trade_date": [d.date() for d in dates], "symbol": symbol,
                         "close": 100.0 * scale + np.arange(n, dtype=float), "volume": np.arange(n) + 1})


def _snapshot(root) -> dict[str, str]:
    """sha256 of every file under the lake except the lock file (whose content is a pid)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "locks" not in p.parts}


def _part(lake: Lake, month: str, table: str = "bars"):
    y, m = month.split("-")
    (path,) = (lake.table_dir(table) / f"year={y}" / f"month={m}").glob("part-*.parquet")
    return path


def _flip(path, n: int = 64) -> None:
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, mid + n):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def months_lake(tmp_path) -> Lake:
    lake = Lake.open(tmp_path / "lake", create=True)
    lake.write("bars", _bars())
    return lake


# ---------------------------------------------------------------- a path is a path
@pytest.mark.parametrize("name", ["a[1]", "a?b", "a*", "x[ab]y", "o'brien [2]"])
def test_lake_under_glob_characters_reads_itself(tmp_path, name):
    """DuckDB expands every file name as a glob: a lake in `a[1]` read `a1`'s files before."""
    decoy_name = {"a[1]": "a1", "a?b": "aXb", "a*": "aZZ", "x[ab]y": "xay", "o'brien [2]": "o'brien 2"}[name]
    decoy = Lake.open(tmp_path / decoy_name, create=True)
    decoy.write("bars", _bars("DECOY", months=("2024-01",), scale=9.0))
    lake = Lake.open(tmp_path / name, create=True)
    lake.write("bars", _bars("REAL", months=("2024-01",)))
    lake.write("bars", _bars("REAL", months=("2024-01",), days=16))  # an upsert reads its own part
    back = Lake.open(tmp_path / name).read("bars")
    assert set(back["symbol"]) == {"REAL"} and len(back) == 16
    assert back["close"].tolist() == [100.0 + k for k in range(16)]
    assert Lake.open(tmp_path / name).verify().empty
    # the catalog's views (for other tools) are escaped globs that find the same rows
    import duckdb

    con = duckdb.connect(str(lake.root / "catalog.duckdb"), read_only=True)
    assert con.execute("SELECT DISTINCT symbol FROM bars").fetchall() == [("REAL",)]
    con.close()


def test_duckdb_path_brackets_only_glob_characters():
    assert duckdb_path("/x/a[1]/b?c*d.parquet") == "/x/a[[]1]/b[?]c[*]d.parquet"
    assert duckdb_path("/plain/path.parquet") == "/plain/path.parquet"


# ---------------------------------------------------------------- journals
def _stage(lake: Lake, name: str, journal) -> None:
    txn = lake.root / "staging" / name
    txn.mkdir(parents=True)
    (txn / "journal.json").write_text(journal if isinstance(journal, str) else json.dumps(journal))


@pytest.mark.parametrize("journal", [
    {"moves": [], "deletes": ["../victim.txt"]},
    {"moves": [], "deletes": ["tables/../../victim.txt"]},
    {"moves": [["../victim.txt", "tables/bars/year=2024/month=01/part-x.parquet"]], "deletes": []},
    {"moves": [["staging/txn-evil/0.parquet", "../victim.txt"]], "deletes": []},
    {"moves": [], "deletes": ["VICTIM_ABS"]},
    {"moves": [], "deletes": ["tables/bars/year=2024/month=01"]},  # a folder, not a part
])
def test_crafted_journal_touches_nothing_outside_and_is_set_aside(months_lake, tmp_path, journal):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    text = json.dumps(journal).replace("VICTIM_ABS", str(victim))
    _stage(months_lake, "txn-evil", text)
    before = {k: v for k, v in _snapshot(months_lake.root).items() if k.startswith("tables/")}
    with pytest.warns(LakeWarning, match=r"staging journal staging/txn-evil .* is unusable .* set aside in quarantine/journals/txn-evil"):
        months_lake.write("bars", _bars("BBB", months=("2024-05",)))
    assert victim.read_text() == "precious"
    after = _snapshot(months_lake.root)
    # every committed part is still there, byte for byte, and the new write landed
    assert {k: v for k, v in after.items() if k in before} == before
    assert len(months_lake.read("bars")) == 5 * 15
    assert (months_lake.root / "quarantine/journals/txn-evil/journal.json").read_text() == text
    assert not (months_lake.root / "staging" / "txn-evil").exists()


def test_journal_through_a_symlinked_partition_deletes_nothing_outside(months_lake, tmp_path):
    outside = tmp_path / "outside" / "month=01"
    outside.mkdir(parents=True)
    victim = outside / "part-victim.parquet"
    victim.write_bytes(b"PAR1 not yours PAR1")
    (months_lake.table_dir("bars") / "year=2030").symlink_to(tmp_path / "outside")
    _stage(months_lake, "txn-link", {"moves": [], "deletes": ["tables/bars/year=2030/month=01/part-victim.parquet"]})
    with pytest.warns(LakeWarning, match="leaves tables/"):
        months_lake.write("bars", _bars("BBB", months=("2024-05",)))
    assert victim.read_bytes() == b"PAR1 not yours PAR1"


@pytest.mark.parametrize("content", ["{not json", "", "[1, 2]", '{"moves": "x", "deletes": []}', "\xff\xfe"])
def test_corrupt_journal_is_set_aside_and_writes_continue(months_lake, content):
    before = _snapshot(months_lake.root)
    _stage(months_lake, "txn-corrupt", content)
    for attempt in range(2):  # every later write works, not just the first
        with warnings.catch_warnings(record=True) as got:
            warnings.simplefilter("always")
            months_lake.write("bars", _bars(f"N{attempt}", months=("2024-06",)))
        lake_warnings = [str(w.message) for w in got if issubclass(w.category, LakeWarning)]
        if attempt == 0:  # reported once, with the journal named, then gone
            assert len(lake_warnings) == 1 and "staging/txn-corrupt" in lake_warnings[0]
            assert "\n" not in lake_warnings[0]
        else:
            assert lake_warnings == []
    assert (months_lake.root / "quarantine/journals/txn-corrupt/journal.json").exists()
    after = _snapshot(months_lake.root)
    assert {k: after[k] for k in before if k.startswith("tables/bars/year=2024/month=0") and "month=06" not in k} == \
        {k: v for k, v in before.items() if k.startswith("tables/bars/year=2024/month=0")}
    assert len(months_lake.read("bars")) == 4 * 15 + 2 * 15


def test_genuine_interrupted_commit_still_rolls_forward(months_lake, monkeypatch):
    """Confinement must not refuse the lake's own journals: crash after the commit point."""
    from eventvol.data_lake import store

    monkeypatch.setattr(store.Lake, "_apply", lambda self, txn: None)  # crash right after commit
    months_lake.write("bars", _bars("CCC", months=("2024-02",)))
    monkeypatch.undo()
    assert len(list((months_lake.root / "staging").iterdir())) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: the journal is the lake's own and valid
        lake = Lake.open(months_lake.root)
    assert not list((lake.root / "staging").iterdir())
    assert (lake.read("bars")["symbol"] == "CCC").sum() == 15


# ---------------------------------------------------------------- integrity
def test_parts_carry_page_checksums(months_lake):
    meta = pq.ParquetFile(_part(months_lake, "2024-01")).metadata
    assert meta.num_row_groups >= 1
    # Arrow verifies them: a flipped byte in a page's data is an error, not a wrong number
    path = _part(months_lake, "2024-02")
    _flip(path, 8)
    with pytest.raises(OSError, match="CRC|checksum"):
        pq.read_table(path, page_checksum_verification=True)


def test_verify_finds_a_flipped_byte_and_a_truncated_part_and_names_both(months_lake):
    assert months_lake.verify().empty
    flipped, truncated = _part(months_lake, "2024-02"), _part(months_lake, "2024-03")
    _flip(flipped)
    _truncate(truncated)
    report = months_lake.verify()
    assert report["file"].tolist() == [str(flipped.relative_to(months_lake.root)),
                                       str(truncated.relative_to(months_lake.root))]
    assert report["partition"].tolist() == ["2024-02", "2024-03"]
    assert "content hash" in report["problem"].iloc[0]
    assert "truncated" in report["problem"].iloc[1]


def test_single_flipped_byte_is_found(months_lake):
    path = _part(months_lake, "2024-04")
    _flip(path, 1)
    assert content_problem(path).startswith("its content hash is")
    assert months_lake.verify()["partition"].tolist() == ["2024-04"]


@pytest.mark.parametrize("damage", [_flip, _truncate, lambda p: p.write_bytes(b"")])
def test_reads_of_intact_months_answer_and_damaged_month_is_one_sentence(months_lake, damage):
    good = months_lake.read("bars", where="trade_date BETWEEN ? AND ?", params=["2024-01-01", "2024-01-31"])
    damaged = _part(months_lake, "2024-03")
    damage(damaged)
    lake = Lake.open(months_lake.root)  # a fresh process's view
    for read in (lambda: lake.read("bars", where="trade_date BETWEEN ? AND ?", params=["2024-01-01", "2024-01-31"]),
                 lambda: lake.read("bars", where="trade_date = ?", params=[pd.Timestamp("2024-01-03").date()])):
        assert len(read()) in (len(good), 1)
    pd.testing.assert_frame_equal(
        lake.read("bars", where="trade_date BETWEEN ? AND ?", params=["2024-01-01", "2024-01-31"]), good)
    # the Arrow hot path too
    assert sum(t.num_rows for t in lake.scan_partitions("bars", columns=["close"], start="2024-04-01")) == 15
    rel = str(damaged.relative_to(lake.root))
    for read in (lambda: lake.read("bars"),
                 lambda: lake.read("bars", where="trade_date >= ?", params=["2024-03-10"]),
                 lambda: lake.df("SELECT count(*) FROM bars"),
                 lambda: list(lake.scan_partitions("bars", columns=["close"], start="2024-03-01"))):
        with pytest.raises(CorruptLakeError) as info:
            read()
        message = str(info.value)
        assert rel in message and "\n" not in message
        assert "re-ingest bars for 2024-03" in message and "lake verify --set-aside" in message


def test_upsert_into_a_damaged_partition_is_refused_and_changes_nothing(months_lake):
    _flip(_part(months_lake, "2024-02"))
    before = _snapshot(months_lake.root)
    with pytest.raises(CorruptLakeError, match="year=2024/month=02/part-"):
        months_lake.write("bars", _bars("AAA", months=("2024-02",), days=3, scale=2.0))
    assert _snapshot(months_lake.root) == before


def test_recovery_set_aside_then_reingest_restores_the_same_rows(months_lake):
    original = months_lake.read("bars")
    flipped, truncated = _part(months_lake, "2024-02"), _part(months_lake, "2024-03")
    flipped_bytes = flipped.read_bytes()
    _flip(flipped)
    damaged_bytes = flipped.read_bytes()
    _truncate(truncated)
    moved = months_lake.set_aside_damaged()
    assert [p.read_bytes() for p in moved][0] == damaged_bytes  # kept for inspection, not deleted
    assert all("damaged" in p.relative_to(months_lake.root).parts[0] for p in moved)
    assert months_lake.verify().empty
    # the lake now answers for what it holds: January and April
    assert sorted({d.month for d in months_lake.read("bars")["trade_date"]}) == [1, 4]
    # re-ingest the two months from the source: every row is back, bit for bit
    months_lake.write("bars", _bars(months=("2024-02", "2024-03")).assign(
        close=lambda d: 100.0 + 15 + np.arange(len(d), dtype=float), volume=lambda d: 16 + np.arange(len(d))))
    pd.testing.assert_frame_equal(months_lake.read("bars"), original)
    assert flipped.read_bytes() == flipped_bytes  # content-addressed: the very same file again
    assert months_lake.verify().empty


def test_unreadable_footer_of_an_unrelated_table_does_not_break_others(months_lake):
    months_lake.write("rates", pd.DataFrame({"trade_date": [pd.Timestamp("2024-01-02").date()],
                                             "tenor_days": [30], "rate": [0.05]}))
    (rates_part,) = months_lake.files("rates")
    rates_part.write_bytes(b"PAR1" + b"\0" * 40 + b"PAR1")
    lake = Lake.open(months_lake.root)
    assert len(lake.read("bars")) == 60
    with pytest.raises(CorruptLakeError, match="rates"):
        lake.read("rates")


def test_damage_after_a_verified_read_is_found_on_the_next_read(months_lake):
    assert len(months_lake.read("bars")) == 60  # verified and memoized
    path = _part(months_lake, "2024-01")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1))
    with pytest.raises(CorruptLakeError, match="content hash"):
        months_lake.read("bars")


def test_a_part_symlinked_to_a_file_outside_is_damaged_and_set_aside_as_a_link(months_lake, tmp_path):
    """An attacker swaps a part for a link to someone else's file: reads refuse it, verify
    names it, set-aside moves the link and never touches (or deletes) the target."""
    part = _part(months_lake, "2024-02")
    outside = tmp_path / "secret.parquet"
    pq.write_table(pq.read_table(part), outside)  # valid Parquet, but not the bytes the name records
    part.unlink()
    part.symlink_to(outside)
    secret = outside.read_bytes()
    lake = Lake.open(months_lake.root)
    with pytest.raises(CorruptLakeError, match="month=02"):
        lake.read("bars", where="trade_date >= ?", params=["2024-02-01"])
    assert lake.verify()["partition"].tolist() == ["2024-02"]
    (moved,) = lake.set_aside_damaged()
    assert moved.is_symlink() and outside.read_bytes() == secret
    assert lake.verify().empty and len(lake.read("bars")) == 45


def test_a_failed_read_never_writes_to_the_lake(months_lake):
    _truncate(_part(months_lake, "2024-01"))
    before = _snapshot(months_lake.root)
    lake = Lake.open(months_lake.root)
    for _ in range(2):
        with pytest.raises(CorruptLakeError):
            lake.read("bars")
    assert lake.verify()["partition"].tolist() == ["2024-01"]
    assert _snapshot(months_lake.root) == before


def test_damage_is_named_in_a_lake_whose_path_needs_quoting(tmp_path):
    lake = Lake.open(tmp_path / "it's [1]", create=True)
    lake.write("bars", _bars())
    _truncate(_part(lake, "2024-02"))
    lake = Lake.open(lake.root)
    assert len(lake.read("bars", where="trade_date < ?", params=["2024-02-01"])) == 15
    with pytest.raises(CorruptLakeError, match=r"year=2024/month=02/part-\w+\.parquet in .*it's \[1\] is damaged"):
        lake.read("bars")


def test_a_corrupt_integrity_record_only_costs_a_rehash(months_lake):
    expected = months_lake.read("bars")
    for content in ("{oops", '{"parts": {"tables/bars/year=2024/month=01/x": [1, 2]}}', "[]"):
        (months_lake.root / "integrity.json").write_text(content)
        lake = Lake.open(months_lake.root)
        pd.testing.assert_frame_equal(lake.read("bars"), expected)
    # a record whose size or mtime no longer match the file does not vouch for it
    path = _part(months_lake, "2024-03")
    _flip(path, 4)
    with pytest.raises(CorruptLakeError, match="month=03"):
        Lake.open(months_lake.root).read("bars")


def test_staging_entry_that_is_a_symlink_is_set_aside_without_following_it(months_lake, tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "journal.json").write_text(json.dumps({"moves": [], "deletes": []}))
    (target / "keep.txt").write_text("keep")
    (months_lake.root / "staging" / "txn-link").symlink_to(target)
    with pytest.warns(LakeWarning, match="not a transaction folder"):
        months_lake.write("bars", _bars("DDD", months=("2024-07",)))
    assert (target / "keep.txt").read_text() == "keep" and (target / "journal.json").exists()
    assert (months_lake.root / "quarantine/journals/txn-link").is_symlink()


def test_disk_full_at_the_journal_commit_leaves_the_old_partitions(months_lake, monkeypatch):
    import errno

    from eventvol.data_lake import store

    before = _snapshot(months_lake.root)
    real = store._fsync

    def full(path):
        if str(path).endswith("journal.json.tmp"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path)

    monkeypatch.setattr(store, "_fsync", full)
    with pytest.raises(OSError) as info:
        months_lake.write("bars", _bars("EEE", months=("2024-02",)))
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert not any((months_lake.root / "staging").iterdir())  # the failed write cleaned up
    lake = Lake.open(months_lake.root)
    assert {k: v for k, v in _snapshot(lake.root).items() if k.startswith("tables/")} == \
        {k: v for k, v in before.items() if k.startswith("tables/")}
    assert not any((lake.root / "staging").iterdir())
    assert set(lake.read("bars")["symbol"]) == {"AAA"}


def test_journal_whose_target_folder_is_blocked_by_a_file_is_set_aside(months_lake):
    """A journal moving a part under a path where a file sits (EEXIST/ENOTDIR at mkdir) must
    not make every later write crash."""
    blocker = months_lake.table_dir("bars") / "year=2031"
    blocker.write_text("in the way")
    txn = months_lake.root / "staging" / "txn-blocked"
    txn.mkdir()
    (txn / "0.parquet").write_bytes(_part(months_lake, "2024-01").read_bytes())
    (txn / "journal.json").write_text(json.dumps({
        "moves": [["staging/txn-blocked/0.parquet", "tables/bars/year=2031/month=01/part-aaaa.parquet"]],
        "deletes": []}))
    for symbol in ("FFF", "GGG"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LakeWarning)
            months_lake.write("bars", _bars(symbol, months=("2024-08",)))
    assert (months_lake.root / "quarantine/journals/txn-blocked/journal.json").exists()
    assert blocker.read_text() == "in the way"
    assert {"AAA", "FFF", "GGG"} <= set(Lake.open(months_lake.root).read("bars")["symbol"])


def test_arrow_reads_check_the_content_hash_of_parts_without_page_checksums(months_lake):
    """A part written before page checksums (by an older eventvol) is still checked by its
    name: Arrow's hot path (`scan_partitions`) refuses it once a byte changed."""
    from eventvol.data_lake.store import file_hash

    part = _part(months_lake, "2024-03")
    old_style = part.with_name("old.parquet")
    pq.write_table(pq.read_table(part), old_style, compression="zstd")  # no page CRCs
    part.unlink()
    named = old_style.rename(old_style.with_name(f"part-{file_hash(old_style)}.parquet"))
    lake = Lake.open(months_lake.root)
    assert sum(t.num_rows for t in lake.scan_partitions("bars", columns=["close"], start="2024-03-01",
                                                        end="2024-03-31")) == 15
    _flip(named, 16)
    lake = Lake.open(months_lake.root)
    with pytest.raises(CorruptLakeError, match="content hash"):
        list(lake.scan_partitions("bars", columns=["close"], start="2024-03-01", end="2024-03-31"))
    assert sum(t.num_rows for t in lake.scan_partitions("bars", columns=["close"], end="2024-02-29")) == 30
