"""cffi binding to the core: ABI-mode dlopen of the extension file itself.

DuckDB loads ``knnsql.duckdb_extension`` as an extension; Python opens the very same shared object
with cffi, so SQL and numpy callers run one compiled core. The declarations come from the
cffi-parsable block of ext/core/knn_api.h, copied into the package at build time as ``_cdef.h``.
"""

from __future__ import annotations

import threading
from typing import Optional
from pathlib import Path

import cffi

_PACKAGE = Path(__file__).resolve().parent
_lock = threading.Lock()
_lib = None
ffi = cffi.FFI()

ERRMSG_LEN = 512


class KnnError(ValueError):
    """A core call rejected its input (bad dimension, NaN, unknown metric...)."""


def extension_file() -> Path:
    path = _PACKAGE / "knnsql.duckdb_extension"
    if not path.is_file():
        if (_PACKAGE.parent / "pyproject.toml").is_file() and (_PACKAGE.parent / "ext").is_dir():
            raise FileNotFoundError(
                f"{path} is missing: Python imported knnsql from the source folder {_PACKAGE} (the current "
                "directory comes first on sys.path), where the C extension is not built. Run from another "
                "directory to use the installed package, or build in place with `pip install -e .`.")
        raise FileNotFoundError(
            f"{path} is missing: the C extension was not built. Reinstall with `pip install .` "
            "(or `pip install -e .`) from the repository root.")
    return path


def lib():
    """The loaded core library (loaded once per process)."""
    global _lib
    if _lib is None:
        with _lock:
            if _lib is None:
                ffi.cdef((_PACKAGE / "_cdef.h").read_text())
                _lib = ffi.dlopen(str(extension_file()))
    return _lib


class _Types:
    """cffi array types resolved once (a string cdecl is parsed again on every from_buffer call)."""

    def __init__(self):
        self.f32 = ffi.typeof("float[]")
        self.i64 = ffi.typeof("int64_t[]")
        self.size = ffi.typeof("size_t[]")


_types: Optional[_Types] = None


def types() -> _Types:
    global _types
    if _types is None:
        lib()  # the cdef declares the types
        _types = _Types()
    return _types


def errbuf():
    return ffi.new("char[]", ERRMSG_LEN)


_tls = threading.local()


def thread_errbuf():
    """This thread's error buffer, made once (per-query calls; a core call runs with the GIL released, so
    threads must not share one)."""
    try:
        return _tls.buf
    except AttributeError:
        _tls.buf = errbuf()
        return _tls.buf


def check(status: int, buf) -> None:
    """Raises KnnError with the core's message when status is non-zero."""
    if status != 0:
        raise KnnError(ffi.string(buf).decode("utf-8", "replace"))
