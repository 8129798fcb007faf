"""The fast `gex` family path: month partitions read on threads (`loaders.load_gex_grouped`),
the `otm` IV rule applied inside the per-group kernel, blocks of groups on threads, and the
zero-gamma grid's truncated, interleaved walks. Each is checked against the path it replaced:
the same values bit for bit (zero gamma included), the same brackets as the all-fine grid on
adversarial chains, serial equal to parallel, and damaged parts still refused by name."""

from __future__ import annotations

import datetime as dt
import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from eventvol.data_lake import CorruptLakeError, Lake
from eventvol.data_lake.store import file_hash
from eventvol.pipelines import columns, gex
from eventvol.pipelines import nb as kernels
from eventvol.pipelines.loaders import (GroupedChains, group_ids, load_chains, load_gex_chains, load_gex_grouped,
                                        load_rates)
from eventvol.pipelines.positioning import GEX, GEX_OUTPUTS, gex_factor_rows

LO, HI = dt.date(2023, 2, 1), dt.date(2023, 5, 31)


def old_path_rows(tbl: pa.Table, rates: pa.Table | None = None, iv_source: str = "otm") -> pd.DataFrame:
    """The family's rows as the previous implementation computed them: IVs cleaned by
    `ivsource` (`ChainArrays.from_arrow`), groups by `group_ids`, the generic `positioning`."""
    gid, keys = group_ids(tbl)
    res = gex.positioning(gex.ChainArrays.from_arrow(tbl, gid, rates, iv_source), len(keys))
    n, k = len(keys), len(GEX_OUTPUTS)
    return pd.DataFrame({
        "factor": np.repeat(np.array(GEX_OUTPUTS, dtype=object), n),
        "trade_date": np.tile(keys["trade_date"].to_numpy(), k),
        "entity": np.tile(keys["underlying"].to_numpy(), k),
        "value": np.concatenate([np.asarray(res[name], float) for name in GEX_OUTPUTS]),
    })


# ------------------------------------------------------------------ the family's values
def test_grouped_family_equals_the_sorted_table_and_the_old_path(small_lake):
    grouped = load_gex_grouped(small_lake, start=LO, end=HI)
    assert len(grouped.tables) == 4  # one table per month, kept apart
    table = load_gex_chains(small_lake, start=LO, end=HI)  # one table sorted by key
    fast = gex_factor_rows(grouped)
    pd.testing.assert_frame_equal(fast, gex_factor_rows(table), check_exact=True)
    pd.testing.assert_frame_equal(fast, old_path_rows(table), check_exact=True)
    assert (fast["factor"] == "zero_gamma").sum() == sum(len(s) - 1 for s in grouped.starts)
    # and the registered family is that path
    pd.testing.assert_frame_equal(GEX.compute(GEX.load(small_lake, LO, HI), LO, HI), fast, check_exact=True)


@pytest.mark.parametrize("source", ["otm", "vendor"])
def test_kernel_iv_rule_equals_ivsource_on_shuffled_rows(small_lake, source):
    """Rows of each chain shuffled (the kernel's per-group lexsort) and a duplicated contract
    (a key with two puts is no pair): the kernel's IV rule gives ivsource's numbers exactly."""
    tbl = load_chains(small_lake, start="2023-03-01", end="2023-03-10")
    gid, _ = group_ids(tbl)
    rng = np.random.default_rng(5)
    order = np.lexsort((rng.random(len(gid)), gid))  # chains stay contiguous, rows within shuffled
    shuffled = tbl.take(pa.array(order))
    dup = pa.concat_tables([shuffled.slice(0, 7), shuffled.slice(3, 1), shuffled.slice(7)])
    for t in (shuffled, dup):
        pd.testing.assert_frame_equal(gex_factor_rows(t, iv_source=source), old_path_rows(t, iv_source=source),
                                      check_exact=True)


def test_parallel_equals_serial_and_repeats(small_lake, monkeypatch):
    data = GEX.load(small_lake, LO, HI)
    first = GEX.compute(data, LO, HI)
    pd.testing.assert_frame_equal(GEX.compute(data, LO, HI), first, check_exact=True)
    monkeypatch.setattr(columns, "worker_count", lambda: 1)
    monkeypatch.setattr(gex, "worker_count", lambda: 1)
    serial_data = GEX.load(small_lake, LO, HI)
    pd.testing.assert_frame_equal(GEX.compute(serial_data, LO, HI), first, check_exact=True)
    # many small blocks of groups on the threads: still the same numbers
    monkeypatch.setattr(gex, "worker_count", lambda: 16)
    monkeypatch.setattr(columns, "worker_count", lambda: 3)
    pd.testing.assert_frame_equal(GEX.compute(data, LO, HI), first, check_exact=True)


