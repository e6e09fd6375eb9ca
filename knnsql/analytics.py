"""kNN analytics on numpy arrays and on DuckDB relations: prediction, imputation, SMOTE, divergence,
drift test, generative precision/recall, intrinsic dimension, importance / density sampling, the
recall audit of an ANN index, statistical depth and its rank test, kNN entropy, kernel density,
prototype classification and kNN interpolation.

Two kinds of entry point, one C core (``ext/core/analytics/*.c``):

* numpy functions (``predict``, ``impute``, ``smote``, ``divergence``, ``lid``, ``precision_recall``,
  ``iid_test``, ``importance_sample``, ``density_sample``, ``recall_audit``) take arrays and return
  arrays or small dataclasses; no database needed.
* ``depth``, ``depth_test``, ``entropy``, ``kde``, ``prototype_predict`` and ``interpolate`` take arrays
  too, but run their SQL aggregate (``knn_depth``, ...) on the arrays registered as Arrow tables on an
  in-memory DuckDB connection (or on ``db=``).
* ``sql_*`` functions take a DuckDB connection (or ``knnsql.Database``) and a table name or a SQL
  query, run the matching SQL aggregate (``knn_predict``, ``knn_impute``, ...; see
  ``sql/reference/knn_analytics.md``) inside DuckDB and return a pandas DataFrame or a dict. A call
  that runs over a second shows a progress line on a terminal (docs/PROGRESS.md; ``KNNSQL_PROGRESS=0``
  switches it off).

Every randomised function takes ``seed`` and gives the same answer for the same seed at any thread
count. Distances follow the project's metrics: ``l2`` is squared Euclidean, ``cosine`` is ``1 - cos``,
``ip`` is the negative inner product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from . import _ffi, _progress
from ._sql import parse_filter, render

__all__ = [
    "neighbors", "predict", "PredictResult", "impute", "ImputeResult", "smote", "SmoteResult", "divergence", "lid",
    "precision_recall", "iid_test", "IIDResult", "importance_sample", "density_sample", "recall_audit",
    "sql_predict", "sql_impute", "sql_smote", "sql_divergence", "sql_lid", "sql_precision_recall", "sql_iid_test", "sql_iid_scores",
    "sql_importance_sample", "sql_density_sample", "sql_recall",
    "depth", "DepthTest", "depth_test", "sql_depth", "sql_depth_test", "entropy", "sql_entropy", "kde", "KDEResult",
    "sql_kde", "prototype_predict", "PrototypeResult", "sql_prototype", "interpolate", "sql_interpolate",
]

_WEIGHTINGS = {"uniform": 0, "distance": 1, "inverse_distance": 1, "softmax": 2}
_DIVERGENCE = {"kl": 0, "renyi": 1, "ratio_kl": 2, "ratio_renyi": 3}


# ---- argument helpers ---------------------------------------------------------------------------------

def _matrix(X, what: str, dim: Optional[int] = None) -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (rows x dim), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} is empty; give at least one row")
    if arr.shape[1] == 0:
        raise ValueError(f"{what} has zero columns; vectors need at least one dimension")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"dimension mismatch: {what} has {arr.shape[1]} columns, expected {dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise ValueError(f"{what} row {bad} has a NaN or Inf; vectors must be finite")
    return arr


def _int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _weighting(w: str) -> int:
    if w not in _WEIGHTINGS:
        raise ValueError(f"unknown weighting {w!r}; use 'uniform', 'distance' or 'softmax'")
    return _WEIGHTINGS[w]


def _ptr(kind: str, arr):
    return _ffi.ffi.from_buffer(kind + "[]", arr)


def _call(fn, *args):
    buf = _ffi.errbuf()
    _ffi.check(fn(*args, buf, _ffi.ERRMSG_LEN), buf)


def neighbors(X, Q=None, k: int = 10, *, metric: str = "l2", threads: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of ``X`` for each query (row positions and distances).

    With ``Q=None`` the queries are the rows of ``X`` themselves and each row's own position is left out
    (the leave-one-out graph); then ``k`` must be smaller than ``len(X)``.
    """
    X = _matrix(X, "X")
    k = _int("k", k, 1)
    self_ = Q is None
    Qm = X if self_ else _matrix(Q, "Q", X.shape[1])
    nq = Qm.shape[0]
    ids = np.empty((nq, k), dtype=np.int64)
    dists = np.empty((nq, k), dtype=np.float32)
    lib = _ffi.lib()
    _call(lib.knn_an_neighbors, _ptr("float", X), X.shape[0], _ptr("float", Qm), 0 if self_ else nq, X.shape[1],
          metric.encode(), k, int(self_), _int("threads", threads, 0), _ptr("int64_t", ids), _ptr("float", dists))
    return ids, dists


def _index_neighbors(index, Q, k: int, ef: Optional[int], n_train: int) -> Tuple[np.ndarray, np.ndarray]:
    """Neighbours from a knnsql.Index whose ids are the training row positions 0..n-1."""
    if len(index) != n_train:
        raise ValueError(f"the index holds {len(index)} rows but {n_train} training rows were given; build it over "
                         "the training rows with ids 0..n-1")
    kwargs = {} if ef is None or index.kind == "flat" else {"ef": ef}
    ids, dists = index.search(Q, k, **kwargs)
    if ids.shape[1] < k:
        raise ValueError(f"the index returned {ids.shape[1]} neighbours, fewer than k = {k}")
    return np.ascontiguousarray(ids), np.ascontiguousarray(dists)


# ---- prediction ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PredictResult:
    """Predictions for each query row.

    ``labels``: predicted class (classification) or value (regression). ``prob``: the winning class's
    weighted vote share (classification; None for regression). ``probs``: per-class vote shares, columns
    in the order of ``classes``. ``k_used``: neighbours used per query (differs from k with adaptive k).
    ``stage`` (with ``refine_ef``; else None): which search gave each query's neighbours, 0 the first
    beam, 1 the ``refine_ef`` beam, 2 the exact scan.
    """
    labels: np.ndarray
    prob: Optional[np.ndarray]
    probs: Optional[np.ndarray]
    classes: Optional[np.ndarray]
    k_used: np.ndarray
    stage: Optional[np.ndarray] = None


#: A vote is unsettled when replacing this many of its k neighbours could change it (refine_ef).
REFINE_FLIPS = 2


def _unsettled(nbr, dist, k: int, codes, n_classes: int, metric: str, w: int, temperature: float) -> np.ndarray:
    out = np.empty(nbr.shape[0], dtype=np.uint8)
    _call(_ffi.lib().knn_an_unsettled, _ptr("int64_t", nbr), _ptr("float", dist), nbr.shape[0], nbr.shape[1], k,
          _ptr("int32_t", codes), len(codes), n_classes, metric.encode(), w, float(temperature), REFINE_FLIPS,
          _ptr("uint8_t", out))
    return out.astype(bool)


def _refine(X, Q, index, nbr, dist, k: int, refine_ef: int, codes, n_classes: int, metric: str, w: int,
            temperature: float, threads: int) -> np.ndarray:
    """The refine_ef cascade over first-pass graph neighbours (updated in place); returns the stages.

    Unsettled queries (every query when regressing) are searched again with beam refine_ef; those
    whose k-th distance dropped (the first beam had not converged) and whose vote is still unsettled
    get an exact scan of the index's rows. See knn_an_unsettled in ext/core/knn_analytics_predict.c.
    """
    stage = np.zeros(nbr.shape[0], dtype=np.int8)
    clf = codes is not None
    sel = np.flatnonzero(_unsettled(nbr, dist, k, codes, n_classes, metric, w, temperature) if clf
                         else np.ones(nbr.shape[0], bool))
    if sel.size == 0:
        return stage
    n2, d2 = _index_neighbors(index, Q[sel], nbr.shape[1], refine_ef, X.shape[0])
    moved = d2[:, k - 1] < dist[sel, k - 1]
    nbr[sel], dist[sel], stage[sel] = n2, d2, 1
    still = _unsettled(n2, d2, k, codes, n_classes, metric, w, temperature) if clf else np.ones(sel.size, bool)
    ex = sel[moved & still]
    if ex.size:
        nbr[ex], dist[ex] = _index_exact(index, Q[ex], nbr.shape[1], threads)
        stage[ex] = 2
    return stage


