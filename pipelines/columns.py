"""Arrow columns to numpy without materializing strings: shared by the loaders and the pure
factor code that accepts Arrow tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def dictionary_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """(code per row, dictionary) of a dictionary-encoded column whose chunks may each carry
    their own dictionary (Parquet row groups do): the chunks are unified first."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    col = col.unify_dictionaries()
    if col.num_chunks == 0:
        return np.zeros(0, np.int32), pa.array([], col.type.value_type)
    codes = pa.chunked_array([c.indices for c in col.chunks], col.type.index_type).to_numpy()
    return codes, col.chunk(0).dictionary


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
