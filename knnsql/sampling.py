"""Sampling and selection: diverse subsets, coresets, thinned and balanced samples.

Two entry points over one C core (``ext/core/sample/*.c``):

- :func:`sample` builds the SQL aggregate ``knn_sample_agg`` / ``knn_sample_weighted`` over a table or
  any query and returns a pandas DataFrame with one row per pick.
- numpy functions (:func:`kcenter`, :func:`kmeanspp`, :func:`kmeans`, :func:`weighted`,
  :func:`sensitivity`, :func:`balanced`, :func:`kernel_thinning`, :func:`dpp`, and the general
  :func:`run`) call the core through cffi on float32 arrays, with no database.

Every method is deterministic for a seed, whatever the thread count.

>>> import numpy as np, knnsql.sampling as ks
>>> X = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
>>> res = ks.kcenter(X, 10, seed=1)
>>> len(res.index), bool(res.score[0] >= res.score[-1])
(10, True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from . import _ffi, _progress
from ._sql import parse_filter, render

METHODS = ("kcenter", "kmeans++", "kmeans", "weighted", "sensitivity", "balanced", "kernel_thinning", "dpp", "depth")

__all__ = ["METHODS", "SampleResult", "assign", "balanced", "depth", "dpp", "kcenter", "kernel_thinning", "kmeans",
           "kmeanspp", "options_text", "run", "sample", "sensitivity", "weighted"]


@dataclass(frozen=True)
class SampleResult:
    """Picks of one sampler run (numpy API).

    Attributes
    ----------
    index : np.ndarray
        Row positions (int64) of the picks, in pick order.
    weight : np.ndarray
        How many rows each pick stands for (coreset weight; see each method).
    score : np.ndarray
        Per-pick score (kcenter: covering radius after the pick; NaN when a method has none).
    cluster : np.ndarray
        Cluster of each pick (-1 when the method has none).
    centroids : np.ndarray or None
        ``kmeans``: the k x d centroids.
    assign : np.ndarray or None
        ``kmeans`` and ``kmeans++``: nearest centroid / pick of every row.
    cost : float
        k-means family: sum of squared distances to the nearest center; kcenter: final covering
        radius; dpp: log det of the picks' kernel matrix; NaN otherwise.
    iters : int
        ``kmeans``: Lloyd iterations run.
    bandwidth : float
        Gaussian sigma used by ``kernel_thinning`` / ``dpp`` with ``kernel='rbf'`` (NaN otherwise).
    """

    index: np.ndarray
    weight: np.ndarray
    score: np.ndarray
    cluster: np.ndarray
    centroids: Optional[np.ndarray]
    assign: Optional[np.ndarray]
    cost: float
    iters: int
    bandwidth: float


def options_text(options: Mapping[str, Any]) -> str:
    """Renders options as the core's ``key=value, ...`` text (bools as 0/1, sequences joined by '/')."""
    parts = []
    for key, value in options.items():
        if value is None:
            continue
        if not re.fullmatch(r"[a-z_]+", key):
            raise ValueError(f"option name {key!r} must be lower-case letters")
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, (list, tuple)):
            value = "/".join(str(int(v)) for v in value)
        text = str(value)
        if "," in text or "=" in text:
            raise ValueError(f"option {key}={text!r} must not contain ',' or '='")
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def _as_rows(X) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-d array (rows x dim), got shape {X.shape}")
    return X


