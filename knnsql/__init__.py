"""knnsql: exact and approximate kNN search, window-filtered ANN and sampling inside DuckDB.

>>> import knnsql
>>> db = knnsql.connect()                       # DuckDB connection with the extension loaded
>>> db.sql("SELECT knn_debug()").fetchone()     # doctest: +SKIP
"""

from ._arrow import vectors_table
from ._catalog import Freshness
from ._extension import extension_path, install, load
from ._ffi import KnnError
from ._ingest import DataError
from ._progress import enable as set_progress
from ._sql import FilterError
from ._version import __version__
from .db import Database, connect
from .index import Index
from .query import Search
from .rewrite import Rewrite
from .table import VectorTable
from . import sampling
from . import analytics


def debug() -> dict:
    """Version and SIMD facts of the loaded core: {"version", "simd", "simd_best"}."""
    from . import _ffi

    lib = _ffi.lib()
    s = _ffi.ffi.string
    return {"version": s(lib.knn_version()).decode(), "simd": s(lib.knn_simd_name()).decode(),
            "simd_best": s(lib.knn_simd_best()).decode()}


__all__ = ["DataError", "Database", "FilterError", "Freshness", "Index", "KnnError", "Rewrite", "Search", "analytics", "sampling",
           "VectorTable", "connect", "debug", "extension_path", "install", "load", "set_progress", "vectors_table", "__version__"]