def test_generic_positioning_blocks_equal_one_block(monkeypatch):
    """`positioning` on ChainArrays of many groups: blocks of groups on threads equal one block."""
    rng = np.random.default_rng(2)
    n_groups, per = 40, 60
    n = n_groups * per
    chain = gex.ChainArrays(
        group=np.repeat(np.arange(n_groups), per), spot=np.repeat(rng.uniform(50, 150, n_groups), per),
        strike=np.round(rng.uniform(40, 160, n)), t_years=rng.choice([0.0, 0.01, 0.1, 0.5], n),
        iv=rng.uniform(0.1, 0.6, n), open_interest=rng.integers(0, 500, n).astype(float),
        multiplier=np.full(n, 100.0), is_call=rng.random(n) < 0.5, volume=rng.integers(0, 50, n).astype(float),
        days_to_expiry=rng.choice([0, 3, 30], n))
    many = gex.positioning(chain, n_groups)
    monkeypatch.setattr(gex, "worker_count", lambda: 1)
    one = gex.positioning(chain, n_groups)
    for name in many:
        np.testing.assert_array_equal(many[name], one[name], err_msg=name)


# ------------------------------------------------------------------ the loader
def _month_part(lake: Lake, y: int, m: int):
    (path,) = (lake.table_dir("option_quotes") / f"year={y}" / f"month={m:02d}").glob("part-*.parquet")
    return path


def test_parallel_loader_refuses_a_damaged_part_by_name(lake_copy):
    path = _month_part(lake_copy, 2023, 3)
    st = path.stat()
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    rel = str(path.relative_to(lake_copy.root))
    # content hash (a fresh process's view)
    with pytest.raises(CorruptLakeError) as info:
        load_gex_grouped(Lake.open(lake_copy.root), start=LO, end=HI)
    assert rel in str(info.value) and "content hash" in str(info.value)
    # the file state the integrity record knows (same size and mtime): Arrow's page checksums
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    lake = Lake.open(lake_copy.root)
    assert lake.part_problem(path) is None  # the record vouches for it: only the read can tell
    with pytest.raises(CorruptLakeError) as info:
        GEX.load(lake, LO, HI)
    assert rel in str(info.value) and "\n" not in str(info.value)
    # months without the damaged part still read
    assert load_gex_grouped(lake, start="2023-04-01", end=HI).num_rows > 0


def test_partial_months_and_one_underlying_filter_like_the_sorted_read(small_lake):
    lo, hi = dt.date(2023, 2, 15), dt.date(2023, 4, 10)
    full = load_chains(small_lake, start=lo, end=hi)
    grouped = load_gex_grouped(small_lake, start=lo, end=hi)
    assert grouped.num_rows == full.num_rows
    days = np.concatenate([t.column("trade_date").to_numpy() for t in grouped.tables])
    assert days.min() >= np.datetime64(lo) and days.max() <= np.datetime64(hi)
    und = full.column("underlying")[0].as_py()
    one = load_gex_grouped(small_lake, underlying=und, start=lo, end=hi)
    assert {t.column("underlying").unique().to_pylist()[0] for t in one.tables} == {und}
    assert one.num_rows == pa.compute.sum(pa.compute.equal(full.column("underlying"), und)).as_py()


def test_an_underlying_filter_is_dropped_only_where_statistics_prove_every_row_matches(small_lake, tmp_path):
    from eventvol.pipelines.loaders import partition_reads

    und = load_chains(small_lake, start=LO, end=LO).column("underlying")[0].as_py()
    mixed = partition_reads(small_lake, "option_quotes", equals={"underlying": und}, start=LO, end=LO)[0]
    assert not mixed.all_equal(pq.ParquetFile(mixed.path).metadata)  # several underlyings: filter kept
    one = Lake.open(tmp_path / "one", create=True)
    one.write("option_quotes", small_lake.read_arrow("option_quotes", where="underlying = ? AND trade_date = ?",
                                                     params=[und, LO]))
    alone = partition_reads(one, "option_quotes", equals={"underlying": und}, start=LO, end=LO)[0]
    assert alone.all_equal(pq.ParquetFile(alone.path).metadata)
    assert not partition_reads(one, "option_quotes", equals={"underlying": und + "X"})[0].all_equal(
        pq.ParquetFile(alone.path).metadata)
    plain = lambda t: t.to_pandas().astype({c: str for c in ("underlying", "root", "settlement",  # noqa: E731
                                                                "option_type", "vendor")})
    got = load_gex_chains(one, underlying=und, start=LO, end=LO)
    pd.testing.assert_frame_equal(plain(got), plain(load_gex_chains(small_lake, underlying=und, start=LO, end=LO)))
    assert got.num_rows > 100
    assert load_gex_chains(one, underlying=und + "X", start=LO, end=LO).num_rows == 0