def _index_exact(index, Q, k: int, threads: int) -> Tuple[np.ndarray, np.ndarray]:
    """Exact neighbours by a scan of a graph index's own rows (no copy of the training matrix)."""
    Q = np.ascontiguousarray(Q, dtype=np.float32)
    ffi = _ffi.ffi
    ids = np.empty((Q.shape[0], k), dtype=np.int64)
    dists = np.empty((Q.shape[0], k), dtype=np.float32)
    found = np.empty(Q.shape[0], dtype=np.uintp)
    _call(_ffi.lib().knn_graph_query_exact, index._handle, _ptr("float", Q), Q.shape[0], k, threads,
          _ptr("int64_t", ids), _ptr("float", dists), ffi.cast("size_t *", _ptr("size_t", found)))
    if (found < k).any():
        raise ValueError(f"the index holds fewer than k = {k} live rows")
    return ids, dists


def predict(X, y, Q, k: int = 5, *, task: str = "auto", weighting: str = "uniform", temperature: float = 1.0,
            metric: str = "l2", adaptive: bool = False, support: int = 25, index=None, ef: Optional[int] = None,
            refine_ef: Optional[int] = None, threads: int = 0) -> PredictResult:
    """kNN classification or regression of the query rows ``Q`` from training rows ``X`` with targets ``y``.

    Parameters
    ----------
    X, y : training vectors (n x d) and their labels / values (n).
    Q : query vectors (nq x d).
    k : neighbours (with ``adaptive=True``: the largest k considered).
    task : ``'classification'``, ``'regression'`` or ``'auto'`` (float targets regress, others classify).
    weighting : ``'uniform'`` (scikit-learn's default), ``'distance'`` (1 / Euclidean distance, as
        scikit-learn's ``weights='distance'``) or ``'softmax'`` (``exp(-distance / temperature)``).
    adaptive : choose k per query in 1..k by the expected accuracy of the query's ``support`` nearest
        training rows (their leave-one-out votes); classification only.
    index : optional ``knnsql.Index`` built over ``X`` with ids ``0..n-1``; a graph index makes the
        search approximate and much faster (``ef`` sets its beam width).
    refine_ef : with a graph index, a second beam of this width for the queries whose vote is unsettled
        (replacing ``REFINE_FLIPS`` = 2 of the k neighbours could change it; every query when
        regressing), then an exact scan for those of them whose k-th distance the second beam lowered
        and whose vote is still unsettled. It buys exact search's predictions where a miss could change
        them, at little cost where it could not. ``stage`` in the result tells which search served each
        query.

    Notes
    -----
    With uniform weights and exact search this equals ``KNeighborsClassifier(k)`` /
    ``KNeighborsRegressor(k)`` (ties between classes go to the smaller label).
    """
    X = _matrix(X, "X")
    Q = _matrix(Q, "Q", X.shape[1])
    y = np.asarray(y)
    n = X.shape[0]
    if y.shape != (n,):
        raise ValueError(f"y must have one label per training row: got shape {y.shape}, expected ({n},)")
    k = _int("k", k, 1)
    if k > n:
        raise ValueError(f"k = {k} is larger than the {n} training rows; lower k")
    w = _weighting(weighting)
    if task == "auto":
        task = "regression" if np.issubdtype(y.dtype, np.floating) else "classification"
    if task not in ("classification", "regression"):
        raise ValueError(f"unknown task {task!r}; use 'classification', 'regression' or 'auto'")
    if task == "regression":
        y = np.ascontiguousarray(y, dtype=np.float64)
        if np.isnan(y).any():
            raise ValueError("y has NaN (missing) targets; drop those rows or impute them first")
    elif y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError("y has NaN (missing) labels; drop those rows or impute them first")
    if adaptive and task != "classification":
        raise ValueError("adaptive k applies to classification only")
    if refine_ef is not None:
        refine_ef = _int("refine_ef", refine_ef, 1)
        if index is None or index.kind != "graph":
            raise ValueError("refine_ef re-searches the queries of a graph index search; pass index= a knnsql.Index "
                             "of kind='graph' (exact search needs no refinement)")
        if adaptive:
            raise ValueError("refine_ef and adaptive=True cannot be combined; use one of them")
    support = _int("support", support, 1)
    kq = max(k, support) if adaptive else k
    if kq > n:
        raise ValueError(f"support = {support} is larger than the {n} training rows; lower it")
    classes, codes = None, None
    if task == "classification":
        classes, codes = np.unique(y, return_inverse=True)
        codes = np.ascontiguousarray(codes, dtype=np.int32)
    stage = None
    if index is None:
        nbr, dist = neighbors(X, Q, kq, metric=metric, threads=threads)
    else:
        nbr, dist = _index_neighbors(index, Q, kq, ef, n)
        metric = index.metric
        if refine_ef is not None:
            stage = _refine(X, Q, index, nbr, dist, k, refine_ef, codes, 0 if classes is None else len(classes),
                            metric, w, temperature, threads)
    nq = Q.shape[0]
    lib = _ffi.lib()
    k_used = np.full(nq, k, dtype=np.uintp)
    kptr = _ffi.ffi.NULL
    if task == "regression":
        out = np.empty(nq, dtype=np.float64)
        _call(lib.knn_an_regress, _ptr("int64_t", nbr), _ptr("float", dist), nq, kq, k, _ptr("double", y), n,
              metric.encode(), w, float(temperature), kptr, _ptr("double", out))
        return PredictResult(out, None, None, None, k_used.astype(np.int64), stage)
    if adaptive:
        if k >= n:
            raise ValueError(f"adaptive k needs k < {n} training rows (leave-one-out votes)")
        tn, td = (neighbors(X, None, k, metric=metric, threads=threads) if index is None
                  else _loo_from_index(index, X, k, ef))
        _call(lib.knn_an_adaptive_k, _ptr("int64_t", tn), _ptr("float", td), n, k, _ptr("int32_t", codes),
              len(classes), _ptr("int64_t", nbr), nq, kq, k, support, metric.encode(), w, float(temperature),
              _ffi.ffi.cast("size_t *", _ptr("size_t", k_used)))
        kptr = _ffi.ffi.cast("size_t *", _ptr("size_t", k_used))
    lab = np.empty(nq, dtype=np.int32)
    prob = np.empty(nq, dtype=np.float64)
    probs = np.empty((nq, len(classes)), dtype=np.float64)
    _call(lib.knn_an_classify, _ptr("int64_t", nbr), _ptr("float", dist), nq, kq, k, _ptr("int32_t", codes), n,
          len(classes), metric.encode(), w, float(temperature), kptr, _ptr("int32_t", lab), _ptr("double", prob),
          _ptr("double", probs))
    return PredictResult(classes[lab], prob, probs, classes, k_used.astype(np.int64), stage)


def _loo_from_index(index, X, k: int, ef: Optional[int]):
    """Leave-one-out neighbours of the training rows through an index (k + 1, own row dropped)."""
    ids, dists = _index_neighbors(index, X, k + 1, ef, X.shape[0])
    n = X.shape[0]
    out_i = np.empty((n, k), dtype=np.int64)
    out_d = np.empty((n, k), dtype=np.float32)
    for i in range(n):
        keep = ids[i] != i
        ii, dd = ids[i][keep][:k], dists[i][keep][:k]
        out_i[i], out_d[i] = ii, dd
    return out_i, out_d