def run(X, n: int, method: str, *, seed: int = 0, weights=None, start: Optional[Sequence[int]] = None,
        threads: int = 0, **options: Any) -> SampleResult:
    """Runs one sampler on the rows of ``X`` (float32, rows x dim).

    Parameters
    ----------
    X : array-like
        The rows (converted to float32). For ``method='weighted'`` it may be ``None``.
    n : int
        Picks wanted (>= 1). Larger than the rows: every row (with-replacement weighted sampling
        draws n times; k-DPP returns at most the kernel's rank).
    method : str
        One of :data:`METHODS`.
    seed : int
        Seed of every random choice; same seed, same output.
    weights : array-like, optional
        Per-row weights, finite and >= 0 (``method='weighted'`` only).
    start : sequence of int, optional
        ``kcenter``: row positions already selected (picked first, not returned).
    threads : int
        0 uses every core; the output does not depend on it.
    **options
        Method options, e.g. ``iters=20``, ``variant='rejection'``, ``levels=(100, 10)``,
        ``metric='cosine'``; see ``sql/reference/knn_sample.md``.
    """
    lib, ffi = _ffi.lib(), _ffi.ffi
    if method == "weighted" and X is None:
        if weights is None:
            raise _ffi.KnnError("weighted: method 'weighted' needs a weight per row; pass weights=")
        X = np.zeros((len(np.asarray(weights)), 1), dtype=np.float32)
    X = _as_rows(X)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    if n <= 0:
        raise _ffi.KnnError(f"{method}: n must be >= 1, got {n}; ask for at least one row")
    w_arr = None
    if weights is not None:
        w_arr = np.ascontiguousarray(weights, dtype=np.float64)
        if w_arr.shape != (X.shape[0],):
            raise ValueError(f"weights must have one value per row ({X.shape[0]}), got shape {w_arr.shape}")
    s_arr = None
    if start is not None:
        s_arr = np.ascontiguousarray(start, dtype=np.int64)
    out = ffi.new("knn_sample_result **")
    err = _ffi.errbuf()
    status = lib.knn_sample_run(
        ffi.cast("float *", X.ctypes.data), X.shape[0], X.shape[1],
        ffi.NULL if w_arr is None else ffi.cast("double *", w_arr.ctypes.data), int(n), method.encode(),
        int(seed) & 0xFFFFFFFFFFFFFFFF, options_text(options).encode(),
        ffi.NULL if s_arr is None else ffi.cast("int64_t *", s_arr.ctypes.data), 0 if s_arr is None else len(s_arr),
        int(threads), out, err, _ffi.ERRMSG_LEN)
    _ffi.check(status, err)
    r = out[0]
    try:
        m = r.n

        def arr(ptr, dtype, count):
            if count == 0 or ptr == ffi.NULL:
                return np.zeros(0, dtype=dtype)
            return np.frombuffer(ffi.buffer(ptr, count * np.dtype(dtype).itemsize), dtype=dtype).copy()

        centroids = None
        if r.centroids != ffi.NULL:
            centroids = arr(r.centroids, np.float32, r.n_centroids * X.shape[1]).reshape(r.n_centroids, X.shape[1])
        assign_arr = arr(r.assign, np.int32, X.shape[0]) if r.assign != ffi.NULL else None
        return SampleResult(index=arr(r.index, np.int64, m), weight=arr(r.weight, np.float64, m),
                            score=arr(r.score, np.float64, m), cluster=arr(r.cluster, np.int64, m),
                            centroids=centroids, assign=assign_arr, cost=float(r.cost), iters=int(r.iters),
                            bandwidth=float(r.bandwidth))
    finally:
        lib.knn_sample_result_free(r)


def kcenter(X, n: int, *, seed: int = 0, start: Optional[Sequence[int]] = None, metric: str = "l2",
            threads: int = 0) -> SampleResult:
    """Greedy farthest-point k-center: ``score`` is the covering radius after each pick (<= 2x optimal)."""
    return run(X, n, "kcenter", seed=seed, start=start, threads=threads, metric=metric)


def kmeanspp(X, k: int, *, seed: int = 0, variant: str = "auto", trials: Optional[int] = None,
             assign: bool = True, metric: str = "l2", threads: int = 0) -> SampleResult:
    """k-means++ seeds: ``variant`` 'd2', 'greedy' (scikit-learn's), 'rejection' (RS-k-means++) or 'auto'."""
    return run(X, k, "kmeans++", seed=seed, threads=threads, variant=variant, trials=trials, assign=assign,
               metric=metric)


def kmeans(X, k: int, *, iters: int = 20, seed: int = 0, variant: str = "auto", metric: str = "l2",
           threads: int = 0) -> SampleResult:
    """Lloyd's k-means from k-means++ seeds; picks are the rows nearest each centroid (weight: cluster size)."""
    return run(X, k, "kmeans", seed=seed, threads=threads, iters=iters, variant=variant, metric=metric)