def test_a_chain_in_two_parts_falls_back_to_one_sorted_table(lake_copy):
    """A part in February's folder holding rows of a March chain (a file written by something
    else): the chain is in two parts, so the loader returns one table sorted by key, and the
    family's numbers are those of that table."""
    march = pq.read_table(_month_part(lake_copy, 2023, 3))
    day = march.column("trade_date")[0].as_py()
    und = march.column("underlying")[0].as_py()
    mask = pa.compute.and_(pa.compute.equal(march.column("trade_date"), pa.scalar(day, pa.date32())),
                           pa.compute.equal(march.column("underlying"), und))
    foreign = march.filter(mask).slice(0, 6)
    folder = lake_copy.table_dir("option_quotes") / "year=2023" / "month=02"
    tmp = folder / "foreign.parquet"
    pq.write_table(foreign, tmp, compression="zstd", write_page_checksum=True)
    tmp.rename(folder / f"part-{file_hash(tmp)}.parquet")
    lake = Lake.open(lake_copy.root)
    grouped = load_gex_grouped(lake, start=LO, end=HI)
    assert len(grouped.tables) == 1  # the fallback
    table = grouped.table()
    gid, keys = group_ids(table)
    assert not keys.duplicated().any()
    pd.testing.assert_frame_equal(gex_factor_rows(grouped), old_path_rows(table), check_exact=True)


def test_empty_ranges():
    lake_rows = GroupedChains((), (), pa.schema([]))
    assert gex_factor_rows(lake_rows).empty


def test_empty_range_of_a_lake(small_lake):
    assert load_gex_grouped(small_lake, start="1990-01-01", end="1990-12-31").num_rows == 0
    assert GEX.compute(GEX.load(small_lake, dt.date(1990, 1, 1), dt.date(1990, 12, 31)), None, None).empty
    assert load_rates(small_lake, start=LO, end=HI).num_rows == 0


# ------------------------------------------------------------------ the zero-gamma grid
def test_walks_equal_the_fine_recurrence_and_truncation_stays_in_its_bound():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        n = int(rng.integers(1, 80))
        dlx = rng.uniform(0.005, 0.3)
        isd = 1.0 / rng.uniform(0.02, 2.0)
        c = rng.uniform(-2.0, n * dlx + 2.0)
        a = rng.choice([-1.0, 1.0]) * rng.lognormal(0, 2)
        ref = np.empty(n)
        kernels._fine_into(0.0, dlx, n, np.array([c]), np.array([isd]), np.array([a]), ref)
        full = np.zeros(n)
        kernels._walk(0.0, dlx, n, c, isd, a, full, 0.0)
        cut = np.zeros(n)
        kernels._walk(0.0, dlx, n, c, isd, a, cut, kernels.TRUNCATE * abs(a))
        exact = a * np.exp(-0.5 * ((np.arange(n) * dlx - c) * isd) ** 2)
        # rounding only: far below the 1e-12 sum |a| the error bound allows for it, and relative
        # to each term as small as the one-chain recurrence's (which numpy's exp also shows)
        assert np.all(np.abs(full - ref) <= 1e-13 * abs(a))
        assert np.all(np.abs(full - exact) <= 1e-13 * abs(a) + 5e-12 * np.abs(exact))
        assert np.all(np.abs(cut - exact) <= kernels.TRUNCATE * abs(a) + 1e-13 * abs(a) + 5e-12 * np.abs(exact))


