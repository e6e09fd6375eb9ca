"""Searching a database's indexes without a SQL statement.

DuckDB loads ``knnsql.duckdb_extension`` and Python's cffi binding opens the very same shared object,
so both see one process image. ``knn_registry_handle()`` (SQL) gives the address of the database's
index registry once; after that a search is one cffi call into the core (the GIL released) plus a few
numpy / Arrow arrays, instead of a statement's parse, bind, execution and result conversion (~0.6 ms
on DuckDB 2.0, several times the search itself on small indexes). Rows come back from the index's
attribute columns, so no table lookup is needed either (``query.Search`` uses this only when the index
holds every selected column).

The registry is retained here, so it outlives the connection until this object goes.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pyarrow as pa

from . import _ffi

# Core attribute type codes (ext/core/attrs/knn_attrs.h) -> how the values come back.
_BIGINT, _DOUBLE, _BOOLEAN, _DATE, _TIMESTAMP, _VARCHAR = 1, 2, 3, 4, 5, 6

# SQL column types -> Arrow types, as DuckDB exports them; the index's values are cast back to these.
_ARROW = {
    "TINYINT": pa.int8(), "SMALLINT": pa.int16(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
    "UTINYINT": pa.uint8(), "USMALLINT": pa.uint16(), "UINTEGER": pa.uint32(), "UBIGINT": pa.uint64(),
    "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us"), "VARCHAR": pa.string(),
}


def arrow_type(sql_type: str) -> Optional[pa.DataType]:
    """The Arrow type a column of this SQL type comes back as, when the index holds it exactly."""
    return _ARROW.get(sql_type.upper().strip())


class Registry:
    """A database's index registry, retained. ``query`` searches, ``column`` reads attribute values."""

    def __init__(self, con):
        handle = con.execute("SELECT knn_registry_handle()").fetchall()[0][0]
        lib = _ffi.lib()
        self._reg = _ffi.ffi.gc(lib.knn_registry_ref(int(handle)), lib.knn_registry_unref)
        self._names: dict[str, object] = {}

    def _name(self, text: str):
        name = self._names.get(text)
        if name is None:
            name = self._names[text] = _ffi.ffi.new("char[]", text.encode())
        return name

    def query(self, index: str, Q: np.ndarray, k: int, ef: Optional[int], filter_text: Optional[str],
              threads: int = 0):
        """(ids, dists, found) for the float32 C-contiguous (nq, d) queries Q."""
        ffi, t = _ffi.ffi, _ffi.types()
        nq, dim = Q.shape
        ids = np.empty((nq, k), dtype=np.int64)
        dists = np.empty((nq, k), dtype=np.float32)
        found = np.empty(nq, dtype=np.uintp)
        buf = _ffi.thread_errbuf()
        flt = ffi.new("char[]", filter_text.encode()) if filter_text is not None else ffi.NULL
        status = _ffi.lib().knn_registry_query(self._reg, self._name(index), ffi.from_buffer(t.f32, Q), nq, dim, k,
                                               ef or 0, flt, threads, ffi.from_buffer(t.i64, ids),
                                               ffi.from_buffer(t.f32, dists), ffi.from_buffer(t.size, found), buf,
                                               _ffi.ERRMSG_LEN)
        _ffi.check(status, buf)
        return ids, dists, found

    def column(self, index: str, ids: np.ndarray, column: str, to: pa.DataType) -> pa.Array:
        """Attribute ``column`` of the rows ``ids`` as an Arrow array of type ``to`` (NULL where the index
        has no value). Values are converted in numpy (a cast through Arrow's compute layer costs ~30 µs a
        call, more than the lookup)."""
        ffi, t = _ffi.ffi, _ffi.types()
        n = len(ids)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        i64 = np.empty(n, dtype=np.int64)
        f64 = np.empty(n, dtype=np.float64)
        valid = np.empty(n, dtype=np.uint8)
        strs = ffi.new("const char *[]", max(n, 1))
        lens = ffi.new("uint32_t[]", max(n, 1))
        kind = ffi.new("int *")
        buf = _ffi.thread_errbuf()
        status = _ffi.lib().knn_registry_attr_values(
            self._reg, self._name(index), ffi.from_buffer(t.i64, ids), n, self._name(column), kind,
            ffi.from_buffer("int64_t[]", i64), ffi.from_buffer("double[]", f64), strs, lens,
            ffi.from_buffer("uint8_t[]", valid), buf, _ffi.ERRMSG_LEN)
        _ffi.check(status, buf)
        mask = None if valid.all() else valid == 0
        code = kind[0]
        if code == _VARCHAR:
            values = [None if mask is not None and mask[i] else ffi.unpack(strs[i], lens[i]).decode("utf-8", "replace")
                      for i in range(n)]
            return _as(pa.array(values, type=pa.string()), to)
        if code == _DOUBLE:
            values = f64
        elif code == _BOOLEAN:
            values = i64 != 0
        elif code == _DATE:
            return _as(pa.array(i64.astype(np.int32), type=pa.date32(), mask=mask), to)
        elif code == _TIMESTAMP:
            return _as(pa.array(i64, type=pa.timestamp("us"), mask=mask), to)
        elif code == _BIGINT:
            values = i64
        else:  # the index lacks the column (dropped since): NULLs
            return pa.nulls(n, type=to)
        dtype = _NUMPY.get(to)
        if dtype is not None and values.dtype != np.bool_:
            return pa.array(values.astype(dtype, copy=False), type=to, mask=mask)
        return _as(pa.array(values, mask=mask), to)


def _as(arr: pa.Array, to: pa.DataType) -> pa.Array:
    return arr if arr.type == to else arr.cast(to)


# Arrow numeric types -> the numpy dtype their values are converted through (exact for the index's int64
# and double values within the column's own type).
_NUMPY = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float32(): np.float32, pa.float64(): np.float64,
}