# ---- imputation ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImputeResult:
    """One row per missing value: ``rows`` (positions in the input), ``mean`` (kNNImputer value),
    ``draws`` (rows x draws, kNNSampler imputations), and the ``lo`` / ``hi`` neighbour-value quantiles."""
    rows: np.ndarray
    mean: np.ndarray
    draws: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def filled(self, y) -> np.ndarray:
        """``y`` with its missing values replaced by the means."""
        out = np.array(y, dtype=np.float64, copy=True)
        out[self.rows] = self.mean
        return out


def impute(X, y, k: int = 5, *, weighting: str = "uniform", draws: int = 0, seed: int = 0,
           interval: Tuple[float, float] = (0.05, 0.95), metric: str = "l2", threads: int = 0) -> ImputeResult:
    """Imputes the missing (NaN) entries of ``y`` from the k nearest rows (by covariates ``X``) whose
    ``y`` is observed.

    The mean is scikit-learn's ``KNNImputer`` (``weights='uniform'`` or ``'distance'``) when ``X`` is
    complete; ``draws > 0`` adds kNNSampler draws (each the value of one uniformly chosen neighbour), for
    multiple imputation; ``interval`` gives quantiles of the k neighbour values.
    """
    X = _matrix(X, "X")
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one value per row of X: got shape {y.shape}, expected ({X.shape[0]},)")
    k = _int("k", k, 1)
    draws = _int("draws", draws, 0)
    w = _weighting(weighting)
    if w == 2:
        raise ValueError("impute supports weighting 'uniform' or 'distance'")
    miss = np.flatnonzero(np.isnan(y))
    donors = np.flatnonzero(~np.isnan(y))
    if len(donors) == 0:
        raise ValueError("no row has an observed value to impute from")
    if k > len(donors):
        raise ValueError(f"k = {k} is larger than the {len(donors)} rows with an observed value; lower k")
    nq = len(miss)
    mean = np.empty(nq)
    dr = np.empty((nq, draws))
    lo = np.empty(nq)
    hi = np.empty(nq)
    if nq:
        nbr, dist = neighbors(X[donors], X[miss], k, metric=metric, threads=threads)
        yd = np.ascontiguousarray(y[donors])
        _call(_ffi.lib().knn_an_impute, _ptr("int64_t", nbr), _ptr("float", dist), nq, k, k, _ptr("double", yd),
              len(donors), metric.encode(), w, draws, int(seed) & (2**64 - 1), float(interval[0]), float(interval[1]),
              _ptr("double", mean), _ptr("double", dr) if draws else _ffi.ffi.NULL, _ptr("double", lo),
              _ptr("double", hi))
    return ImputeResult(miss, mean, dr, lo, hi)


# ---- SMOTE ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SmoteResult:
    """Synthetic rows ``vecs`` = parent + gap * (neighbour - parent); ``parent`` and ``neighbor`` are row
    positions in the minority input."""
    vecs: np.ndarray
    parent: np.ndarray
    neighbor: np.ndarray
    gap: np.ndarray


def smote(X_minority, n: int, k: int = 5, *, seed: int = 0, metric: str = "l2", threads: int = 0) -> SmoteResult:
    """SMOTE: ``n`` synthetic minority rows on segments between a minority row and one of its k nearest
    minority neighbours (imbalanced-learn's convention: one gap per row, parents drawn uniformly)."""
    X = _matrix(X_minority, "X_minority")
    n = _int("n", n, 0)
    k = _int("k", k, 1)
    if k >= X.shape[0]:
        raise ValueError(f"k = {k} needs at least k + 1 = {k + 1} minority rows, got {X.shape[0]}; lower k")
    nbr, _ = neighbors(X, None, k, metric=metric, threads=threads)
    d = X.shape[1]
    vecs = np.empty((n, d), dtype=np.float32)
    parent = np.empty(n, dtype=np.int64)
    nb = np.empty(n, dtype=np.int64)
    gap = np.empty(n)
    if n:
        _call(_ffi.lib().knn_an_smote, _ptr("float", X), X.shape[0], d, _ptr("int64_t", nbr), k, k, n,
              int(seed) & (2**64 - 1), _ptr("float", vecs), _ptr("int64_t", parent), _ptr("int64_t", nb),
              _ptr("double", gap))
    return SmoteResult(vecs, parent, nb, gap)


# ---- estimators -----------------------------------------------------------------------------------------

def divergence(P, Q, k: int = 5, *, method: str = "kl", alpha: float = 0.5, threads: int = 0) -> float:
    """kNN estimate of D(P || Q) between two samples (Euclidean distances).

    ``method``: ``'kl'`` (Wang, Kulkarni & Verdú 2009), ``'renyi'`` (Rényi-``alpha``, Póczos & Schneider
    2011), ``'ratio_kl'`` / ``'ratio_renyi'`` (nearest-neighbour-ratio estimator, Noshad et al. 2017).

    Regimes of the ratio estimators (they need no dimension, but the neighbour counts are Binomial(k, .)
    whatever n is, so their bias is set by ``k``): ``'ratio_renyi'`` with ``alpha < 1`` corrects the count
    noise (a Gamma-ratio form of the density-ratio power, about 0.02 off at ``k = 10`` on two unit Gaussians
    one apart, where the plain plug-in reads 0.17 high). With ``alpha > 1`` and for ``'ratio_kl'`` the
    estimate is carried by rows where P dominates, where the ratio saturates at ``k * m / n``: expect an
    error of order ``1 / k`` and use ``k`` near ``sqrt(n + m)``, or ``'kl'`` / ``'renyi'``.
    """
    P = _matrix(P, "P")
    Q = _matrix(Q, "Q", P.shape[1])
    if method not in _DIVERGENCE:
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(map(repr, _DIVERGENCE))}")
    out = _ffi.ffi.new("double *")
    _call(_ffi.lib().knn_an_divergence, _ptr("float", P), P.shape[0], _ptr("float", Q), Q.shape[0], P.shape[1],
          _int("k", k, 1), _DIVERGENCE[method], float(alpha), threads, out)
    return float(out[0])


def lid(X, k: int = 20, *, metric: str = "l2", threads: int = 0) -> Tuple[np.ndarray, float]:
    """Local intrinsic dimensionality (Levina–Bickel MLE) of every row, and the pooled table estimate
    (MacKay–Ghahramani: the inverse of the mean inverse). Rows with duplicate neighbours get NaN."""
    X = _matrix(X, "X")
    k = _int("k", k, 2)
    _, dist = neighbors(X, None, k, metric=metric, threads=threads)
    n = X.shape[0]
    out = np.empty(n)
    table = _ffi.ffi.new("double *")
    _call(_ffi.lib().knn_an_lid, _ptr("float", dist), n, k, k, metric.encode(), _ptr("double", out), _ffi.ffi.NULL,
          table)
    return out, float(table[0])


def precision_recall(real, fake, k: int = 5, *, metric: str = "l2", threads: int = 0) -> Dict[str, float]:
    """Generative-model metrics of ``fake`` against ``real``: precision, recall (Kynkäänniemi et al.),
    density, coverage (Naeem et al.), p_precision, p_recall (Park & Kim) and sym_precision, sym_recall."""
    R = _matrix(real, "real")
    F = _matrix(fake, "fake", R.shape[1])
    out = np.empty(8)
    _call(_ffi.lib().knn_an_precision_recall, _ptr("float", R), R.shape[0], _ptr("float", F), F.shape[0],
          R.shape[1], metric.encode(), _int("k", k, 1), threads, _ptr("double", out))
    names = ("precision", "recall", "density", "coverage", "p_precision", "p_recall", "sym_precision", "sym_recall")
    return dict(zip(names, map(float, out)))


@dataclass(frozen=True)
class IIDResult:
    """kNN drift / non-IID test: KS ``statistic``, permutation ``p_value``, ``non_iid`` (p < alpha) and
    per-row ``scores`` (mean neighbour index distance over its IID expectation; << 1 is suspicious)."""
    statistic: float
    p_value: float
    non_iid: bool
    scores: np.ndarray


