"""knnsql.Index: the core's indexes on numpy arrays, no database needed."""

from __future__ import annotations

import os
import tempfile
from typing import Optional, Tuple

import numpy as np

from . import _ffi

_KINDS = ("flat", "graph")
_F32 = np.dtype(np.float32)


def _bound(name: str, value, default: float) -> float:
    if value is None:
        return default
    if type(value) is float or type(value) is np.float64:  # the common case, checked cheaply (per query)
        if value != value:
            raise ValueError(f"{name} must not be NaN; use None for an open bound")
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    if np.isnan(value):
        raise ValueError(f"{name} must not be NaN; use None for an open bound")
    return float(value)


def _int_arg(name: str, value, minimum: int) -> int:
    if type(value) is int and value >= minimum:  # the common case, checked cheaply (per query)
        return value
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class Index:
    """A vector index over numpy arrays, backed by the same C core as the SQL functions.

    Parameters
    ----------
    dim : int
        Vector dimension (1..65536).
    metric : {"l2", "cosine", "ip"}
        ``l2`` is squared Euclidean distance (alias ``l2sq``), ``cosine`` is ``1 - cos``, ``ip`` is the
        negative inner product (smaller is nearer).
    kind : {"flat", "graph"}
        ``flat`` searches exactly by brute force (SIMD kernels, blocked many-query path). ``graph`` is an
        HNSW graph: approximate, much faster on large sets; tune with ``m``, ``ef_construction``, ``ef``.
    m : int, optional
        Graph only: links per node (layer 0 keeps 2*m). More links raise recall and memory. Default 16.
    ef_construction : int, optional
        Graph only: beam width while building. Higher builds slower and better. Default 200.
    ef : int, optional
        Graph only: default beam width while searching (raised to k when smaller). Default 64.
    seed : int
        Graph only: seed of the layer draws (with ``threads=1`` the build is deterministic).
    quantization : {None, "none", "sq8", "sq4"}
        ``"sq8"`` / ``"sq4"`` keep 8- or 4-bit codes per dimension in memory and the float rows in an
        unlinked file in ``vectors_dir`` (default: the system temp directory), which the kernel pages like a
        cache. Flat (``"sq8"`` only, metric ``l2`` or ``cosine``): searches stay exact, the codes' distance
        bound decides which float rows are read. Graph: searches walk the graph by code distances and
        re-rank the best ``rerank`` rows of the beam (:meth:`search`) with float distances from the file,
        so returned distances are exact; any metric.

    Notes
    -----
    Ids are int64. Adding an id that is already present replaces its vector; within one ``add`` call the
    last occurrence wins. Vectors with NaN or Inf are rejected and nothing from that call is added. Under
    ``cosine`` the graph stores normalised vectors and rejects zero vectors.
    """

    def __init__(self, dim: int, metric: str = "l2", kind: str = "flat", *, m: Optional[int] = None,
                 ef_construction: Optional[int] = None, ef: Optional[int] = None, seed: int = 42,
                 quantization: Optional[str] = None, vectors_dir: Optional[str] = None):
        if kind not in _KINDS:
            raise ValueError(f"unknown index kind {kind!r}; use one of {', '.join(map(repr, _KINDS))}")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        if kind == "flat" and any(v is not None for v in (m, ef_construction, ef)):
            raise ValueError("m, ef_construction and ef apply to kind='graph' only")
        if kind == "graph" and quantization not in (None, "none", "sq8", "sq4"):
            raise ValueError(f"unknown quantization {quantization!r}; use 'sq8', 'sq4' or 'none'")
        self.kind = kind
        lib, ffi = _ffi.lib(), _ffi.ffi
        buf = _ffi.errbuf()
        if kind == "flat":
            out = ffi.new("knn_flat **")
            _ffi.check(lib.knn_flat_new(max(int(dim), 0), str(metric).encode(), out, buf, _ffi.ERRMSG_LEN), buf)
            self._handle = ffi.gc(out[0], lib.knn_flat_destroy)
            if quantization is not None or vectors_dir is not None:
                _ffi.check(lib.knn_flat_set_storage(self._handle, str(quantization or "none").encode(),
                                                    str(vectors_dir or tempfile.gettempdir()).encode(), buf,
                                                    _ffi.ERRMSG_LEN), buf)
        else:
            params = [0 if v is None else _int_arg(n, v, 1) for n, v in
                      (("m", m), ("ef_construction", ef_construction), ("ef", ef))]
            out = ffi.new("knn_graph **")
            _ffi.check(lib.knn_graph_new(max(int(dim), 0), str(metric).encode(), *params, int(seed) & (2**64 - 1),
                                         out, buf, _ffi.ERRMSG_LEN), buf)
            self._handle = ffi.gc(out[0], lib.knn_graph_destroy)
            if quantization is not None or vectors_dir is not None:
                _ffi.check(lib.knn_graph_storage(self._handle, str(quantization or "none").encode(),
                                                 str(vectors_dir or tempfile.gettempdir()).encode(), buf,
                                                 _ffi.ERRMSG_LEN), buf)

    @classmethod
    def _from_graph_handle(cls, handle) -> "Index":
        self = cls.__new__(cls)
        self.kind = "graph"
        self._handle = _ffi.ffi.gc(handle, _ffi.lib().knn_graph_destroy)
        return self

    # ---- properties -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        d = self.__dict__.get("_dim")  # fixed for the index's life: asked once
        if d is None:
            lib = _ffi.lib()
            d = int(lib.knn_flat_dim(self._handle) if self.kind == "flat" else lib.knn_graph_dimension(self._handle))
            self._dim = d
        return d

    @property
    def metric(self) -> str:
        lib = _ffi.lib()
        name = lib.knn_flat_metric(self._handle) if self.kind == "flat" else lib.knn_graph_metric_name(self._handle)
        return _ffi.ffi.string(name).decode()

    @property
    def simd(self) -> str:
        """Kernel set this index uses: "scalar", "avx2" or "avx512" (fixed when it was created)."""
        if self.kind != "flat":
            return _ffi.ffi.string(_ffi.lib().knn_simd_name()).decode()
        return _ffi.ffi.string(_ffi.lib().knn_flat_simd(self._handle)).decode()

    @property
    def params(self) -> dict:
        """Graph settings {"m", "ef_construction", "ef"} (empty for flat)."""
        if self.kind == "flat":
            return {}
        out = _ffi.ffi.new("size_t[3]")
        _ffi.lib().knn_graph_settings(self._handle, out)
        return {"m": int(out[0]), "ef_construction": int(out[1]), "ef": int(out[2])}

    @property
    def deleted(self) -> int:
        """Tombstoned rows awaiting :meth:`optimize` (graph)."""
        return 0 if self.kind == "flat" else int(_ffi.lib().knn_graph_tombstones(self._handle))

    @property
    def memory_bytes(self) -> int:
        """Approximate bytes the index holds on the heap."""
        lib = _ffi.lib()
        return int(lib.knn_flat_bytes(self._handle) if self.kind == "flat" else lib.knn_graph_bytes(self._handle))

    @property
    def disk_bytes(self) -> int:
        """Bytes of the files a quantized index maps its float rows from (0 otherwise)."""
        lib = _ffi.lib()
        return int(lib.knn_flat_disk_bytes(self._handle) if self.kind == "flat" else lib.knn_graph_disk_bytes(self._handle))

    @property
    def quantization(self) -> str:
        """``"sq8"``, ``"sq4"`` or ``"none"``."""
        lib = _ffi.lib()
        if self.kind == "flat":
            return "sq8" if _ffi.ffi.string(lib.knn_flat_storage(self._handle)) == b"sq8" else "none"
        return _ffi.ffi.string(lib.knn_graph_quantization(self._handle)).decode()

    def __len__(self) -> int:
        lib = _ffi.lib()
        return int(lib.knn_flat_count(self._handle) if self.kind == "flat" else lib.knn_graph_count(self._handle))

    def __repr__(self) -> str:
        q = self.quantization
        extra = "" if q == "none" else f", quantization={q!r}"
        return f"knnsql.Index(dim={self.dim}, metric={self.metric!r}, kind={self.kind!r}{extra}, rows={len(self)})"

    # ---- data -------------------------------------------------------------------------------------
    def _matrix(self, X, what: str) -> np.ndarray:
        dim = self.dim
        if type(X) is np.ndarray and X.dtype == np.float32 and X.flags.c_contiguous:  # per-query fast path
            if X.ndim == 1 and X.shape[0] == dim:
                return X.reshape(1, dim)
            if X.ndim == 2 and X.shape[1] == dim:
                return X
        arr = np.asarray(X)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{what} must be numeric (float32 preferred), got dtype {arr.dtype}")
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2:
            raise ValueError(f"{what} must be a 2-d array (n, {self.dim}) or one vector, got shape {arr.shape}")
        if arr.shape[1] != dim:
            raise ValueError(f"dimension mismatch: {what} has {arr.shape[1]} columns but the index has dim "
                             f"{dim}")
        return np.ascontiguousarray(arr, dtype=np.float32)

    @staticmethod
    def _ids(ids, n: int) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        if ids.shape != (n,):
            raise ValueError(f"ids must have shape ({n},) to match X, got {ids.shape}")
        return np.ascontiguousarray(ids, dtype=np.int64)

    def add(self, X, ids=None, labels=None, threads: Optional[int] = None) -> None:
        """Adds vectors.

        Parameters
        ----------
        X : array_like, shape (n, dim)
            Vectors; converted to contiguous float32.
        ids : array_like of int, shape (n,), optional
            Row ids. Defaults to ``len(self), len(self)+1, ...``.
        labels : array_like of float, shape (n,), optional
            A numeric label per row (timestamp, price, size...) for window searches
            (``search(..., lo=, hi=)``). NaN means no label: such rows are never in a window. Labels are
            float64, so integers beyond 2**53 lose precision.
        threads : int, optional
            Graph only: build threads (default every core; 1 gives a deterministic graph).
        """
        X = self._matrix(X, "X")
        n = X.shape[0]
        ids = np.arange(len(self), len(self) + n, dtype=np.int64) if ids is None else self._ids(ids, n)
        threads = 0 if threads is None else _int_arg("threads", threads, 1)
        buf, ffi, lib = _ffi.errbuf(), _ffi.ffi, _ffi.lib()
        xs, ix = ffi.from_buffer("float[]", X), ffi.from_buffer("int64_t[]", ids)
        if labels is None:
            lab = ffi.NULL
        else:
            labels = np.asarray(labels)
            if labels.dtype.kind not in "fiub" or labels.shape != (n,):
                raise ValueError(f"labels must be {n} numbers, got shape {labels.shape} and dtype {labels.dtype}")
            labels = np.ascontiguousarray(labels, dtype=np.float64)
            lab = ffi.from_buffer("double[]", labels)
        if self.kind == "flat":
            status = lib.knn_flat_add_labeled(self._handle, xs, ix, lab, n, buf, _ffi.ERRMSG_LEN)
        else:
            status = lib.knn_graph_add_rows(self._handle, xs, ix, lab, n, threads, buf, _ffi.ERRMSG_LEN)
        _ffi.check(status, buf)

    def delete(self, ids) -> int:
        """Removes ids; returns how many were present. A graph tombstones them (reclaimed by
        :meth:`optimize`); a flat index removes them at once."""
        ids = np.asarray(ids)
        if ids.size and ids.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        ids = np.ascontiguousarray(np.atleast_1d(ids), dtype=np.int64)
        removed = _ffi.ffi.new("size_t *")
        buf, lib, ffi = _ffi.errbuf(), _ffi.lib(), _ffi.ffi
        fn = lib.knn_flat_remove if self.kind == "flat" else lib.knn_graph_remove
        _ffi.check(fn(self._handle, ffi.from_buffer("int64_t[]", ids) if len(ids) else ffi.NULL, len(ids), removed,
                      buf, _ffi.ERRMSG_LEN), buf)
        return int(removed[0])

    def optimize(self, threads: Optional[int] = None) -> None:
        """Rebuilds a graph from its live rows, reclaiming deleted ones."""
        if self.kind == "flat":
            return
        buf = _ffi.errbuf()
        _ffi.check(_ffi.lib().knn_graph_rebuild(self._handle, 0 if threads is None else threads, buf,
                                                _ffi.ERRMSG_LEN), buf)

    def ids(self) -> np.ndarray:
        """Live ids, in storage order."""
        out = np.empty(len(self), dtype=np.int64)
        lib = _ffi.lib()
        fn = lib.knn_flat_list_ids if self.kind == "flat" else lib.knn_graph_list_ids
        if len(out):
            fn(self._handle, _ffi.ffi.from_buffer("int64_t[]", out))
        return out

    # ---- search -----------------------------------------------------------------------------------
    def search(self, Q, k: int = 10, ef: Optional[int] = None, threads: Optional[int] = None,
               lo: Optional[float] = None, hi: Optional[float] = None,
               rerank: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Finds the k nearest rows of each query.

        Parameters
        ----------
        Q : array_like, shape (nq, dim) or (dim,)
            Queries; must be finite (and non-zero for cosine).
        k : int
            Neighbours per query (>= 1). When the index holds fewer than k rows, all rows come back.
        ef : int, optional
            Graph only: search beam width; larger is slower and more accurate. Raised to k when smaller.
        threads : int, optional
            Threads to use; default every core.
        lo, hi : float, optional
            Window: only rows whose label lies in ``[lo, hi]`` (inclusive; None leaves that side open;
            ``lo > hi`` is an empty window). A graph index plans each query: an exact scan of the window
            when it is small, beams in per-bucket graphs over label ranges for mid-size windows (on
            indexes where they pay), a filtered beam search when it is wide; k rows come back whenever
            the window holds k rows.
        rerank : int, optional
            Quantized graph only: how many of the beam's best rows by code distance are re-scored with float
            distances from the vectors file before the k nearest are returned (sorted by distance, then
            id). Default: the whole beam (``ef`` rows); a depth above ``ef`` widens the beam to it. Fewer
            reads fewer float rows, at some recall.

        Returns
        -------
        ids : ndarray of int64, shape (nq, min(k, len(self)))
        distances : ndarray of float32, same shape, ascending per row. With a window holding fewer than
            k rows, the missing entries are id -1 and distance +inf.
        """
        if (type(Q) is np.ndarray and Q.ndim == 1 and Q.dtype is _F32 and self.kind == "graph" and rerank is None
                and (threads is None or (type(threads) is int and threads == 1))
                and type(k) is int and k >= 1 and (ef is None or (type(ef) is int and ef >= 1))):
            one = self._search_one(Q, k, ef, lo, hi)
            if one is not None:
                return one
        k = _int_arg("k", k, 1)
        threads = 0 if threads is None else _int_arg("threads", threads, 1)
        if ef is not None:
            if self.kind == "flat":
                raise ValueError("ef applies to kind='graph' only; a flat index is always exact")
            ef = _int_arg("ef", ef, 1)
        if rerank is not None:
            if self.kind == "flat":
                raise ValueError("rerank applies to kind='graph' only; a flat index is always exact")
            rerank = _int_arg("rerank", rerank, 1)
        windowed = lo is not None or hi is not None
        lo_v = _bound("lo", lo, -np.inf)
        hi_v = _bound("hi", hi, np.inf)
        Q = self._matrix(Q, "Q")
        nq = Q.shape[0]
        kk = min(k, len(self))
        buf, ffi, lib = _ffi.errbuf(), _ffi.ffi, _ffi.lib()
        t = _ffi.types()  # cffi types resolved once: a string is parsed again on every call
        qs = ffi.from_buffer(t.f32, Q)
        if self.kind == "flat":
            ids = np.empty((nq, k), dtype=np.int64)
            dists = np.empty((nq, k), dtype=np.float32)
            found = ffi.new("size_t *")
            _ffi.check(lib.knn_flat_search_window(self._handle, qs, nq, k, threads, int(windowed), lo_v, hi_v,
                                                  ffi.from_buffer("int64_t[]", ids), ffi.from_buffer("float[]", dists),
                                                  found, ffi.NULL, buf, _ffi.ERRMSG_LEN), buf)
            return ids[:, :found[0]], dists[:, :found[0]]
        ids = np.empty((nq, max(kk, 1)), dtype=np.int64)
        dists = np.empty((nq, max(kk, 1)), dtype=np.float32)
        found = np.empty(nq, dtype=np.uintp)
        out = (ffi.from_buffer(t.i64, ids), ffi.from_buffer(t.f32, dists), ffi.from_buffer(t.size, found))
        if rerank is not None:
            status = lib.knn_graph_query_rerank(self._handle, qs, nq, max(kk, 1), ef or 0, rerank, int(windowed), lo_v,
                                                hi_v, threads, *out, buf, _ffi.ERRMSG_LEN)
        elif windowed:
            status = lib.knn_graph_query_window(self._handle, qs, nq, max(kk, 1), ef or 0, lo_v, hi_v, threads, *out,
                                                ffi.NULL, buf, _ffi.ERRMSG_LEN)
        else:
            status = lib.knn_graph_query(self._handle, qs, nq, max(kk, 1), ef or 0, threads, *out, buf, _ffi.ERRMSG_LEN)
        _ffi.check(status, buf)
        return ids[:, :kk], dists[:, :kk]

    def search_among(self, Q, ids, k: int = 10, ef: Optional[int] = None,
                     threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Finds the k nearest rows of each query among the rows whose id is in ``ids`` (graph only).

        The allow-list path: any filter computed outside the index (a SQL ``WHERE``, a join, a set of
        ids from elsewhere) becomes a bitmap over the index's rows, and each query is planned by the
        share of rows it keeps: an exact scan of the matching rows when they are few, else the graph
        beam admitting only matching rows, with the exact scan answering whenever the beam would cost
        more or finds fewer than k rows. So k rows come back whenever k live rows match.

        Parameters
        ----------
        Q : array_like, shape (nq, dim) or (dim,)
            Queries; every query searches the same rows.
        ids : array_like of int
            The allowed ids; ids the index does not hold, and repeats, are ignored.
        k, ef, threads
            As in :meth:`search`; a batch of queries is split over the threads (one query runs on the
            calling thread).

        Returns
        -------
        ids, distances : ndarrays of shape (nq, k); missing entries (fewer than k rows match) are id -1
            and distance +inf. ``self.last_among_plans`` then holds each query's plan: 0 exact scan of the
            matching rows, 2 the beam gave up and the exact scan answered, 3 filtered beam, 5 every row
            matched (the plain search).
        """
        if self.kind != "graph":
            raise ValueError("search_among needs kind='graph'; a flat index is exact: search the matching rows "
                             "with an Index built over them, or use knn_exact in SQL")
        k = _int_arg("k", k, 1)
        if ef is not None:
            ef = _int_arg("ef", ef, 1)
        threads = 0 if threads is None else _int_arg("threads", threads, 1)
        raw = np.asarray(ids).reshape(-1)
        if raw.size and not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"ids must be integers (the index's row ids), got an array of {raw.dtype}; "
                             "convert them with np.asarray(ids, dtype=np.int64) if they are whole numbers")
        allow = np.ascontiguousarray(raw, dtype=np.int64)
        Q = self._matrix(Q, "Q")
        nq = Q.shape[0]
        buf, ffi, lib = _ffi.errbuf(), _ffi.ffi, _ffi.lib()
        t = _ffi.types()
        out_ids = np.empty((nq, k), dtype=np.int64)
        dists = np.empty((nq, k), dtype=np.float32)
        found = np.empty(nq, dtype=np.uintp)
        plans = np.empty(nq, dtype=np.intc)
        _ffi.check(lib.knn_graph_query_among(self._handle, ffi.from_buffer(t.f32, Q), nq, k, ef or 0,
                                             ffi.from_buffer(t.i64, allow), allow.shape[0], threads,
                                             ffi.from_buffer(t.i64, out_ids), ffi.from_buffer(t.f32, dists),
                                             ffi.from_buffer(t.size, found), ffi.from_buffer("int[]", plans),
                                             ffi.NULL, buf, _ffi.ERRMSG_LEN), buf)
        self.last_among_plans = plans
        return out_ids, dists

    def _search_one(self, q: np.ndarray, k: int, ef: Optional[int], lo, hi):
        """The per-query path of :meth:`search` for one float32 vector on a graph: one core call on this
        thread, nothing resolved twice. Returns None for anything it does not take (the general path then
        handles it, errors included)."""
        if q.shape[0] != self.dim or not q.flags.c_contiguous:
            return None
        windowed = 0 if lo is None and hi is None else 1  # an int: cffi converts a bool slowly
        lo_v = _bound("lo", lo, -np.inf)
        hi_v = _bound("hi", hi, np.inf)
        ffi, t = _ffi.ffi, _ffi.types()
        ids = np.empty((1, k), dtype=np.int64)
        dists = np.empty((1, k), dtype=np.float32)
        buf = _ffi.thread_errbuf()
        width = _ffi.lib().knn_graph_query_one(self._handle, ffi.from_buffer(t.f32, q), k, ef or 0, windowed, lo_v,
                                              hi_v, ffi.from_buffer(t.i64, ids), ffi.from_buffer(t.f32, dists), buf,
                                              _ffi.ERRMSG_LEN)
        if width < 0:
            _ffi.check(1, buf)
        if width < k:  # the shape is (1, min(k, rows)); a window short of rows pads with -1 / +inf
            return ids[:, :width], dists[:, :width]
        return ids, dists

    # ---- persistence ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Serialised graph (versioned, checksummed); the format ``knn_index_dump`` uses."""
        if self.kind == "flat":
            raise NotImplementedError("serialisation is supported by kind='graph'")
        ffi, buf = _ffi.ffi, _ffi.errbuf()
        out, size = ffi.new("uint8_t **"), ffi.new("size_t *")
        _ffi.check(_ffi.lib().knn_graph_to_bytes(self._handle, out, size, buf, _ffi.ERRMSG_LEN), buf)
        try:
            return bytes(ffi.buffer(out[0], size[0]))
        finally:
            _ffi.lib().knn_bytes_free(out[0])

    @classmethod
    def from_bytes(cls, data: bytes, vectors_dir: Optional[str] = None) -> "Index":
        """Rebuilds a graph index from :meth:`to_bytes` output; corrupt bytes raise KnnError.

        A quantized graph's bytes hold its codes, ranges and links but not its float rows: it comes back
        without them (its vectors file is created in ``vectors_dir``, default the system temp directory),
        and searches raise until :meth:`restore_vectors` has given every live row its float row."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be bytes, got {type(data).__name__}")
        lib = _ffi.lib()  # first: it declares the core's types (from_bytes may be a process's first call)
        ffi, buf = _ffi.ffi, _ffi.errbuf()
        out = ffi.new("knn_graph **")
        raw = bytes(data)
        _ffi.check(lib.knn_graph_from_bytes_at(ffi.from_buffer("uint8_t[]", raw) if raw else ffi.NULL, len(raw),
                                               str(vectors_dir or tempfile.gettempdir()).encode(), out, buf,
                                               _ffi.ERRMSG_LEN), buf)
        return cls._from_graph_handle(out[0])

    def restore_vectors(self, X, ids) -> int:
        """Gives a quantized graph loaded by :meth:`from_bytes` the float rows of its live ids (as they were
        added). Each row must code to the codes the index holds for its id (a row that changed since the save
        is refused: re-add it with :meth:`add` instead, after the others); ids the index does not hold, or
        whose row it has, are skipped. Returns how many rows were taken."""
        if self.kind != "graph":
            raise ValueError("restore_vectors applies to a quantized graph index")
        X = self._matrix(X, "X")
        ids = self._ids(ids, X.shape[0])
        ffi, buf = _ffi.ffi, _ffi.errbuf()
        taken = ffi.new("size_t *")
        _ffi.check(_ffi.lib().knn_graph_fill_vectors(self._handle, ffi.from_buffer("float[]", X),
                                                     ffi.from_buffer("int64_t[]", ids), X.shape[0], taken, buf,
                                                     _ffi.ERRMSG_LEN), buf)
        return int(taken[0])

    @property
    def missing_vectors(self) -> int:
        """Live rows of a quantized graph loaded by :meth:`from_bytes` still waiting for their float rows."""
        return 0 if self.kind == "flat" else int(_ffi.lib().knn_graph_missing_vectors(self._handle))

    def save(self, path: "str | os.PathLike") -> None:
        """Writes :meth:`to_bytes` to a file (atomically, via a temporary file)."""
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "wb") as f:
            f.write(self.to_bytes())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: "str | os.PathLike", vectors_dir: Optional[str] = None) -> "Index":
        """Reads an index written by :meth:`save` (a quantized graph then needs :meth:`restore_vectors`)."""
        with open(path, "rb") as f:
            return cls.from_bytes(f.read(), vectors_dir=vectors_dir)
