"""numpy -> DuckDB without Python objects per row: an Arrow table whose vector column is
FixedSizeList<float32>[d], which DuckDB scans as FLOAT[d] (zero-copy from the numpy buffer)."""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np


def vectors_table(vectors, ids=None, *, id_column: str = "id", vector_column: str = "emb",
                  columns: Optional[Mapping[str, object]] = None):
    """Wraps a (n, d) array as a ``pyarrow.Table`` with an id column and a ``FLOAT[d]`` vector column.

    Parameters
    ----------
    vectors : array_like, shape (n, d)
        Converted to contiguous float32 (no copy when it already is).
    ids : array_like of int, optional
        Defaults to ``0..n-1``.
    id_column, vector_column : str
        Column names.
    columns : mapping, optional
        Extra columns (name -> 1-d array of length n).

    Examples
    --------
    >>> tbl = knnsql.vectors_table(X)                          # doctest: +SKIP
    >>> db.execute("CREATE TABLE docs AS SELECT * FROM tbl")   # DuckDB finds `tbl` by name
    """
    import pyarrow as pa

    X = np.ascontiguousarray(np.asarray(vectors), dtype=np.float32)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"vectors must be a 2-d array (n, d) with d >= 1, got shape {X.shape}")
    n, d = X.shape
    ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids)
    if ids.shape != (n,) or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be {n} integers, got shape {ids.shape} and dtype {ids.dtype}")
    vec = pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1), type=pa.float32()), d)
    data = {id_column: pa.array(ids.astype(np.int64, copy=False)), vector_column: vec}
    for name, values in (columns or {}).items():
        arr = pa.array(values)
        if len(arr) != n:
            raise ValueError(f"column {name!r} has {len(arr)} values, expected {n}")
        data[name] = arr
    return pa.table(data)
