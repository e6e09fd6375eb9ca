"""Suite "api", data design: the attribute columns, the three predicate shapes, and the ground truth.

Attribute columns added to every base row (seed 0):

- ``u``    DOUBLE, uniform [0, 1)                       shape "range":    ``u < s``
- ``cat``  INTEGER, uniform in 0..9                      shape "in+range": ``cat IN (3, 7) AND u2 < s / 0.2``
- ``u2``   DOUBLE, uniform [0, 1), independent of ``u``
- ``far``  BIGINT, rank of the row by DESCENDING distance (the table's metric) from the centroid of
           the dataset's whole query set (0 = farthest)  shape "far":      ``far < round(s * n)``

``range`` and ``in+range`` keep a fraction s of the rows in expectation and are independent of the
vectors; ``far`` keeps exactly round(s * n) rows, the ones farthest from where the queries are, so a
query's unfiltered neighbours almost never pass it. 100% = no filter (the same cell for all shapes).

Ground truth: numpy in float64, the table's metric (cosine: 1 - cos; l2: squared Euclidean), the 10th
smallest distance among the rows the filter keeps. recall@10 is tie-aware: a returned id counts when
the filter keeps it and its distance is within that 10th distance (1e-5 relative + 1e-6), each id once,
out of min(10, kept rows).
"""

from __future__ import annotations

import numpy as np

K = 10
SELECTIVITIES = [("100%", 1.0), ("10%", 0.1), ("1%", 0.01), ("0.1%", 0.001)]
SHAPES = ["range", "in+range", "far"]
SHAPE_TEXT = {
    "range": "a range on one column, `u < s`",
    "in+range": "IN + range over two columns, `cat IN (3, 7) AND u2 < s/0.2`",
    "far": "correlated with the queries, `far < s*n` (the rows farthest from the query set's centroid)",
}
CATS = (3, 7)
COLUMNS = {"u": "DOUBLE", "cat": "INTEGER", "u2": "DOUBLE", "far": "BIGINT"}


def distances(X: np.ndarray, Qm: np.ndarray, metric: str, sq_norms: np.ndarray | None = None) -> np.ndarray:
    """(nq, n) float64 distances of every base row to each query (rows of Qm)."""
    Qm = np.atleast_2d(np.asarray(Qm, dtype=np.float64))
    dots = Qm @ X.T
    if metric == "cosine":
        xn = np.sqrt(sq_norms if sq_norms is not None else (X * X).sum(1))
        qn = np.linalg.norm(Qm, axis=1)
        return 1.0 - dots / (qn[:, None] * xn[None, :])
    xx = sq_norms if sq_norms is not None else (X * X).sum(1)
    return np.maximum(xx[None, :] - 2 * dots + (Qm * Qm).sum(1)[:, None], 0.0)


def attributes(X64: np.ndarray, Q_all: np.ndarray, metric: str, sq_norms: np.ndarray, seed: int = 0) -> dict:
    n = X64.shape[0]
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    cat = rng.integers(0, 10, n).astype(np.int32)
    u2 = rng.random(n)
    centroid = np.asarray(Q_all, dtype=np.float64).mean(0)
    dc = distances(X64, centroid[None, :], metric, sq_norms)[0]
    order = np.argsort(-dc, kind="stable")          # farthest first
    far = np.empty(n, dtype=np.int64)
    far[order] = np.arange(n, dtype=np.int64)
    return {"u": u, "cat": cat, "u2": u2, "far": far}


def _num(x: float) -> str:
    return f"{x:.6g}"


def predicate(shape: str, s: float, n: int) -> str | None:
    """The filter (SQL, also the index's and LanceDB's filter language) keeping a fraction s."""
    if s >= 1.0:
        return None
    if shape == "range":
        return f"u < {_num(s)}"
    if shape == "in+range":
        return f"cat IN ({CATS[0]}, {CATS[1]}) AND u2 < {_num(s / (len(CATS) / 10))}"
    if shape == "far":
        return f"far < {int(round(s * n))}"
    raise ValueError(shape)


def mask_of(shape: str, s: float, attrs: dict) -> np.ndarray:
    n = len(attrs["u"])
    if s >= 1.0:
        return np.ones(n, dtype=bool)
    if shape == "range":
        return attrs["u"] < s
    if shape == "in+range":
        return np.isin(attrs["cat"], CATS) & (attrs["u2"] < s / (len(CATS) / 10))
    if shape == "far":
        return attrs["far"] < int(round(s * n))
    raise ValueError(shape)


def cells(n: int):
    """[(key, shape, label, s)]: the unfiltered cell once, then every shape at every other selectivity."""
    out = [("all", None, "100%", 1.0)]
    for shape in SHAPES:
        for label, s in SELECTIVITIES[1:]:
            out.append((f"{shape}/{label}", shape, label, s))
    return out


class Truth:
    """Exact 10th distances per (cell, query) and a tie-aware recall for returned ids."""

    def __init__(self, X64: np.ndarray, metric: str, sq_norms: np.ndarray):
        self.X64, self.metric, self.sq = X64, metric, sq_norms
        self.thr: dict = {}        # (cell key, query row in Q_all) -> 10th distance
        self.want: dict = {}       # cell key -> min(K, kept rows)
        self.masks: dict = {}

    def add(self, cell_masks: dict, Q_all: np.ndarray, rows, chunk: int = 64) -> None:
        """Computes thresholds for the given query rows under every mask (cell key -> bool array)."""
        for key, m in cell_masks.items():
            self.masks[key] = m
            self.want[key] = int(min(K, m.sum()))
        rows = [r for r in rows if any((key, r) not in self.thr for key in cell_masks)]
        for a in range(0, len(rows), chunk):
            part = rows[a:a + chunk]
            D = distances(self.X64, Q_all[part], self.metric, self.sq)
            for key, m in cell_masks.items():
                sub = D[:, m] if not m.all() else D
                kth = np.partition(sub, K - 1, axis=1)[:, K - 1] if sub.shape[1] >= K else sub.max(1)
                for r, v in zip(part, kth):
                    self.thr[(key, r)] = float(v)

    def hits(self, key: str, qrow: int, q: np.ndarray, ids) -> int:
        ids = np.unique(np.asarray(list(ids), dtype=np.int64))
        if len(ids) == 0:
            return 0
        ids = ids[(ids >= 0) & (ids < len(self.X64))]
        ids = ids[self.masks[key][ids]]
        if len(ids) == 0:
            return 0
        d = distances(self.X64[ids], q[None, :], self.metric, self.sq[ids])[0]
        t = self.thr[(key, qrow)]
        return int(min(self.want[key], (d <= t + 1e-5 * abs(t) + 1e-6).sum()))

    def recall(self, key: str, qrows, Q_all: np.ndarray, results) -> float:
        """Mean recall@10 of results (one id list per query row)."""
        if not len(qrows):
            return float("nan")
        got = sum(self.hits(key, r, Q_all[r], res) for r, res in zip(qrows, results))
        return got / (self.want[key] * len(qrows))