def iid_test(X, k: int = 10, *, permutations: int = 100, seed: int = 0, alpha: float = 0.05, metric: str = "l2",
             threads: int = 0) -> IIDResult:
    """Tests whether the rows of ``X``, in the given order, look IID (no drift): near neighbours in
    feature space should not sit near each other in the order."""
    X = _matrix(X, "X")
    k = _int("k", k, 1)
    nbr, _ = neighbors(X, None, k, metric=metric, threads=threads)
    n = X.shape[0]
    stat, p = _ffi.ffi.new("double *"), _ffi.ffi.new("double *")
    scores = np.empty(n)
    _call(_ffi.lib().knn_an_iid_test, _ptr("int64_t", nbr), n, k, k, _int("permutations", permutations, 1),
          int(seed) & (2**64 - 1), stat, p, _ptr("double", scores))
    return IIDResult(float(stat[0]), float(p[0]), bool(p[0] < alpha), scores)


# ---- sampling -------------------------------------------------------------------------------------------

def _gumbel(logw: np.ndarray, n: int, seed: int) -> np.ndarray:
    rank = np.empty(len(logw), dtype=np.int64)
    logw = np.ascontiguousarray(logw, dtype=np.float64)
    _call(_ffi.lib().knn_an_gumbel_topk, _ptr("double", logw), len(logw), _int("n", n, 0), int(seed) & (2**64 - 1),
          _ptr("int64_t", rank))
    return rank


