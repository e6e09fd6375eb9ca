"""knnsql: exact and approximate kNN search, window-filtered ANN and sampling inside DuckDB.

>>> import knnsql
>>> db = knnsql.connect()                       # DuckDB connection with the extension loaded
>>> db.sql("SELECT knn_debug()").fetchone()     # doctest: +SKIP
"""

from ._arrow import vectors_table
from ._extension import Database, connect, extension_path, load
from ._ffi import KnnError
from ._version import __version__
from .index import Index
from . import analytics  # noqa: E402  (kNN analytics: knnsql.analytics)


def debug() -> dict:
    """Version and SIMD facts of the loaded core: {"version", "simd", "simd_best"}."""
    from . import _ffi

    lib = _ffi.lib()
    s = _ffi.ffi.string
    return {"version": s(lib.knn_version()).decode(), "simd": s(lib.knn_simd_name()).decode(),
            "simd_best": s(lib.knn_simd_best()).decode()}


__all__ = ["Database", "Index", "KnnError", "connect", "debug", "extension_path", "load", "vectors_table", "__version__"]
__all__ += ["analytics"]
