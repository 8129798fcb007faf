"""Arrow columns to numpy without materializing strings, and GIL-free work on threads: shared
by the loaders and the pure factor code that accepts Arrow tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

T = TypeVar("T")
R = TypeVar("R")


def dictionary_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(code per row, dictionary) of a dictionary-encoded column whose chunks may each carry
    their own dictionary (Parquet row groups do): the chunks are unified first."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if col.num_chunks > 1 and not all(c.dictionary.equals(col.chunk(0).dictionary) for c in col.chunks[1:]):
        col = col.unify_dictionaries()
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), pa.array([], col.type.value_type)
    codes = pa.chunked_array([c.indices for c in col.chunks], col.type.index_type).to_numpy()
    return codes, col.chunk(0).dictionary


def string_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """`dictionary_codes` of a string column, plain or dictionary-encoded."""
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    return dictionary_codes(col)


def string_flag(col: pa.ChunkedArray, value: str) -> np.ndarray:
    """Boolean per row: the string (or dictionary-encoded string) column equals `value`; nulls
    are False. Dictionary columns compare their few distinct values only."""
    if pa.types.is_dictionary(col.type):
        codes, dictionary = dictionary_codes(col)
        of_code = pc.equal(dictionary, value).fill_null(False).to_numpy(zero_copy_only=False)
        out = of_code[codes] if len(of_code) else np.zeros(len(codes), bool)
        if col.null_count:
            out &= col.is_valid().to_numpy(zero_copy_only=False)
        return out
    return pc.equal(col, value).fill_null(False).to_numpy(zero_copy_only=False)


def worker_count() -> int:
    """Threads for GIL-free work (Arrow's reader, the nogil numba kernels): numba's thread
    count (NUMBA_NUM_THREADS, by default the machine's CPUs), so one setting makes every
    parallel step serial."""
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def run_on_threads(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """[fn(item) for item in items], on up to `worker_count()` threads when there are several
    items (useful only where fn releases the GIL for most of its time); results in item
    order, so the same whatever the thread count; the first exception is raised."""
    workers = min(worker_count(), len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))