def importance_sample(raw, target, n: int, k: int = 10, *, seed: int = 0, metric: str = "l2",
                      threads: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """DSIR-style importance resampling: picks ``n`` rows of ``raw`` (without replacement, Gumbel-top-k)
    with probability ∝ the kNN density ratio p_target / p_raw. Returns (picked row positions in draw
    order, log weight of every raw row)."""
    R = _matrix(raw, "raw")
    T = _matrix(target, "target", R.shape[1])
    Z = np.concatenate([R, T])
    k = _int("k", k, 1)
    nbr, _ = neighbors(Z, None, k, metric=metric, threads=threads)
    nbr = np.ascontiguousarray(nbr[: len(R)])
    logw = np.empty(len(R))
    _call(_ffi.lib().knn_an_importance, _ptr("int64_t", nbr), len(R), k, k, len(T), _ptr("double", logw))
    rank = _gumbel(logw, n, seed)
    return np.argsort(np.where(rank < 0, np.iinfo(np.int64).max, rank))[:n], logw


def density_sample(X, n: int, k: int = 10, *, alpha: float = 1.0, seed: int = 0, metric: str = "l2",
                   threads: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Density (coverage) sampling: picks ``n`` rows with probability ∝ r_k^alpha, r_k the distance to the
    k-th neighbour (alpha = dim is p ∝ 1 / kNN density; 0 is uniform). Returns (picked positions in draw
    order, log weights)."""
    X = _matrix(X, "X")
    k = _int("k", k, 1)
    _, dist = neighbors(X, None, k, metric=metric, threads=threads)
    logw = np.empty(X.shape[0])
    _call(_ffi.lib().knn_an_density_logw, _ptr("float", dist), X.shape[0], k, k, metric.encode(), float(alpha),
          _ptr("double", logw))
    rank = _gumbel(logw, n, seed)
    return np.argsort(np.where(rank < 0, np.iinfo(np.int64).max, rank))[:n], logw


def recall_audit(index, Q, k: int = 10, *, ef: Optional[int] = None, windows: Optional[Sequence] = None,
                 threads: int = 0):
    """Recall@k of a graph ``knnsql.Index`` against exact search over its own rows, per query.

    ``windows``: optional list of ``(lo, hi)`` label windows, of fractions ``f`` in (0, 1] meaning the
    window over the lowest fraction ``f`` of the label range, or ``None`` for the whole index. Returns a pandas DataFrame with columns
    ``query, window, lo, hi, recall``.
    """
    import pandas as pd

    if index.kind != "graph":
        raise ValueError("recall_audit needs a graph index (a flat index is exact: its recall is 1)")
    Q = _matrix(Q, "Q", index.dim)
    k = _int("k", k, 1)
    ef = 0 if ef is None else _int("ef", ef, 1)
    specs = [None] if windows is None else list(windows)
    lab_lo = lab_hi = None
    rows = []
    for w in specs:
        if w is None or (isinstance(w, tuple) and w == (None, None)):
            lo, hi, windowed = -np.inf, np.inf, 0
        elif np.isscalar(w):
            f = float(w)
            if not 0 < f <= 1:
                raise ValueError(f"window fraction must be in (0, 1], got {f}")
            if lab_lo is None:
                lo_p, hi_p = _ffi.ffi.new("double *"), _ffi.ffi.new("double *")
                if not _ffi.lib().knn_graph_label_range(index._handle, lo_p, hi_p):
                    raise ValueError("window fractions need a labelled index; add rows with labels")
                lab_lo, lab_hi = lo_p[0], hi_p[0]
            lo, hi, windowed = lab_lo, lab_lo + f * (lab_hi - lab_lo), 1
        else:
            lo, hi = (-np.inf if w[0] is None else float(w[0])), (np.inf if w[1] is None else float(w[1]))
            windowed = 1
        rec = np.empty(Q.shape[0])
        _call(_ffi.lib().knn_an_graph_recall, index._handle, _ptr("float", Q), Q.shape[0], k, ef, windowed, lo, hi,
              threads, _ptr("double", rec))
        for i, r in enumerate(rec):
            rows.append((i, "all" if not windowed else (f"{float(w):g}" if np.isscalar(w) else f"[{lo:g}, {hi:g}]"),
                         lo, hi, r))
    return pd.DataFrame(rows, columns=["query", "window", "lo", "hi", "recall"])


# ---- SQL entry points: the aggregates over a table or query, run inside DuckDB ------------------------------

def _con(db):
    """The DuckDB connection of a knnsql.Database, or db itself."""
    return getattr(db, "con", db)


def _quote_ident(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"column and table names must be non-empty strings, got {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _relation(relation: str) -> str:
    """A table name (quoted) or a query (parenthesised)."""
    if not isinstance(relation, str) or not relation.strip():
        raise TypeError("relation must be a table name or a SQL query string")
    text = relation.strip()
    head = text.split(None, 1)[0].upper()
    if head in ("SELECT", "WITH", "FROM", "VALUES", "(") or text.startswith("("):
        return f"({text})"
    return ".".join(_quote_ident(p) for p in text.split("."))


def _opts(**kw) -> str:
    parts = []
    for key, value in kw.items():
        if value is None or value is False:
            continue
        if value is True:
            value = "true"
        text = str(value)
        if "," in text or "=" in text:
            raise ValueError(f"option {key} must not contain ',' or '=': {text!r}")
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _run(db, sql: str, label: str, fetch: str = "df"):
    """Runs one analytics statement with a progress line on a terminal (``_progress.watch``) and returns
    ``.df()`` or, with ``fetch="one"``, the first row's first value."""
    con = _con(db)
    with _progress.watch(con, label):
        result = con.execute(sql)
        return result.df() if fetch == "df" else result.fetchall()[0][0]


def _run_list(db, agg: str, relation: str, where: Optional[str] = None):
    """Unnests a LIST(STRUCT) aggregate into a DataFrame."""
    cond = f" WHERE {render(parse_filter(where, None))}" if where else ""
    return _run(db, f"SELECT r.* FROM (SELECT unnest({agg}) AS r FROM {_relation(relation)}{cond})",
                agg.split("(", 1)[0])


def sql_predict(db, relation: str, *, k: int = 5, id: str = "id", vec: str = "emb", label: str = "label",
                weighting: str = "uniform", temperature: Optional[float] = None, metric: str = "l2",
                adaptive: bool = False, support: Optional[int] = None, index: Optional[str] = None,
                ef: Optional[int] = None, refine_ef: Optional[int] = None):
    """``knn_predict`` over a table or query: rows with a NULL ``label`` are predicted from the others.

    An integer label classifies (columns ``id, label, prob, k_used``); a floating-point or DECIMAL
    label regresses (``id, value, k_used``). Any other label type (VARCHAR, ENUM, BOOLEAN, DATE, ...)
    classifies too: the distinct labels are numbered in SQL sort order, ``knn_predict`` votes on the
    numbers and the predictions come back as labels (class ties go to the label that sorts first, as
    with integers and as scikit-learn's sorted classes). ``index`` names a knnsql index over the
    labelled rows' ids to search instead of an exact scan; with a graph index, ``refine_ef``
    re-searches the unsettled votes as ``predict`` does. Returns a pandas DataFrame.
    """
    o = _opts(metric=metric, weighting=weighting, temperature=temperature, adaptive=adaptive, support=support,
              index=index, ef=ef, refine_ef=refine_ef)
    qid, qvec, qlab = _quote_ident(id), _quote_ident(vec), _quote_ident(label)
    k = _int("k", k, 1)
    con = _con(db)
    rel = _relation(relation)
    ltype = con.execute(f"SELECT typeof({qlab}) FROM {rel} LIMIT 1").fetchone()
    if ltype is None or _numeric_label(ltype[0]):
        return _run_list(db, f"knn_predict({qid}, {qvec}, {qlab}, {k}, {_lit(o)})", relation)
    sql = (f"WITH src AS (SELECT {qid} AS i, {qvec} AS v, {qlab} AS l FROM {rel}), "
           "classes AS (SELECT l, (row_number() OVER (ORDER BY l) - 1)::BIGINT AS code "
           "FROM (SELECT DISTINCT l FROM src WHERE l IS NOT NULL)), "
           "coded AS (SELECT s.i, s.v, c.code FROM src s LEFT JOIN classes c ON s.l = c.l), "
           f"pred AS (SELECT unnest(knn_predict(i, v, code, {k}, {_lit(o)})) AS r FROM coded) "
           "SELECT r.id AS id, c.l AS label, r.prob AS prob, r.k_used AS k_used FROM pred JOIN classes c "
           "ON r.label = c.code")
    return _run(con, sql, "knn_predict")


_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "UHUGEINT"}


def _numeric_label(type_name: str) -> bool:
    """Types knn_predict takes as they are: integers classify, floats and decimals regress."""
    t = type_name.upper()
    return t in _INTEGER_TYPES or t in ("FLOAT", "DOUBLE", "REAL") or t.startswith("DECIMAL") or t == '"NULL"' \
        or t == "NULL"


def sql_impute(db, relation: str, *, k: int = 5, id: str = "id", vec: str = "emb", value: str = "value",
               weighting: str = "uniform", draws: int = 0, seed: int = 0, interval: Tuple[float, float] = (0.05, 0.95),
               metric: str = "l2"):
    """``knn_impute``: one row per NULL ``value`` with its kNNImputer mean, the [lo, hi] neighbour
    quantiles and ``draws`` kNNSampler draws. Returns a DataFrame ``id, value, lo, hi, draws``."""
    o = _opts(metric=metric, weighting=weighting, draws=draws or None, seed=seed, lo=interval[0], hi=interval[1])
    agg = f"knn_impute({_quote_ident(id)}, {_quote_ident(vec)}, {_quote_ident(value)}, {_int('k', k, 1)}, {_lit(o)})"
    return _run_list(db, agg, relation)


def sql_smote(db, relation: str, n: int, *, k: int = 5, id: str = "id", vec: str = "emb", where: Optional[str] = None,
              seed: int = 0, metric: str = "l2"):
    """``knn_smote`` over the minority rows (``where`` filters them, e.g. ``"label = 1"``): ``n`` synthetic
    rows ``parent_id, neighbor_id, gap, vec``."""
    agg = (f"knn_smote({_quote_ident(id)}, {_quote_ident(vec)}, {_int('n', n, 0)}, {_int('k', k, 1)}, "
           f"{_lit(_opts(metric=metric, seed=seed))})")
    return _run_list(db, agg, relation, where)


def sql_lid(db, relation: str, *, k: int = 20, id: str = "id", vec: str = "emb", metric: str = "l2"):
    """``knn_lid`` per row (``id, lid, r_k``) and ``knn_lid_estimate`` for the table: (DataFrame, float)."""
    rows = _run_list(db, f"knn_lid({_quote_ident(id)}, {_quote_ident(vec)}, {_int('k', k, 2)}, "
                         f"{_lit(_opts(metric=metric))})", relation)
    table = _run(db, f"SELECT knn_lid_estimate({_quote_ident(vec)}, {int(k)}, {_lit(_opts(metric=metric))}) "
                     f"FROM {_relation(relation)}", "knn_lid_estimate", "one")
    return rows, table


def sql_divergence(db, relation: str, side: str, *, k: int = 5, vec: str = "emb", method: str = "kl",
                   alpha: float = 0.5) -> float:
    """``knn_divergence(vec, side, k)``: D(P || Q) with P the rows where the boolean expression ``side``
    holds and Q the others."""
    o = _opts(method=method, alpha=alpha if method in ("renyi", "ratio_renyi") else None)
    return _run(db, f"SELECT knn_divergence({_quote_ident(vec)}, ({side})::BOOLEAN, {_int('k', k, 1)}, "
                    f"{_lit(o)}) FROM {_relation(relation)}", "knn_divergence", "one")


def sql_precision_recall(db, relation: str, generated: str, *, k: int = 5, vec: str = "emb",
                         metric: str = "l2") -> Dict[str, float]:
    """``knn_precision_recall(vec, generated, k)``: generated rows are those where the boolean expression
    ``generated`` holds, the others are real."""
    row = _run(db, f"SELECT knn_precision_recall({_quote_ident(vec)}, ({generated})::BOOLEAN, "
                   f"{_int('k', k, 1)}, {_lit(_opts(metric=metric))}) FROM {_relation(relation)}",
               "knn_precision_recall", "one")
    return dict(row)


def sql_iid_test(db, relation: str, order: str, *, k: int = 10, vec: str = "emb", permutations: int = 100,
                 seed: int = 0, significance: float = 0.05, metric: str = "l2") -> Dict[str, float]:
    """``knn_iid_test(order, vec, k)``: drift test over the row order given by the BIGINT expression
    ``order`` (e.g. ``"epoch_us(ts)"`` or ``"id"``)."""
    o = _opts(metric=metric, permutations=permutations, seed=seed, significance=significance)
    row = _run(db, f"SELECT knn_iid_test(({order})::BIGINT, {_quote_ident(vec)}, {_int('k', k, 1)}, {_lit(o)}) "
                   f"FROM {_relation(relation)}", "knn_iid_test", "one")
    return dict(row)


def sql_iid_scores(db, relation: str, order: str, *, k: int = 10, vec: str = "emb", metric: str = "l2"):
    """``knn_iid_scores``: per-row drift scores (``pos, score``; ~1 under IID, << 1 where neighbours sit
    next to each other in the order)."""
    agg = f"knn_iid_scores(({order})::BIGINT, {_quote_ident(vec)}, {_int('k', k, 1)}, {_lit(_opts(metric=metric))})"
    return _run_list(db, agg, relation)


def sql_importance_sample(db, relation: str, is_target: str, n: int, *, k: int = 10, id: str = "id",
                          vec: str = "emb", seed: int = 0, metric: str = "l2"):
    """``knn_importance_sample``: every raw row (``is_target`` false) with its log weight and its draw
    order ``pick`` (1..n, NULL when not picked)."""
    agg = (f"knn_importance_sample({_quote_ident(id)}, {_quote_ident(vec)}, ({is_target})::BOOLEAN, "
           f"{_int('n', n, 0)}, {_int('k', k, 1)}, {_lit(_opts(metric=metric, seed=seed))})")
    return _run_list(db, agg, relation)


def sql_density_sample(db, relation: str, n: int, *, k: int = 10, id: str = "id", vec: str = "emb",
                       alpha: float = 1.0, seed: int = 0, metric: str = "l2"):
    """``knn_density_sample``: every row with log weight ``alpha * log r_k`` and draw order ``pick``."""
    agg = (f"knn_density_sample({_quote_ident(id)}, {_quote_ident(vec)}, {_int('n', n, 0)}, {_int('k', k, 1)}, "
           f"{_lit(_opts(metric=metric, alpha=alpha, seed=seed))})")
    return _run_list(db, agg, relation)


def sql_recall(db, index: str, relation: str, *, k: int = 10, vec: str = "emb", ef: Optional[int] = None,
               lo: Optional[float] = None, hi: Optional[float] = None):
    """``knn_recall`` of the named graph index for every query row of ``relation``: a DataFrame with one
    ``recall`` column (summarise with ``.recall.mean()``)."""
    args = [_lit(index), _quote_ident(vec), str(_int("k", k, 1))]
    if ef is not None or lo is not None or hi is not None:
        args.append("NULL" if ef is None else str(_int("ef", ef, 1)))
    if lo is not None or hi is not None:
        args += ["NULL" if lo is None else repr(float(lo)), "NULL" if hi is None else repr(float(hi))]
    return _run(db, f"SELECT knn_recall({', '.join(args)}) AS recall FROM {_relation(relation)}", "knn_recall")


# ---- statistical depth and kNN estimators (wave 2): SQL aggregates, numpy through SQL ----------------------
#
# These run the SQL aggregates of sql/reference/knn_depth.md and knn_estimators.md. The numpy forms register
# the arrays as Arrow tables (zero-copy FLOAT[d] columns) on a DuckDB connection with knnsql loaded (``db``,
# or a private in-memory one opened for the call) and run one statement.

def _connection(db):
    """``db``'s DuckDB connection, or a new in-memory one with knnsql loaded (the caller closes it)."""
    if db is not None:
        return _con(db)
    import duckdb

    from . import _extension

    return _extension.load(duckdb.connect(config={"allow_unsigned_extensions": "true"}))


def _on_tables(db, tables: Dict[str, object], sql_of, fetch):
    """Registers ``tables`` under private names, runs ``sql_of(names)`` and returns ``fetch(result)``."""
    import uuid

    con = _connection(db)
    names = {}
    try:
        for key, tbl in tables.items():
            names[key] = f"_knnsql_{key}_{uuid.uuid4().hex[:12]}"
            con.register(names[key], tbl)
        sql = sql_of(names)
        with _progress.watch(con, sql.split("(", 1)[0].split()[-1]):
            return fetch(con.execute(sql))
    finally:
        for name in names.values():
            con.unregister(name)
        if db is None:
            con.close()


def _table(X, **columns):
    from ._arrow import vectors_table

    return vectors_table(X, columns=columns or None)


def _unnest(agg: str, table: str, fields: str) -> str:
    return f"SELECT {fields} FROM (SELECT unnest({agg}) AS r FROM {table}) ORDER BY r.id"


_DEPTH_METRICS = ("cosine", "chord", "l2")


def _depth_opts(metric: str, sample: Optional[int], seed: int, **more) -> str:
    if metric not in _DEPTH_METRICS:
        raise ValueError(f"unknown depth metric {metric!r}; use 'cosine', 'chord' or 'l2'")
    if sample is not None:
        sample = _int("sample", sample, 2)
        if metric == "cosine":
            raise ValueError("sample applies to metric 'chord' or 'l2'; cosine depth is exact in O(n d) without it")
    return _opts(metric=metric, sample=sample, seed=_int("seed", seed, 0) if sample else None, **more)


def depth(X, ref=None, *, metric: str = "cosine", sample: Optional[int] = None, seed: int = 0, db=None) -> np.ndarray:
    """Statistical (TTE) depth of every row of ``X``: how central it is to a set of embeddings.

    TTE depth (Seegmiller & Preum, EMNLP 2023) is ``D(x, F) = 2 - mean distance from x to the rows of F``
    for a distance bounded by 2; high depth = representative, low = outlier. With ``ref=None`` the set F
    is ``X`` itself and each row leaves itself out of its mean; with ``ref`` the depth of each row of ``X``
    is relative to the rows of ``ref``.

    Parameters
    ----------
    X, ref : arrays (n x d), (m x d)
    metric : ``'cosine'`` (``1 - cos``, the paper's default; exact in O(n d) by a closed form),
        ``'chord'`` (``sqrt(2 (1 - cos))``) or ``'l2'`` (Zuo & Serfling's L2 depth
        ``1 / (1 + mean Euclidean distance)``); the last two are exact in O(n m d).
    sample : chord and l2: average over this many reference rows drawn uniformly (``seed``) instead of
        all; each depth's error is then at most ``1 / sqrt(sample)`` in standard error (chord), by
        Hoeffding's inequality below ``0.05`` with probability 0.99 at ``sample=4300``.
    db : a DuckDB connection or ``knnsql.Database`` to run on (default: a private in-memory one).

    Returns
    -------
    numpy.ndarray of float64, one depth per row of ``X``.

    Notes
    -----
    Equal to ``tte_depth.StatDepth(...).depths(X)`` (``ref=None``) and to the second output of
    ``depths_paired(ref, X)``. Runs ``knn_depth`` (sql/reference/knn_depth.md).
    """
    X = _matrix(X, "X")
    o = _lit(_depth_opts(metric, sample, seed))
    if ref is None:
        tables = {"x": _table(X)}
        agg = f"knn_depth(id, emb, {o})"
        keep = slice(None)
    else:
        R = _matrix(ref, "ref", X.shape[1])
        flag = np.arange(len(R) + len(X)) < len(R)
        tables = {"x": _table(np.concatenate([R, X]), is_ref=flag)}
        agg = f"knn_depth(id, emb, is_ref, {o})"
        keep = slice(len(R), None)
    out = _on_tables(db, tables, lambda t: _unnest(agg, t["x"], "r.depth"), lambda r: r.fetchnumpy()["depth"])
    return np.asarray(out, dtype=np.float64)[keep]


@dataclass(frozen=True)
class DepthTest:
    """The depth rank-sum test of a candidate set G against a reference set F (``knn_depth_test``).

    ``q``: Liu & Singh's quality index, the share of (F row, G row) pairs where the F row is no deeper,
    ties half; 0.5 when F and G come from one distribution, below 0.5 when G is more outlying. ``w``:
    the Wilcoxon rank-sum z statistic of F's depths against G's (``scipy.stats.ranksums``). ``p_value``:
    its normal-approximation p-value for ``alternative``. ``u``: the Mann-Whitney U of F
    (``scipy.stats.mannwhitneyu(...).statistic``). Depths are relative to F.
    """
    q: float
    w: float
    p_value: float
    u: float
    n_ref: int
    n_cand: int


def depth_test(F, G, *, metric: str = "cosine", alternative: str = "greater", sample: Optional[int] = None,
               seed: int = 0, db=None) -> DepthTest:
    """Do two corpora differ in embedding space? The TTE depth rank-sum test (Seegmiller & Preum 2023).

    Depths of the rows of ``F`` (leave-one-out) and of ``G``, both relative to ``F``, are ranked together;
    ``alternative='greater'`` (the paper's) tests whether F's rows rank deeper, i.e. G is more outlying
    (``'less'``, ``'two-sided'`` too). See :class:`DepthTest` for the fields; ``metric``, ``sample`` as in
    :func:`depth`.
    """
    Fm = _matrix(F, "F")
    Gm = _matrix(G, "G", Fm.shape[1])
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"unknown alternative {alternative!r}; use 'greater', 'less' or 'two-sided'")
    o = _lit(_depth_opts(metric, sample, seed, alternative=alternative))
    flag = np.arange(len(Fm) + len(Gm)) >= len(Fm)
    row = _on_tables(db, {"x": _table(np.concatenate([Fm, Gm]), in_g=flag)},
                     lambda t: f"SELECT knn_depth_test(emb, in_g, {o}) FROM {t['x']}",
                     lambda r: r.fetchall()[0][0])
    return DepthTest(float(row["q"]), float(row["w"]), float(row["p_value"]), float(row["u"]), int(row["n_ref"]),
                     int(row["n_cand"]))


