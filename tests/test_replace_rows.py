"""`Lake.replace_rows`, the refresh runner's write: per month partition, the rows matching
`delete` go, the new rows come in (winning over an old row with their key), everything else
stays; one transaction; bad input and damaged parts change nothing."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from eventvol.data_lake import CorruptLakeError, Lake
from eventvol.data_lake.validate import ValidationError


def rows(factor: str, days: list[dt.date], entities=("A", "B"), value: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame([{"factor": factor, "trade_date": d, "entity": e, "value": value + i,
                          "run_id": "r"} for i, (d, e) in enumerate((d, e) for d in days for e in entities)])


JAN = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
FEB = [dt.date(2024, 2, 1), dt.date(2024, 2, 2)]


@pytest.fixture
def lake(tmp_path) -> Lake:
    lake = Lake.open(tmp_path / "lake", create=True)
    lake.write("factors", pd.concat([rows("mine", JAN + FEB), rows("other", JAN + FEB, value=10.0)]))
    return lake


def values(lake: Lake) -> pd.DataFrame:
    return lake.read("factors", columns=["factor", "trade_date", "entity", "value"]).sort_values(
        ["factor", "entity", "trade_date"]).reset_index(drop=True)


def mine_on(days) -> pc.Expression:
    return (pc.field("factor") == "mine") & pc.field("trade_date").isin(pa.array(days, pa.date32()))


def test_replaces_the_deleted_rows_and_keeps_the_rest(lake):
    before = values(lake)
    new = rows("mine", [JAN[0]], entities=("A",), value=99.0)  # B lost its row on Jan 2, Jan 3 untouched
    res = lake.replace_rows("factors", new, delete=mine_on([JAN[0]]))
    after = values(lake)
    assert res.partitions_written == ["year=2024/month=01"]
    other = lambda v: v[v.factor == "other"].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(other(after), other(before), check_exact=True)
    got = after[(after.factor == "mine") & (after.trade_date == JAN[0])]
    assert got[["entity", "value"]].values.tolist() == [["A", 99.0]]
    keep = lambda v: v[~((v.factor == "mine") & (v.trade_date == JAN[0]))].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(after), keep(before), check_exact=True)


def test_new_rows_win_over_kept_rows_with_their_key(lake):
    new = rows("other", [FEB[0]], entities=("A",), value=-5.0)  # not in `delete`, same key as a kept row
    lake.replace_rows("factors", new, delete=mine_on(FEB))
    after = values(lake)
    assert after[(after.factor == "other") & (after.trade_date == FEB[0]) & (after.entity == "A")].value.tolist() == [-5.0]
    assert after[(after.factor == "mine") & after.trade_date.isin(FEB)].empty
    assert len(after) == 16 - 4


def test_months_without_new_rows_are_rewritten_and_an_emptied_partition_loses_its_files(tmp_path):
    lake = Lake.open(tmp_path / "lake", create=True)
    lake.write("factors", pd.concat([rows("mine", JAN + FEB), rows("other", JAN)]))
    feb_dir = lake.table_dir("factors") / "year=2024" / "month=02"
    assert list(feb_dir.glob("part-*.parquet"))
    res = lake.replace_rows("factors", rows("mine", JAN, value=7.0), delete=mine_on(JAN + FEB), months=[(2024, 2)])
    assert sorted(res.partitions_written) == ["year=2024/month=01", "year=2024/month=02"]
    assert not list(feb_dir.glob("part-*.parquet"))
    after = values(lake)
    assert set(after.trade_date) == set(JAN) and len(after) == 8
    assert Lake.open(lake.root).query("SELECT count(*) AS n FROM factors").column("n")[0].as_py() == 8


def test_bad_rows_are_refused_naming_row_and_column_and_change_nothing(lake):
    before = values(lake)
    files = lake.files("factors")
    bad = rows("mine", JAN)
    bad.loc[2, "entity"] = None
    with pytest.raises(ValidationError, match=r"row 2 has no value in required column 'entity'"):
        lake.replace_rows("factors", bad, delete=mine_on(JAN))
    assert lake.files("factors") == files and not any((lake.root / "staging").iterdir())
    pd.testing.assert_frame_equal(values(lake), before, check_exact=True)


def test_a_damaged_part_is_named_and_nothing_is_written(lake):
    before_files = lake.files("factors")
    jan = next(f for f in before_files if "month=01" in str(f))
    data = bytearray(jan.read_bytes())
    data[len(data) // 2] ^= 0xFF
    jan.write_bytes(bytes(data))
    with pytest.raises(CorruptLakeError, match=r"factors/year=2024/month=01/part-.*is damaged"):
        lake.replace_rows("factors", rows("mine", JAN + FEB, value=3.0), delete=mine_on(JAN + FEB))
    assert lake.files("factors") == before_files and not any((lake.root / "staging").iterdir())
    feb = pd.read_parquet(next(f for f in before_files if "month=02" in str(f)))
    assert sorted(feb.value[feb.factor == "mine"]) == [5.0, 6.0, 7.0, 8.0]  # the old values, untouched


def test_same_content_leaves_the_file_in_place(lake):
    files = lake.files("factors")
    old = lake.read("factors")
    jan = old[old.trade_date.isin(JAN) & (old.factor == "mine")]
    res = lake.replace_rows("factors", jan, delete=mine_on(JAN))
    assert res.partitions_unchanged == ["year=2024/month=01"] and lake.files("factors") == files


def test_parts_are_the_bytes_a_plain_write_gives(tmp_path):
    data = pd.concat([rows("mine", JAN + FEB, entities=("B", "A", "C")), rows("other", FEB, value=10.0)])
    data = data.sample(frac=1.0, random_state=3)  # any input order
    plain = Lake.open(tmp_path / "plain", create=True)
    plain.write("factors", data)
    replaced = Lake.open(tmp_path / "replaced", create=True)
    replaced.replace_rows("factors", data, delete=pc.scalar(False))
    names = lambda lake: [f.relative_to(lake.root).as_posix() for f in lake.files("factors")]  # noqa: E731
    assert names(plain) == names(replaced) and len(names(plain)) == 2  # content-addressed: same bytes


def test_a_failed_write_on_a_staging_thread_leaves_the_lake_as_it_was(lake, monkeypatch):
    import errno

    from eventvol.data_lake import store

    files, before = lake.files("factors"), values(lake)
    real = store._write_staged

    def full_disk(path, data):
        if path.name.startswith("1"):  # the second partition; the first may already be staged
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(store, "_write_staged", full_disk)
    with pytest.raises(OSError, match="No space left"):
        lake.replace_rows("factors", rows("mine", JAN + FEB, value=50.0), delete=mine_on(JAN + FEB))
    assert lake.files("factors") == files and not any((lake.root / "staging").iterdir())
    pd.testing.assert_frame_equal(values(lake), before, check_exact=True)