def adversarial_chain(rng, kind: str):
    """Coefficients (c, inv_sd, a) in ln(spot) around ln 100 built to stress the grid:
    `cancel`: call/put Gaussians of nearly equal weight at the same strikes (a profile near 0
    everywhere: the ambiguous-point fallback); `tails`: a cluster of narrow Gaussians and a few
    wide ones of the other sign and 1e-13 .. 1e-11 of the weight, crossing where the profile is
    ~1e-12 of its scale; `mixed`: short- and long-dated contracts of both signs (the exact-sign
    path with a few exact evaluations); `narrow`: only short-dated contracts (the all-fine
    path)."""
    if kind == "cancel":
        n = 60
        sd = rng.uniform(0.02, 0.4, n)
        c = math.log(100.0) + rng.normal(0, 0.1, n)
        w = rng.lognormal(0, 1, n) / sd
        return np.repeat(c, 2), np.repeat(1 / sd, 2), np.ravel(np.c_[w, -w * (1 + rng.normal(0, 1e-3, n))])
    if kind == "tails":
        n = 120
        sd = np.concatenate([rng.uniform(0.003, 0.01, n), rng.uniform(0.05, 0.09, 3)])
        c = math.log(100.0) + np.concatenate([rng.normal(0, 0.03, n), rng.normal(0, 0.05, 3)])
        w = rng.lognormal(0, 1, n) / sd[:n]
        a = np.concatenate([w, -w.sum() * 10.0 ** rng.uniform(-13, -11, 3)])
        return c, 1 / sd, a
    if kind == "mixed":
        n = 150
        narrow = rng.random(n) < 0.15
        sd = np.where(narrow, rng.uniform(0.005, 0.03, n), rng.uniform(0.03, 0.6, n))
        c = math.log(100.0) + rng.normal(0, 0.12, n)
        return c, 1 / sd, rng.choice([-1.0, 1.0], n) * rng.lognormal(0, 1.5, n) / sd
    n = 80
    sd = rng.uniform(0.004, 0.006, n)
    return math.log(100.0) + rng.normal(0, 0.1, n), 1 / sd, rng.choice([-1.0, 1.0], n) * rng.lognormal(0, 1, n)


KINDS = ("cancel", "tails", "mixed", "narrow")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", range(5))
def test_truncated_walks_give_the_fine_grid_brackets_on_adversarial_chains(kind, seed):
    c, inv_sd, a = adversarial_chain(np.random.default_rng(seed), kind)
    fine = kernels.profile_brackets(100.0, c, inv_sd, a, 201, 0.5, 1.5, True)
    fast = kernels.profile_brackets(100.0, c, inv_sd, a, 201, 0.5, 1.5)
    np.testing.assert_array_equal(fast, fine)
    nearest, count = kernels.nearest_profile_root(100.0, c, inv_sd, a, 201, 0.5, 1.5)
    assert count == len(fine)
    roots = np.array([kernels._bracket_root(row.copy(), c, inv_sd, a) for row in fine])
    assert (np.isnan(nearest) and not len(roots)) or nearest == gex.nearest_root(roots, 100.0)


def test_adversarial_chains_reach_every_path_of_the_grid():
    """Guard against vacuous cases: the chains above take the exact-sign path with exact
    evaluations, the ambiguous-point fallback, and the all-fine path."""
    seen = set()
    for kind in KINDS:
        for seed in range(5):
            c, inv_sd, a = adversarial_chain(np.random.default_rng(seed), kind)
            n = kernels.grid_points(inv_sd, 201, 0.5, 1.5)
            lx0 = math.log(50.0)
            dlx = (math.log(150.0) - lx0) / (n - 1)
            f, exact = np.empty(n), np.zeros(n, bool)
            signs_exact = kernels._multilevel_into(lx0, dlx, n, c, inv_sd, a, kernels.interp_weights(), f,
                                                   np.empty(n // 2 + 8), np.empty(len(c), np.int64), exact)
            top = kernels._top_level(n)
            all_fine = all(kernels._level(1.0 / (s * dlx), top) == 0 for s in inv_sd)
            seen.add("all fine" if all_fine else "exact" if signs_exact and exact.any() else
                     "fallback" if not signs_exact else "clear")
            br = kernels.profile_brackets(100.0, c, inv_sd, a, 201, 0.5, 1.5)
            if len(br) and np.min(np.maximum(np.abs(br[:, 2]), np.abs(br[:, 3]))) < 1e-10 * np.abs(a).sum():
                seen.add("deep crossing")  # a bracket whose ends are below 1e-10 of the profile's scale
    assert {"all fine", "exact", "fallback", "deep crossing"} <= seen