def sql_depth(db, relation: str, *, id: str = "id", vec: str = "emb", ref: Optional[str] = None,
              by: Optional[str] = None, metric: str = "cosine", sample: Optional[int] = None, seed: int = 0):
    """``knn_depth`` over a table or query: a DataFrame ``id, depth`` (and the ``by`` column).

    ``ref``: a boolean SQL expression marking the reference rows (depth relative to them; rows where it
    is NULL are left out); ``None``: relative to all rows. ``by``: a column to group by, one depth per
    row relative to its own group (per-class depth).
    """
    o = _lit(_depth_opts(metric, sample, seed))
    args = f"{_quote_ident(id)}, {_quote_ident(vec)}" + (f", ({ref})::BOOLEAN" if ref else "") + f", {o}"
    if by is None:
        return _run_list(db, f"knn_depth({args})", relation)
    g = _quote_ident(by)
    return _run(db, f"SELECT g AS {g}, r.id, r.depth FROM (SELECT {g} AS g, unnest(knn_depth({args})) AS r "
                    f"FROM {_relation(relation)} GROUP BY {g}) ORDER BY 1, 2", "knn_depth")


def sql_depth_test(db, relation: str, candidate: str, *, vec: str = "emb", metric: str = "cosine",
                   alternative: str = "greater", sample: Optional[int] = None, seed: int = 0) -> DepthTest:
    """``knn_depth_test(vec, candidate)``: the rows where the boolean SQL expression ``candidate`` holds are
    G, the others F (rows where it is NULL are left out)."""
    if alternative not in ("greater", "less", "two-sided"):
        raise ValueError(f"unknown alternative {alternative!r}; use 'greater', 'less' or 'two-sided'")
    o = _lit(_depth_opts(metric, sample, seed, alternative=alternative))
    row = _run(db, f"SELECT knn_depth_test({_quote_ident(vec)}, ({candidate})::BOOLEAN, {o}) "
                   f"FROM {_relation(relation)}", "knn_depth_test", "one")
    if row is None:
        raise ValueError("the relation has no rows")
    return DepthTest(float(row["q"]), float(row["w"]), float(row["p_value"]), float(row["u"]), int(row["n_ref"]),
                     int(row["n_cand"]))