def weighted(weights, n: int, *, seed: int = 0, replace: bool = False) -> SampleResult:
    """Weighted sampling: without replacement (Efraimidis-Spirakis) or with replacement (alias table)."""
    return run(None, n, "weighted", seed=seed, weights=weights, replace=replace)


def sensitivity(X, n: int, *, k: Optional[int] = None, iters: Optional[int] = None, seed: int = 0,
                metric: str = "l2", threads: int = 0) -> SampleResult:
    """Sensitivity-sampling coreset: sum(weight * f(x)) over the picks estimates the sum over all rows."""
    return run(X, n, "sensitivity", seed=seed, threads=threads, k=k, iters=iters, metric=metric)


def balanced(X, n: int, *, levels: Optional[Sequence[int]] = None, pick: str = "random",
             iters: Optional[int] = None, seed: int = 0, metric: str = "l2", threads: int = 0) -> SampleResult:
    """Hierarchical k-means (``levels``, finest first) then a balanced split of n over the clusters."""
    return run(X, n, "balanced", seed=seed, threads=threads, levels=levels, pick=pick, iters=iters, metric=metric)


def kernel_thinning(X, n: int, *, bandwidth: Optional[float] = None, g: Optional[int] = 4, swap: bool = True,
                    seed: int = 0, metric: str = "l2", threads: int = 0) -> SampleResult:
    """Kernel thinning (Gaussian kernel, median-heuristic bandwidth) with Compress++ (``g=None``: plain KT)."""
    return run(X, n, "kernel_thinning", seed=seed, threads=threads, bandwidth=bandwidth,
               g="none" if g is None else g, swap=swap, metric=metric)


def dpp(X, n: int, *, kernel: str = "linear", bandwidth: Optional[float] = None, rank: Optional[int] = None,
        seed: int = 0, metric: str = "l2") -> SampleResult:
    """k-DPP sample over a linear kernel or random Fourier features of a Gaussian (``kernel='rbf'``)."""
    return run(X, n, "dpp", seed=seed, kernel=kernel, bandwidth=bandwidth, rank=rank, metric=metric)


def depth(X, n: int, *, order: str = "deepest", metric: str = "cosine", sample: Optional[int] = None, seed: int = 0,
          threads: int = 0) -> SampleResult:
    """Depth-ranked selection: the ``n`` deepest rows (``order='deepest'``, a set's representatives) or the
    ``n`` shallowest (``order='shallowest'``, its outliers) by TTE depth (Seegmiller & Preum, EMNLP 2023).

    ``score`` is each pick's depth relative to all rows of ``X`` (``knnsql.analytics.depth``), ``weight``
    is ``len(X) / n``. ``metric``: ``'cosine'`` (exact in O(n d)), ``'chord'`` or ``'l2'`` (exact in
    O(n^2 d), or over ``sample`` reference rows drawn with ``seed``). Ties go to the lower row.
    """
    return run(X, n, "depth", seed=seed, threads=threads, order=order, metric=metric, sample=sample)


def assign(X, centroids, *, threads: int = 0):
    """Nearest centroid of every row: ``(assign int32, dist2 float32, cost float)``."""
    lib, ffi = _ffi.lib(), _ffi.ffi
    X = _as_rows(X)
    C = _as_rows(centroids)
    if C.shape[1] != X.shape[1]:
        raise _ffi.KnnError(f"dimension mismatch: rows have {X.shape[1]} elements, centroids {C.shape[1]}")
    a = np.empty(X.shape[0], dtype=np.int32)
    d = np.empty(X.shape[0], dtype=np.float32)
    cost = ffi.new("double *")
    err = _ffi.errbuf()
    status = lib.knn_sample_assign(ffi.cast("float *", X.ctypes.data), X.shape[0], X.shape[1],
                                   ffi.cast("float *", C.ctypes.data), C.shape[0], int(threads),
                                   ffi.cast("int32_t *", a.ctypes.data), ffi.cast("float *", d.ctypes.data), cost,
                                   err, _ffi.ERRMSG_LEN)
    _ffi.check(status, err)
    return a, d, float(cost[0])


