"""knnsql.Index: the core's indexes on numpy arrays, no database needed."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import _ffi

_KINDS = ("flat",)


class Index:
    """A vector index over numpy arrays, backed by the same C core as the SQL functions.

    Parameters
    ----------
    dim : int
        Vector dimension (1..65536).
    metric : {"l2", "cosine", "ip"}
        ``l2`` is squared Euclidean distance (alias ``l2sq``), ``cosine`` is ``1 - cos``, ``ip`` is the
        negative inner product (smaller is nearer).
    kind : {"flat"}
        ``flat`` searches exactly by brute force, with SIMD kernels and a blocked many-query path.

    Notes
    -----
    Ids are int64. Adding an id that is already present replaces its vector; within one ``add`` call the
    last occurrence wins. Vectors with NaN or Inf are rejected and nothing from that call is added.
    """

    def __init__(self, dim: int, metric: str = "l2", kind: str = "flat"):
        if kind not in _KINDS:
            raise ValueError(f"unknown index kind {kind!r}; use one of {', '.join(map(repr, _KINDS))}")
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        lib = _ffi.lib()
        out = _ffi.ffi.new("knn_flat **")
        buf = _ffi.errbuf()
        _ffi.check(lib.knn_flat_new(int(dim) if dim > 0 else 0, str(metric).encode(), out, buf, _ffi.ERRMSG_LEN), buf)
        self._handle = _ffi.ffi.gc(out[0], lib.knn_flat_destroy)
        self.kind = kind

    @property
    def dim(self) -> int:
        return int(_ffi.lib().knn_flat_dim(self._handle))

    @property
    def metric(self) -> str:
        return _ffi.ffi.string(_ffi.lib().knn_flat_metric(self._handle)).decode()

    @property
    def simd(self) -> str:
        """Kernel set this index uses: "scalar", "avx2" or "avx512" (fixed when it was created)."""
        return _ffi.ffi.string(_ffi.lib().knn_flat_simd(self._handle)).decode()

    def __len__(self) -> int:
        return int(_ffi.lib().knn_flat_count(self._handle))

    def __repr__(self) -> str:
        return f"knnsql.Index(dim={self.dim}, metric={self.metric!r}, kind={self.kind!r}, rows={len(self)})"

    def _matrix(self, X, what: str) -> np.ndarray:
        arr = np.asarray(X)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{what} must be numeric (float32 preferred), got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise ValueError(f"{what} must be a 2-d array (n, {self.dim}) or one vector, got shape {arr.shape}")
        if arr.shape[1] != self.dim:
            raise ValueError(f"dimension mismatch: {what} has {arr.shape[1]} columns but the index has dim "
                             f"{self.dim}")
        return np.ascontiguousarray(arr, dtype=np.float32)

    def add(self, X, ids=None) -> None:
        """Adds vectors.

        Parameters
        ----------
        X : array_like, shape (n, dim)
            Vectors; converted to contiguous float32.
        ids : array_like of int, shape (n,), optional
            Row ids. Defaults to ``len(self), len(self)+1, ...``.
        """
        X = self._matrix(X, "X")
        n = X.shape[0]
        if ids is None:
            ids = np.arange(len(self), len(self) + n, dtype=np.int64)
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.shape != (n,):
            raise ValueError(f"ids must have shape ({n},) to match X, got {ids.shape}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        buf = _ffi.errbuf()
        ffi = _ffi.ffi
        _ffi.check(_ffi.lib().knn_flat_add(self._handle, ffi.from_buffer("float[]", X), ffi.from_buffer("int64_t[]", ids),
                                           n, buf, _ffi.ERRMSG_LEN), buf)

    def search(self, Q, k: int = 10, threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Finds the k nearest rows of each query.

        Parameters
        ----------
        Q : array_like, shape (nq, dim) or (dim,)
            Queries; must be finite (and non-zero for cosine).
        k : int
            Neighbours per query (>= 1). When the index holds fewer than k rows, all rows come back.
        threads : int, optional
            Threads to use; default every core.

        Returns
        -------
        ids : ndarray of int64, shape (nq, min(k, len(self)))
        distances : ndarray of float32, same shape, ascending per row (ties by id).
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if threads is not None and (not isinstance(threads, (int, np.integer)) or threads < 1):
            raise ValueError(f"threads must be a positive int or None, got {threads!r}")
        Q = self._matrix(Q, "Q")
        nq = Q.shape[0]
        kk = min(int(k), len(self))
        ids = np.empty((nq, kk), dtype=np.int64)
        dists = np.empty((nq, kk), dtype=np.float32)
        buf = _ffi.errbuf()
        ffi = _ffi.ffi
        _ffi.check(_ffi.lib().knn_flat_search(self._handle, ffi.from_buffer("float[]", Q), nq, int(k), threads or 0,
                                              ffi.from_buffer("int64_t[]", ids), ffi.from_buffer("float[]", dists),
                                              buf, _ffi.ERRMSG_LEN), buf)
        return ids, dists