# ---- kNN estimators: entropy, kernel density, prototypes, interpolation (sql/reference/knn_estimators.md) ----

def entropy(X, k: int = 3, *, db=None) -> Dict[str, float]:
    """Differential entropy of the rows of ``X`` by the Kozachenko-Leonenko kNN estimator, and MEE's
    manifold-entropy diversity score.

    ``entropy`` (nats) is ``psi(n) - psi(k) + log V_d + (d / n) sum_i log r_i`` (Kraskov et al. 2004,
    eq. 20), ``r_i`` the Euclidean distance from row i to its k-th nearest other row and ``V_d`` the
    unit-ball volume. ``mee`` is ``log(mean_i r_i^2 / d)``, the diversity score of "Combating Mode
    Collapse in GANs via Manifold Entropy Estimation" (k = 1 is theirs): a score to compare sets of one
    dimension, not nats. ``n``: rows used.

    Notes
    -----
    Rows with k or more exact copies make ``log r_i = -inf``: that is an error (raise ``k`` or
    deduplicate). In high dimension the estimator is biased low (compare tables at one ``d`` and ``k``).
    Runs ``knn_entropy``.
    """
    X = _matrix(X, "X")
    k = _int("k", k, 1)
    row = _on_tables(db, {"x": _table(X)}, lambda t: f"SELECT knn_entropy(emb, {k}) FROM {t['x']}",
                     lambda r: r.fetchall()[0][0])
    return {"entropy": float(row["entropy"]), "mee": float(row["mee"]), "n": int(row["n"])}


def sql_entropy(db, relation: str, *, k: int = 3, vec: str = "emb", by: Optional[str] = None):
    """``knn_entropy(vec, k)`` over a table or query: a dict ``entropy, mee, n``, or with ``by`` a DataFrame
    with one row per group."""
    agg = f"knn_entropy({_quote_ident(vec)}, {_int('k', k, 1)})"
    if by is None:
        row = _run(db, f"SELECT {agg} FROM {_relation(relation)}", "knn_entropy", "one")
        if row is None:
            raise ValueError("the relation has no rows")
        return dict(row)
    g = _quote_ident(by)
    return _run(db, f"SELECT {g}, e.entropy, e.mee, e.n FROM (SELECT {g}, {agg} AS e FROM {_relation(relation)} "
                    f"GROUP BY {g}) ORDER BY 1", "knn_entropy")


@dataclass(frozen=True)
class KDEResult:
    """Kernel density at each query row: ``log_density`` (natural log), ``ess`` (effective number of
    reference rows in the sum, (sum w)^2 / sum w^2: 1-5 is the extreme-value regime where a few
    neighbours carry the estimate), ``trunc_err`` (upper bound on how far the k-truncated log density is
    below the full one; 0 when exact) and the ``bandwidth`` used."""
    log_density: np.ndarray
    ess: np.ndarray
    trunc_err: np.ndarray
    bandwidth: float


def _bandwidth(bandwidth) -> str:
    if isinstance(bandwidth, str):
        if bandwidth not in ("scott", "silverman"):
            raise ValueError(f"unknown bandwidth rule {bandwidth!r}; use 'scott', 'silverman' or a positive number")
        return bandwidth
    h = float(bandwidth)
    if not (h > 0 and np.isfinite(h)):
        raise ValueError(f"bandwidth must be a positive number, got {bandwidth!r}")
    return repr(h)


def kde(X, Q=None, *, k: int = 100, bandwidth="scott", db=None) -> KDEResult:
    """Gaussian kernel density of the rows of ``X`` evaluated at ``Q`` (default: at ``X`` itself, each row
    counting itself, as scikit-learn's ``score_samples`` on the training rows).

    Parameters
    ----------
    k : the sum runs over each query's k nearest rows of ``X`` (``k >= len(X)``: all rows, exactly).
        In high dimension a few nearest rows carry the whole sum at useful bandwidths (Biroli & Mezard,
        "Kernel Density Estimators in Large Dimensions"), so truncation loses little there;
        ``trunc_err`` bounds what it loses per row.
    bandwidth : a number (the kernel's standard deviation h), ``'scott'`` (``sigma n^(-1/(d+4))``) or
        ``'silverman'`` (``sigma (n (d+2) / 4)^(-1/(d+4))``), sigma the root mean per-dimension variance.

    Notes
    -----
    The log density is ``log sum exp(-||x - y||^2 / (2 h^2)) - log n - d log h - (d/2) log(2 pi)``:
    scikit-learn's ``KernelDensity(bandwidth=h)`` exactly when ``k >= len(X)``, and in one dimension
    scipy's ``gaussian_kde`` with the same rule. Runs ``knn_kde``.
    """
    X = _matrix(X, "X")
    k = _int("k", k, 1)
    o = _lit(_opts(bandwidth=_bandwidth(bandwidth)))
    if Q is None:
        tables = {"x": _table(X)}
        agg = f"knn_kde(id, emb, {k}, {o})"
    else:
        Qm = _matrix(Q, "Q", X.shape[1])
        tables = {"x": _table(np.concatenate([X, Qm]), is_query=np.arange(len(X) + len(Qm)) >= len(X))}
        agg = f"knn_kde(id, emb, is_query, {k}, {o})"
    out = _on_tables(db, tables, lambda t: _unnest(agg, t["x"], "r.log_density, r.ess, r.trunc_err, r.bandwidth"),
                     lambda r: r.fetchnumpy())
    return KDEResult(np.asarray(out["log_density"], np.float64), np.asarray(out["ess"], np.float64),
                     np.asarray(out["trunc_err"], np.float64), float(out["bandwidth"][0]))