# ---- SQL --------------------------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def _quote(name: str) -> str:
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _source_sql(source: Any) -> str:
    if hasattr(source, "sql_query"):  # a DuckDB relation
        return f"({source.sql_query()})"
    if not isinstance(source, str) or not source.strip():
        raise TypeError("source must be a table name, a SQL query or a DuckDB relation")
    if _IDENT.fullmatch(source.strip()):
        return _quote(source.strip())
    return f"({source})"


def sample_sql(source: Any, n: int, method: str = "kcenter", *, seed: int = 0, where: Optional[str] = None,
               id: str = "id", vec: str = "emb", weight: Optional[str] = None, replace: bool = False,
               **options: Any) -> str:
    """The SQL :func:`sample` runs (``$n`` and ``$seed`` are bound parameters)."""
    if method not in METHODS:
        raise _ffi.KnnError(f"unknown sampling method '{method}'; use one of {', '.join(METHODS)}")
    src = _source_sql(source)
    filt = f" WHERE {render(parse_filter(where, None))}" if where else ""
    if method == "weighted":
        if weight is None:
            raise _ffi.KnnError("weighted: method 'weighted' needs a weight column; pass weight='column'")
        agg = (f"knn_sample_weighted(CAST({_quote(id)} AS BIGINT), CAST({_quote(weight)} AS DOUBLE), $n, $seed, "
               f"{'true' if replace else 'false'})")
    else:
        if weight is not None:
            raise _ffi.KnnError(f"{method}: weights are for method 'weighted'")
        text = options_text(options).replace("'", "''")
        agg = f"knn_sample_agg(CAST({_quote(id)} AS BIGINT), {_quote(vec)}, $n, '{method}', $seed, '{text}')"
    return (f"SELECT p.id, p.weight, p.pick_order, p.score, p.cluster FROM "
            f"(SELECT unnest({agg}) AS p FROM {src} AS _src{filt}) ORDER BY p.pick_order")


def _normalised_options(options: dict) -> dict:
    """Method options as sample_sql takes them (start ids as 'a/b/c')."""
    options = dict(options)
    if "start" in options and options["start"] is not None and not isinstance(options["start"], str):
        options["start"] = "/".join(str(int(v)) for v in options["start"])
    return options


def sample(db, source: Any, n: int, method: str = "kcenter", *, seed: int = 0, where: Optional[str] = None,
           id: str = "id", vec: str = "emb", weight: Optional[str] = None, replace: bool = False, **options: Any):
    """Samples rows of a table or query in SQL and returns a pandas DataFrame.

    Parameters
    ----------
    db : knnsql.Database or duckdb.DuckDBPyConnection
        A connection with the extension loaded (``knnsql.connect()``).
    source : str or DuckDB relation
        A table or view name, a SQL query, or a relation.
    n : int
        Picks wanted (>= 1); more than the rows returns every row (see the reference for each method).
    method : str
        One of :data:`METHODS`.
    seed : int
        Same seed, same picks.
    where : str, optional
        A SQL condition on the source's columns, e.g. ``"lang = 'en'"``.
    id, vec : str
        The id (integer) and vector column names.
    weight : str, optional
        The weight column (``method='weighted'`` only); ``replace`` draws with replacement.
    **options
        Method options (``iters=``, ``variant=``, ``levels=``, ``metric=``, ``start=``...).

    Returns
    -------
    pandas.DataFrame
        Columns ``id, weight, pick_order, score, cluster``, one row per pick, in pick order.

    Notes
    -----
    A call that runs over a second shows a progress line on a terminal (docs/PROGRESS.md): the share of
    rows read, then the time spent computing the picks. ``KNNSQL_PROGRESS=0`` switches it off.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer, got {type(n).__name__}")
    options = _normalised_options(options)
    sql = sample_sql(source, n, method, seed=seed, where=where, id=id, vec=vec, weight=weight, replace=replace,
                     **options)
    con = getattr(db, "con", db)
    with _progress.watch(con, f"sampling {method}"):
        return con.execute(sql, {"n": int(n), "seed": int(seed)}).df()
