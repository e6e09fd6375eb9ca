"""Turning user data (pandas, Polars, Arrow, dict of numpy arrays, list of dicts) into one validated Arrow
table whose vector column is FixedSizeList<float32>[d], which DuckDB scans as FLOAT[d].

Vectors never pass through Python objects row by row when they arrive as a 2-d numpy array, an
Arrow fixed-size list or a pandas column of equal-length arrays (stacked by numpy in C). ``batches``
splits a large validated table into the batches an insert writes, with progress on a terminal.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from . import _progress

#: add() inputs over this many rows go in about 20 batches (_progress.parts), with progress on a terminal.
ADD_CHUNK = 10_000


class DataError(ValueError):
    """Rows that cannot go into a vector table (wrong dimension, NaN/Inf, duplicate or missing ids)."""


def _as_columns(data: Any) -> dict:
    """Column name -> values (numpy array, Arrow array or list), whatever the input container."""
    import pyarrow as pa

    if type(data).__module__.startswith("polars") and hasattr(data, "to_arrow"):  # a Polars DataFrame
        data = data.to_arrow()
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return {name: data.column(name).combine_chunks() for name in data.column_names}
    if hasattr(data, "to_dict") and hasattr(data, "columns") and hasattr(data, "iloc"):   # pandas
        return {str(name): data[name].to_numpy() for name in data.columns}
    if isinstance(data, Mapping):
        return {str(k): v for k, v in data.items()}
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if not data:
            return {}
        if not all(isinstance(row, Mapping) for row in data):
            raise DataError("a list given to add() must hold dicts, one per row")
        names = list(dict.fromkeys(k for row in data for k in row))
        return {name: [row.get(name) for row in data] for name in names}
    raise DataError(f"add() takes a pandas or Polars DataFrame, an Arrow table, a dict of arrays or a list of "
                    f"dicts, not {type(data).__name__}")


def vector_matrix(values: Any, dim: int, column: str) -> np.ndarray:
    """(n, dim) float32 C-contiguous matrix from a 2-d array, an Arrow list column or a sequence of
    equal-length vectors; checks the dimension and finiteness."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, (pa.FixedSizeListArray, pa.ListArray, pa.LargeListArray)):
        if values.null_count:
            raise DataError(f"column {column!r} holds {values.null_count} NULL vectors; drop those rows "
                            "or give them a vector")
        flat = values.flatten().to_numpy(zero_copy_only=False)
        n = len(values)
        if flat.size != n * dim:
            lengths = np.diff(values.offsets.to_numpy()) if not isinstance(values, pa.FixedSizeListArray) \
                else np.full(n, values.type.list_size)
            bad = int(np.nonzero(lengths != dim)[0][0]) if np.any(lengths != dim) else 0
            raise DataError(f"column {column!r}: row {bad} has {int(lengths[bad])} values, the table's "
                            f"vectors have {dim}")
        X = flat.reshape(n, dim)
    else:
        if isinstance(values, (list, tuple)):
            arr = np.empty(len(values), dtype=object)
            arr[:] = [v if v is None else np.asarray(v) for v in values]
            if all(v is not None and v.ndim == 1 for v in arr) and len({v.shape for v in arr}) <= 1:
                arr = np.stack(arr) if len(arr) else np.empty((0, dim))
        else:
            arr = values if isinstance(values, np.ndarray) else np.asarray(values)
        if arr.dtype == object:
            if any(v is None for v in arr):
                raise DataError(f"column {column!r} holds NULL vectors; drop those rows or give them a vector")
            lengths = {len(v) for v in arr}
            if len(lengths) > 1 or (lengths and dim not in lengths):
                bad = next(i for i, v in enumerate(arr) if len(v) != dim)
                raise DataError(f"column {column!r}: row {bad} has {len(arr[bad])} values, the table's "
                                f"vectors have {dim}")
            arr = np.stack(arr) if len(arr) else np.empty((0, dim))
        if arr.ndim == 1 and arr.size == dim:
            arr = arr.reshape(1, dim)
        if arr.ndim != 2 or arr.shape[1] != dim:
            raise DataError(f"column {column!r} must be vectors of dimension {dim}, got shape {arr.shape}")
        X = arr
    if X.dtype.kind not in "fiu":
        raise DataError(f"column {column!r} must hold numbers, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad = int(np.nonzero(~finite)[0][0])
        raise DataError(f"column {column!r}: row {bad} contains NaN or Inf; clean or drop it before adding")
    return X


def to_arrow(data: Any, *, id_column: str, vector_column: str, dim: int,
             columns: Mapping[str, str], metric: str):
    """Validated Arrow table with exactly the table's columns present in ``data`` (id and vector
    required). ``columns`` maps the table's other column names to their DuckDB types."""
    import pyarrow as pa

    cols = _as_columns(data)
    if not cols:
        raise DataError("add() got no rows")
    lower = {name.lower(): name for name in cols}
    for required in (id_column, vector_column):
        if required.lower() not in lower:
            raise DataError(f"the rows lack the {required!r} column; give one value per row")
    known = {c.lower() for c in [id_column, vector_column, *columns]}
    unknown = [name for name in cols if name.lower() not in known]
    if unknown:
        raise DataError(f"the rows carry columns the table lacks: {unknown}; the table has "
                        f"{[id_column, vector_column, *columns]}")
    X = vector_matrix(cols[lower[vector_column.lower()]], dim, vector_column)
    n = X.shape[0]
    ids = np.asarray(cols[lower[id_column.lower()]].to_numpy(zero_copy_only=False)
                     if isinstance(cols[lower[id_column.lower()]], pa.Array) else cols[lower[id_column.lower()]])
    if ids.shape != (n,):
        raise DataError(f"{n} vectors but {ids.size} ids; give exactly one id per row")
    if ids.dtype == object and any(v is None for v in ids):
        raise DataError("an id is None; every row needs an integer id")
    if ids.dtype.kind == "f" and not np.all(np.isfinite(ids) & (ids == np.round(ids))):
        raise DataError("ids must be integers")
    try:
        ids = ids.astype(np.int64)
    except (TypeError, ValueError):
        raise DataError(f"ids must be integers, got dtype {ids.dtype}") from None
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"id {int(uniq[counts > 1][0])} appears {int(counts[counts > 1][0])} times in "
                        "these rows; ids must be unique")
    if metric == "cosine":
        zero = ~np.any(X != 0, axis=1)
        if zero.any():
            raise DataError(f"row {int(np.nonzero(zero)[0][0])} is a zero vector, which has no cosine "
                            "distance; drop it or use metric 'l2'")
    out = {id_column: pa.array(ids), vector_column: pa.FixedSizeListArray.from_arrays(
        pa.array(X.reshape(-1), type=pa.float32()), dim)}
    for name in columns:
        if name.lower() in lower:
            values = cols[lower[name.lower()]]
            if isinstance(values, np.ndarray) and values.dtype.kind == "M" and \
                    np.datetime_data(values.dtype)[0] not in ("s", "ms", "us", "ns"):
                values = values.astype("datetime64[us]")
            arr = values if isinstance(values, pa.Array) else pa.array(values, from_pandas=True)
            if len(arr) != n:
                raise DataError(f"column {name!r} has {len(arr)} values for {n} rows")
            out[name] = arr
    return pa.table(out), ids


def batches(table, label: str, con=None, threshold: Optional[int] = None) -> Iterator:
    """The rows of an Arrow ``table`` in the batches an insert writes them in: the whole table up to
    ``threshold`` rows (default :data:`ADD_CHUNK`), else about 20 zero-copy slices. A progress line over
    the rows advances after each batch is written (on a terminal only), and with ``con`` DuckDB's own bar
    stays quiet meanwhile (``_progress.quiet``). The split depends on the size only, so the rows written
    are the same whether progress shows or not.

    The caller checks the whole input first (``to_arrow``, then its id clashes), then writes each batch::

        for part in batches(batch, f"adding to {name}", con):
            ...insert ``part`` into the table and the index...
    """
    n = table.num_rows
    steps = _progress.parts(n, ADD_CHUNK if threshold is None else threshold)
    step = max(-(-n // steps), 1)
    with (_progress.quiet(con) if con is not None else nullcontext()), \
            _progress.Bar(label, n, on=steps > 1) as bar:
        for start in range(0, n, step):
            part = table.slice(start, step)
            yield part
            bar.advance(part.num_rows)