def sql_kde(db, relation: str, *, k: int = 100, id: str = "id", vec: str = "emb", query: Optional[str] = None,
            bandwidth="scott"):
    """``knn_kde`` over a table or query: a DataFrame ``id, log_density, ess, trunc_err, bandwidth``.
    ``query``: a boolean SQL expression marking the rows to evaluate (the density comes from the
    others); ``None``: every row, from every row."""
    o = _lit(_opts(bandwidth=_bandwidth(bandwidth)))
    side = f", ({query})::BOOLEAN" if query else ""
    return _run_list(db, f"knn_kde({_quote_ident(id)}, {_quote_ident(vec)}{side}, {_int('k', k, 1)}, {o})", relation)


@dataclass(frozen=True)
class PrototypeResult:
    """Nearest-class-mean predictions: ``labels``, ``distance`` to the winning class mean (in the metric)
    and ``prob``, the softmax of ``-distance / temperature`` over the classes (Prototypical Networks)."""
    labels: np.ndarray
    distance: np.ndarray
    prob: np.ndarray


def prototype_predict(X, y, Q, *, metric: str = "l2", temperature: float = 1.0, db=None) -> PrototypeResult:
    """Nearest-class-mean (prototype) classification, as in Prototypical Networks (Snell et al. 2017).

    Each class's prototype is the mean of its rows of ``X``; a query row takes the class of the nearest
    prototype (``metric``: ``'l2'`` squared Euclidean, the paper's; ``'cosine'``; ``'ip'``), and ``prob`` is
    ``softmax(-distance / temperature)`` over the classes. Labels can be of any type numpy can sort; ties
    go to the smaller label. With ``metric='l2'`` the labels equal scikit-learn's ``NearestCentroid``.
    Runs ``knn_prototype``.
    """
    X = _matrix(X, "X")
    Qm = _matrix(Q, "Q", X.shape[1])
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one label per row of X: got shape {y.shape}, expected ({X.shape[0]},)")
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise ValueError("y has NaN (missing) labels; drop those rows first")
    if not (temperature > 0 and np.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    classes, codes = np.unique(y, return_inverse=True)
    import pandas as pd

    lab = pd.array(np.concatenate([codes, np.full(len(Qm), -1)]), dtype="Int64")
    lab[len(X):] = pd.NA
    o = _lit(_opts(metric=metric, temperature=float(temperature)))
    out = _on_tables(db, {"x": _table(np.concatenate([X, Qm]), label=lab)},
                     lambda t: _unnest(f"knn_prototype(id, emb, label, {o})", t["x"], "r.label, r.distance, r.prob"),
                     lambda r: r.fetchnumpy())
    return PrototypeResult(classes[np.asarray(out["label"], np.int64)], np.asarray(out["distance"], np.float64),
                           np.asarray(out["prob"], np.float64))


def sql_prototype(db, relation: str, *, id: str = "id", vec: str = "emb", label: str = "label", metric: str = "l2",
                  temperature: float = 1.0):
    """``knn_prototype`` over a table or query: rows with a NULL ``label`` are classified by the nearest
    class mean of the others; a DataFrame ``id, label, distance, prob``. Labels of any type (text, ENUM,
    ...) are numbered in SQL sort order and mapped back, as in :func:`sql_predict`."""
    o = _lit(_opts(metric=metric, temperature=temperature))
    qid, qvec, qlab = _quote_ident(id), _quote_ident(vec), _quote_ident(label)
    con = _con(db)
    rel = _relation(relation)
    ltype = con.execute(f"SELECT typeof({qlab}) FROM {rel} LIMIT 1").fetchone()
    if ltype is None or ltype[0].upper() in _INTEGER_TYPES or ltype[0].upper() in ('"NULL"', "NULL"):
        return _run_list(db, f"knn_prototype({qid}, {qvec}, {qlab}::BIGINT, {o})", relation)
    sql = (f"WITH src AS (SELECT {qid} AS i, {qvec} AS v, {qlab} AS l FROM {rel}), "
           "classes AS (SELECT l, (row_number() OVER (ORDER BY l) - 1)::BIGINT AS code "
           "FROM (SELECT DISTINCT l FROM src WHERE l IS NOT NULL)), "
           "coded AS (SELECT s.i, s.v, c.code FROM src s LEFT JOIN classes c ON s.l = c.l), "
           f"pred AS (SELECT unnest(knn_prototype(i, v, code, {o})) AS r FROM coded) "
           "SELECT r.id AS id, c.l AS label, r.distance AS distance, r.prob AS prob FROM pred JOIN classes c "
           "ON r.label = c.code ORDER BY 1")
    return _run(con, sql, "knn_prototype")


def interpolate(X, y, Q, k: int = 3, *, power: float = 2.0, metric: str = "l2", db=None) -> Tuple[np.ndarray, np.ndarray]:
    """kNN interpolation of values (SymPoint; PointNet++ feature propagation): the value at each query row
    is the inverse-distance-weighted mean of its ``k`` nearest rows' values ``y``,
    ``w = 1 / distance^power`` (Euclidean distance for ``metric='l2'``; ``'cosine'`` distances too).

    ``power=2`` (default) is PointNet++'s; ``power=1`` equals scikit-learn's
    ``KNeighborsRegressor(k, weights='distance')``; ``power=0`` the plain mean. Neighbours at distance 0,
    when there are any, alone count (an exact match returns its value). Returns ``(values, reach)``,
    ``reach`` the distance of each query's farthest neighbour used. Runs ``knn_interpolate``.
    """
    X = _matrix(X, "X")
    Qm = _matrix(Q, "Q", X.shape[1])
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have one value per row of X: got shape {y.shape}, expected ({X.shape[0]},)")
    if not np.isfinite(y).all():
        raise ValueError("y has NaN or Inf values; every source row needs a finite value")
    k = _int("k", k, 1)
    if k > len(X):
        raise ValueError(f"k = {k} is larger than the {len(X)} rows of X; lower k")
    if not (power >= 0 and np.isfinite(power)):
        raise ValueError(f"power must be a number >= 0, got {power!r}")
    vals = np.concatenate([y, np.full(len(Qm), np.nan)])
    o = _lit(_opts(metric=metric, power=float(power)))
    import pyarrow as pa

    vcol = pa.array(vals, mask=np.isnan(vals))
    out = _on_tables(db, {"x": _table(np.concatenate([X, Qm]), value=vcol)},
                     lambda t: _unnest(f"knn_interpolate(id, emb, value, {k}, {o})", t["x"], "r.value, r.reach"),
                     lambda r: r.fetchnumpy())
    return np.asarray(out["value"], np.float64), np.asarray(out["reach"], np.float64)


def sql_interpolate(db, relation: str, *, k: int = 3, id: str = "id", vec: str = "emb", value: str = "value",
                    power: float = 2.0, metric: str = "l2"):
    """``knn_interpolate`` over a table or query: rows with a NULL ``value`` get the inverse-distance-weighted
    mean of their k nearest valued rows; a DataFrame ``id, value, reach``."""
    o = _lit(_opts(metric=metric, power=power))
    agg = (f"knn_interpolate({_quote_ident(id)}, {_quote_ident(vec)}, ({_quote_ident(value)})::DOUBLE, "
           f"{_int('k', k, 1)}, {o})")
    return _run_list(db, agg, relation)
