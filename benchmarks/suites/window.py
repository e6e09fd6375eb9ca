"""Suite "window": window-filtered k-NN (only rows whose label lies in [lo, hi]), k = 10, after Engels et al.

Workload (Engels, Landrum, Yu, Dhulipala, Shun, ICML 2024): for each window fraction 2^0, 2^-1, ..., 2^-16
every query gets its own random window holding that fraction of the labelled rows: a start position drawn
uniformly in the label-sorted order, lo / hi = the labels at the window's two ends (inclusive; ties in the
labels can make a window larger). recall@10 is measured against the exact top-10 *inside* the window
(knnsql's flat index with lo/hi, cross-checked with numpy on a sample), tie-aware, over min(10, window rows).

Workloads (``--workloads``; the base dataset must be in ``--datasets``):

================  ==============================================================================================
glove-random      GloVe-50 (cosine), labels uniform random in [0, 1)
glove-rank        GloVe-50 (cosine), label = the word's frequency rank (GloVe row): correlated with the vectors
fashion-random    Fashion-MNIST (l2), labels uniform random in [0, 1)
adversarial       100 Gaussian clusters x 2,000 points, 64-d, unit-normalised (cosine); cluster i labelled in
                  [i-0.5, i+0.5); each query lies near a cluster *outside* its window (Engels' adversarial set,
                  scaled down), plus Engels' own workload (window = exactly one other cluster) as row "1 cluster"
minilm-size       MiniLM-L6 embeddings of Debian package descriptions (cosine), label = Installed-Size (KiB)
================  ==============================================================================================

Methods, all single-threaded, one call per query (each query has its own window):

====================  ===========================================================================================
knnsql                ``Index(d, metric, kind="graph", m=16, ef_construction=200)`` with ``add(X, ids, labels)``;
                      ``search(q, 10, ef=ef, threads=1, lo=lo, hi=hi)`` (the core's planner: exact window scan,
                      bucket-graph beams, in-search postfilter beam, two-hop filtered beam, or a beam + exact
                      fallback); ef sweep. ``add`` ends with the cost model's calibration and the bucket
                      graphs, so both are in the build time (one window query after it is timed as well)
prefilter (flat)      ``Index(d, metric)`` (flat, exact) with labels; ``search(q, 10, threads=1, lo=lo, hi=hi)``.
                      NB: the flat kernel scores every row and drops out-of-window ones (cost ~ n, not ~ window)
prefilter (slice)     the textbook prefilter: rows stored in label order, binary search for [s, e), numpy/BLAS
                      (1 thread) scores the contiguous slice, ``argpartition`` top-10
postfilter            the *same* knnsql graph searched without a window: k' = 10, 20, 40, ... up to n with
                      ef' = max(ef, k'), keeping in-window hits until min(10, window rows) pass (it is told the
                      window's row count); ef sweep
hnswlib               hnswlib 0.8 (same M / ef_construction), ``knn_query(q, k, num_threads=1, filter=lambda
                      i: lo <= label[i] <= hi)`` (a Python callback per candidate), k = min(10, window rows);
                      ef sweep
DuckDB SQL            ``SELECT id FROM t WHERE label BETWEEN $lo AND $hi ORDER BY array_cosine_distance(emb,
                      $q::FLOAT[d]) LIMIT 10`` (``array_distance`` for l2), DuckDB threads = 1, a few queries
knnsql SQL            ``SELECT id FROM knn_search(name, $q::FLOAT[d], k := 10, lo := $lo, hi := $hi, ef := ef)``
                      one statement per query (a subset), and ``SELECT id, knn(name, emb, 10, lo, hi, ef) FROM
                      queries`` (one statement for all queries), DuckDB threads = 1, at the ef where the numpy
                      API first reached recall 0.95. The SQL index is the numpy API's graph
                      (``Index.to_bytes`` -> ``knn_index_restore``), its label type set by one extra row
                      inserted through ``knn_index_insert(name, id, emb, 1e300)`` (outside every window)
====================  ===========================================================================================

Timing: each (method, fraction, ef) cell first times 2 probe queries, then runs as many queries as fit in
the cell budget (``--cell-budget``; at least ``--min-queries``, at most ``--queries``) and repeats that
pass while the budget allows (up to ``--repeats``): QPS = queries / median pass time. A cell whose probe
needs more than 0.5 s per query keeps the probe as its only measurement. An ef sweep stops at recall >=
0.999 (as Engels does), once a cell is that slow, after 2 s once recall 0.95 was reached, or after 6 s. Reported per method: the highest QPS
with recall@10 >= 0.95.

Build: the window-capable knnsql graph (``add`` with labels) against a plain graph (``add`` without
labels) on the same rows: build time, ``Index.memory_bytes`` and the RSS growth.
"""

from __future__ import annotations

import ctypes
import gc
import glob
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from _common import (trimmed_rss, cpu_snapshot, fmt, foreign_load, log, machine_markdown, md_table, median, settle,
                     try_import_pyplot)

NAME = "window"
SUMMARY = ("window-filtered k-NN (label in [lo, hi], k=10, Engels et al. workload): knnsql graph vs prefilter, "
           "postfilter, hnswlib filter, DuckDB SQL")
DEFAULT_DATASETS = ["glove", "fashion", "adversarial", "minilm"]

K = 10
M = 16
EF_CONSTRUCTION = 200
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]
THRESHOLD = 0.95
STOP_RECALL = 0.999

WORKLOADS = {  # name -> (base dataset, label kind)
    "glove-random": ("glove", "random"),
    "glove-rank": ("glove", "rank"),
    "fashion-random": ("fashion", "random"),
    "adversarial": ("adversarial", "adversarial"),
    "minilm-size": ("minilm", "installed_size"),
}
LABEL_DESC = {
    "random": "uniform random in [0, 1) (seed 7)",
    "rank": "frequency rank (the GloVe row number)",
    "adversarial": "cluster i: uniform in [i-0.5, i+0.5); queries near a cluster outside the window",
    "installed_size": "Debian Installed-Size in KiB (NaN for packages without one: never in a window)",
}

FULL = dict(queries=200, efs=EFS, exponents=list(range(0, 17)), cell_budget=0.4, sweep_budget=2.0, min_queries=5,
            slow=0.5, repeats=3, duck_queries=8, sql_queries=30, numpy_check=4, plan_queries=50, plain_graph="auto",
            vss_queries=10, vss_efs=[64, 256], vss_timeout=1200)
QUICK = dict(queries=40, efs=[16, 64, 256], exponents=[0, 3, 6, 9, 12], cell_budget=0.08, sweep_budget=0.4,
             min_queries=5, slow=0.2, repeats=1, duck_queries=3, sql_queries=5, numpy_check=2, plan_queries=20,
             plain_graph="all", vss_queries=3, vss_efs=[64], vss_timeout=300)
VSS_PYTHON = Path.home() / ".cache" / "knnsql-bench" / "vss-venv" / "bin" / "python"  # as the ann suite
PLAIN_AUTO_MAX_ROWS = 250_000  # --plain-graph auto: skip the extra plain build on bigger sets (time)
QUICK_ROWS = {"glove": 10_000, "fashion": 5_000, "adversarial": 10_000, "minilm": 5_000, "synthetic": 10_000}

METHODS = ["knnsql", "knnsql_ffi", "prefilter_flat", "prefilter_slice", "postfilter", "hnswlib", "duckdb_sql", "knnsql_sql",
           "knnsql_sql_batch", "vss"]
LABELS = {
    "knnsql": "knnsql graph window",
    "knnsql_ffi": "knnsql raw C call",
    "prefilter_flat": "prefilter (flat + lo/hi)",
    "prefilter_slice": "prefilter (sorted slice)",
    "postfilter": "postfilter (doubling)",
    "hnswlib": "hnswlib filter",
    "duckdb_sql": "DuckDB SQL",
    "knnsql_sql": "knnsql SQL knn_search",
    "knnsql_sql_batch": "knnsql SQL knn() batch",
    "vss": "DuckDB vss (same WHERE)",
}
SWEPT = ("knnsql", "postfilter", "hnswlib")
BASELINES = ("prefilter_flat", "prefilter_slice", "postfilter")
# "brief": max(prefilter via the flat index + lo/hi, postfilter); "strict": also the sorted-slice prefilter
BASELINE_SETS = {"brief": ("prefilter_flat", "postfilter"), "strict": BASELINES}
KNNSQL_KEYS = ("knnsql", "knnsql_ffi", "knnsql_sql", "knnsql_sql_batch")
TARGET_BAND = list(range(4, 11))  # fractions 2^-4 ... 2^-10 for the 10x target


def add_arguments(p) -> None:
    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    p.add_argument("--workloads", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=None,
                   help=f"subset of {','.join(WORKLOADS)} (default: all whose dataset is in --datasets)")
    p.add_argument("--methods", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=None,
                   help=f"subset of {','.join(METHODS)} (default: all)")
    p.add_argument("--efs", type=ints, default=None, help=f"ef sweep (default {','.join(map(str, EFS))})")
    p.add_argument("--exponents", type=ints, default=None,
                   help="window fractions 2^-i for these i (default 0..16; quick 0,3,6,9,12)")
    p.add_argument("--queries", type=int, default=None, help="queries per fraction (default 200, quick 40)")
    p.add_argument("--rows", type=int, default=None, help="cap base rows per dataset (default all; quick: slices)")
    p.add_argument("--cell-budget", type=float, default=None,
                   help="seconds per (method, fraction, ef) cell before fewer queries are used (default 0.4)")
    p.add_argument("--min-queries", type=int, default=None, help="queries per cell at least (default 5)")
    p.add_argument("--duck-queries", type=int, default=None, help="DuckDB SQL queries per fraction (default 10)")
    p.add_argument("--sql-queries", type=int, default=None, help="knnsql SQL single statements per fraction (default 30)")
    p.add_argument("--vss-python", type=Path, default=None,
                   help="python of the venv with duckdb==1.5.5 and duckdb-extension-vss==1.5.5 (default: the ann "
                        "suite's, ~/.cache/knnsql-bench/vss-venv)")
    p.add_argument("--vss-queries", type=int, default=None, help="DuckDB vss statements per fraction (default 10)")
    p.add_argument("--plain-graph", choices=["auto", "all", "none"], default=None,
                   help="build a plain (label-less) knnsql graph per dataset for the build/memory comparison: all, "
                        f"none, or auto = datasets up to {250_000:,} rows (default auto; quick all)")


# ---- small helpers -------------------------------------------------------------------------------



class _Blas:
    """numpy's OpenBLAS thread count (scipy-openblas symbols), so the slice prefilter runs on one core."""

    def __init__(self):
        self.lib = self.set_fn = self.get_fn = None
        import numpy

        for path in glob.glob(os.path.join(os.path.dirname(numpy.__file__), "..", "numpy.libs", "*openblas*")):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for s, g in (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
                         ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
                         ("openblas_set_num_threads", "openblas_get_num_threads")):
                if hasattr(lib, s) and hasattr(lib, g):
                    self.lib, self.set_fn, self.get_fn = lib, getattr(lib, s), getattr(lib, g)
                    self.set_fn.argtypes = [ctypes.c_int]
                    return

    def get(self) -> Optional[int]:
        return int(self.get_fn()) if self.get_fn else None

    def set(self, n: int) -> None:
        if self.set_fn:
            self.set_fn(int(n))


def _dist64(X: np.ndarray, metric: str, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """float64 distances from q to X[rows] (rows >= 0); cosine = 1 - cos, l2 = squared Euclidean."""
    v = X[rows].astype(np.float64)
    q = q.astype(np.float64)
    if metric == "cosine":
        return 1.0 - (v @ q) / (np.linalg.norm(v, axis=-1) * np.linalg.norm(q) + 1e-300)
    diff = v - q
    return np.einsum("...j,...j->...", diff, diff)


def _tol(kth: float, q: np.ndarray, metric: str) -> float:
    scale = 1.0 if metric == "cosine" else float((q.astype(np.float64) ** 2).sum())
    return 1e-5 * abs(kth) + 1e-6 * scale


# ---- windows -------------------------------------------------------------------------------------

def make_windows(sorted_labels: np.ndarray, w: int, nq: int, rng) -> tuple:
    """nq windows of w consecutive rows in label order: (lo, hi, rows in [lo, hi])."""
    n = len(sorted_labels)
    w = max(1, min(w, n))
    s = rng.integers(0, n - w + 1, size=nq)
    lo = sorted_labels[s]
    hi = sorted_labels[s + w - 1]
    cnt = np.searchsorted(sorted_labels, hi, "right") - np.searchsorted(sorted_labels, lo, "left")
    return lo.astype(np.float64), hi.astype(np.float64), cnt.astype(np.int64)


# ---- one workload's indexes and methods ----------------------------------------------------------

class Workload:
    def __init__(self, name: str, ds, labels: np.ndarray, opts: dict, base: dict):
        self.name, self.ds, self.labels, self.opts, self.base = name, ds, labels, opts, base
        self.X = ds.X
        self.n, self.d, self.metric = ds.n, ds.dim, ds.metric
        self.rows = np.arange(self.n, dtype=np.int64)
        valid = ~np.isnan(labels)
        self.order = np.flatnonzero(valid)[np.argsort(labels[valid], kind="stable")]
        self.sorted_labels = labels[self.order]
        self.n_labelled = int(valid.sum())
        self.labels_list = labels.tolist()
        self.build = {}
        self.g = self.fl = self.con = self.db = None

    # -- builds --
    def build_all(self, methods) -> None:
        import knnsql

        settle(0.5)
        r0 = trimmed_rss()
        s0 = cpu_snapshot()
        g = knnsql.Index(self.d, self.metric, kind="graph", m=M, ef_construction=EF_CONSTRUCTION, ef=64, seed=42)
        t0 = time.perf_counter()
        g.add(self.X, self.rows, labels=self.labels)
        t_add = time.perf_counter() - t0
        # add ends with the window cost model's calibration and the bucket graphs; the first window query
        # is timed too (it would calibrate if add had not), as part of the build
        t1 = time.perf_counter()
        g.search(self.X[0], K, threads=1, lo=-np.inf, hi=np.inf)
        t_cal = time.perf_counter() - t1
        t = t_add + t_cal
        self.g = g
        from knnsql import _ffi
        rows = _ffi.ffi.new("size_t[8]")
        levels = int(_ffi.lib().knn_graph_bucket_info(g._handle, rows, _ffi.ffi.NULL, 8))
        self.build["window_graph"] = {"build_s": t, "add_s": t_add, "calibrate_s": t_cal,
                                      "bucket_rows": [int(rows[i]) for i in range(levels)],
                                      "memory_bytes": int(g.memory_bytes),
                                      "rss_delta_bytes": trimmed_rss() - r0, "threads": os.cpu_count(),
                                      "noise": foreign_load(s0, cpu_snapshot())}
        log(f"  knnsql window graph: {t:.1f} s (first window query {t_cal:.2f} s; bucket levels "
            f"{self.build['window_graph']['bucket_rows']}), {g.memory_bytes / 2**20:.1f} MiB reported, "
            f"{self.build['window_graph']['rss_delta_bytes'] / 2**20:.1f} MiB RSS")
        fl = knnsql.Index(self.d, self.metric)
        t0 = time.perf_counter()
        fl.add(self.X, self.rows, labels=self.labels)
        self.build["flat"] = {"build_s": time.perf_counter() - t0, "memory_bytes": int(fl.memory_bytes)}
        self.fl = fl
        # prefilter (slice): vectors copied in label order
        self.Xs = np.ascontiguousarray(self.X[self.order])
        self.norms_s = (self.Xs.astype(np.float64) ** 2).sum(1).astype(np.float32)
        if {"duckdb_sql", "knnsql_sql", "knnsql_sql_batch"} & set(methods):
            self._build_sql()

    def _build_sql(self) -> None:
        import pyarrow as pa

        import knnsql

        self.db = knnsql.connect()
        con = self.con = self.db.con
        t0 = time.perf_counter()
        vec = pa.FixedSizeListArray.from_arrays(pa.array(self.X.reshape(-1), type=pa.float32()), self.d)
        lab = pa.array(self.labels, type=pa.float64(), from_pandas=True)  # NaN -> NULL
        con.register("_win_src", pa.table({"id": pa.array(self.rows), "emb": vec, "label": lab}))
        con.execute(f"CREATE TABLE t AS SELECT id::BIGINT AS id, emb::FLOAT[{self.d}] AS emb, label::DOUBLE AS label "
                    "FROM _win_src")
        con.unregister("_win_src")
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        blob = self.g.to_bytes()
        part = 16 << 20
        parts = [blob[i:i + part] for i in range(0, len(blob), part)]
        con.register("_win_dump", pa.table({"part": pa.array(range(len(parts)), pa.int32()),
                                            "bytes": pa.array(parts, pa.binary())}))
        n = con.execute("SELECT knn_index_restore('win', part, bytes) FROM _win_dump").fetchall()[0][0]
        con.unregister("_win_dump")
        del blob, parts
        if n != self.n:
            raise RuntimeError(f"knn_index_restore restored {n} rows, expected {self.n}")
        con.execute(f"SELECT knn_index_insert('win', {self.n}::BIGINT, $v::FLOAT[{self.d}], 1e300::DOUBLE)",
                    {"v": self.X[0].tolist()}).fetchall()
        # the restored copy calibrates its own cost model on its first window query
        con.execute(f"SELECT count(*) FROM knn_search('win', $v::FLOAT[{self.d}], k := {K}, lo := -1e308, "
                    "hi := 1e308)", {"v": self.X[0].tolist()}).fetchall()
        self.build["sql"] = {"table_load_s": load_s, "restore_s": time.perf_counter() - t0}
        con.execute("SET threads = 1")
        self.build["sql"]["duckdb_threads"] = con.execute("SELECT current_setting('threads')").fetchone()[0]

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        self.g = self.fl = self.db = self.con = None

    # -- methods: each returns fn(i) -> ids (<= K) for query i of the fraction --
    def fn_knnsql(self, Q, lo, hi, cnt, ef):
        g = self.g

        def f(i):
            return g.search(Q[i], K, ef=ef, threads=1, lo=lo[i], hi=hi[i])[0][0]
        return f

    def fn_knnsql_ffi(self, Q, lo, hi, cnt, ef):
        """Diagnostic: the same core call as Index.search(q, lo=, hi=) without the Python wrapper's checks and
        allocations (preallocated buffers, cffi straight into knn_graph_query_window)."""
        from knnsql import _ffi

        ffi, lib = _ffi.ffi, _ffi.lib()
        Qc = np.ascontiguousarray(Q, dtype=np.float32)
        ids = np.empty((1, K), dtype=np.int64)
        dists = np.empty((1, K), dtype=np.float32)
        found = np.empty(1, dtype=np.uintp)
        p_ids, p_d = ffi.from_buffer("int64_t[]", ids), ffi.from_buffer("float[]", dists)
        p_found = ffi.cast("size_t *", ffi.from_buffer("size_t[]", found))
        qp = [ffi.from_buffer("float[]", Qc[i]) for i in range(Qc.shape[0])]
        buf, h, n_err, efv = _ffi.errbuf(), self.g._handle, _ffi.ERRMSG_LEN, int(ef)
        los, his = [float(x) for x in lo], [float(x) for x in hi]

        def f(i):
            st = lib.knn_graph_query_window(h, qp[i], 1, K, efv, los[i], his[i], 1, p_ids, p_d, p_found, ffi.NULL,
                                            buf, n_err)
            if st:
                _ffi.check(st, buf)
            return ids[0, :int(found[0])].copy()
        return f

    def fn_prefilter_flat(self, Q, lo, hi, cnt, ef):
        fl = self.fl

        def f(i):
            return fl.search(Q[i], K, threads=1, lo=lo[i], hi=hi[i])[0][0]
        return f

    def fn_prefilter_slice(self, Q, lo, hi, cnt, ef):
        Xs, nrm, sl, order = self.Xs, self.norms_s, self.sorted_labels, self.order
        cosine = self.metric == "cosine"
        Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True) if cosine else Q
        Qn = np.ascontiguousarray(Qn, dtype=np.float32)
        empty = np.empty(0, dtype=np.int64)

        def f(i):
            s = int(sl.searchsorted(lo[i], "left"))
            e = int(sl.searchsorted(hi[i], "right"))
            m = e - s
            if m <= 0:
                return empty
            dots = Xs[s:e] @ Qn[i]
            d = -dots if cosine else nrm[s:e] - 2.0 * dots
            if m > K:
                p = np.argpartition(d, K - 1)[:K]
                p = p[np.argsort(d[p])]
            else:
                p = np.argsort(d)
            return order[s + p]
        return f

    def fn_postfilter(self, Q, lo, hi, cnt, ef):
        g, labels, n = self.g, self.labels, self.n

        def f(i):
            need = min(K, int(cnt[i]))
            a, b = lo[i], hi[i]
            kk = K
            while True:
                kq = min(kk, n)
                ids = g.search(Q[i], kq, ef=max(ef, kq), threads=1)[0][0]
                ids = ids[ids >= 0]
                lab = labels[ids]
                sel = ids[(lab >= a) & (lab <= b)]
                if len(sel) >= need or kq >= n:
                    return sel[:K]
                kk *= 2
        return f

    def fn_hnswlib(self, Q, lo, hi, cnt, ef):
        p = self.base["hnswlib"]
        p.set_ef(ef)
        lab = self.labels_list
        empty = np.empty(0, dtype=np.int64)
        failures = self.base.setdefault("hnswlib_failures", [0])

        def f(i):
            kq = min(K, int(cnt[i]))
            if kq == 0:
                return empty
            a, b = float(lo[i]), float(hi[i])
            try:
                got = p.knn_query(Q[i], k=kq, num_threads=1, filter=lambda x: a <= lab[x] <= b)[0][0]
            except RuntimeError:  # "Cannot return the results in a contiguous 2D array": fewer than kq found
                failures[0] += 1
                return empty
            return got.astype(np.int64)
        return f

    def fn_duckdb_sql(self, Q, lo, hi, cnt, ef):
        fn = "array_cosine_distance" if self.metric == "cosine" else "array_distance"
        sql = f"SELECT id FROM t WHERE label BETWEEN $lo AND $hi ORDER BY {fn}(emb, $q::FLOAT[{self.d}]) LIMIT {K}"
        con = self.con
        qs = [q.tolist() for q in Q]

        def f(i):
            rows = con.execute(sql, {"lo": float(lo[i]), "hi": float(hi[i]), "q": qs[i]}).fetchall()
            return np.array([r[0] for r in rows], dtype=np.int64)
        return f

    def fn_knnsql_sql(self, Q, lo, hi, cnt, ef):
        sql = (f"SELECT id FROM knn_search('win', $q::FLOAT[{self.d}], k := {K}, lo := $lo, hi := $hi, "
               f"ef := {int(ef)})")
        con = self.con
        qs = [q.tolist() for q in Q]

        def f(i):
            rows = con.execute(sql, {"lo": float(lo[i]), "hi": float(hi[i]), "q": qs[i]}).fetchall()
            return np.array([r[0] for r in rows], dtype=np.int64)
        return f


# ---- ground truth, recall ------------------------------------------------------------------------

def ground_truth(wl: Workload, Q, lo, hi, cnt) -> tuple:
    """Exact in-window top-K per query from the flat index (all cores): rows (m, K) -1 padded, d64 (m, K) inf."""
    m = Q.shape[0]
    rows = np.full((m, K), -1, dtype=np.int64)
    d64 = np.full((m, K), np.inf)
    for i in range(m):
        ids = wl.fl.search(Q[i], K, lo=lo[i], hi=hi[i])[0][0]
        ids = ids[ids >= 0]
        if len(ids) != min(K, cnt[i]):
            raise AssertionError(f"{wl.name}: flat window search returned {len(ids)} rows for a window of {cnt[i]}")
        d = _dist64(wl.X, wl.metric, ids, Q[i])
        o = np.argsort(d, kind="stable")
        rows[i, :len(ids)] = ids[o]
        d64[i, :len(ids)] = d[o]
    return rows, d64


def numpy_check(wl: Workload, Q, lo, hi, gt_d64, sample) -> dict:
    """The flat index's in-window top-K against numpy (float32 scores of the in-window rows, top K+32 re-ranked
    in float64): tie-aware agreement on the sampled queries."""
    bad = []
    for i in sample:
        idx = np.flatnonzero((wl.labels >= lo[i]) & (wl.labels <= hi[i]))
        if len(idx) == 0:
            continue
        q = Q[i].astype(np.float32)
        sc = wl.X[idx] @ q
        if wl.metric == "cosine":
            sc = -sc / np.linalg.norm(wl.X[idx], axis=1)
        else:
            sc = (wl.X[idx].astype(np.float32) ** 2).sum(1) - 2 * sc
        top = idx[np.argsort(sc)[:K + 32]]
        d = np.sort(_dist64(wl.X, wl.metric, top, Q[i]))[:K]
        ref = gt_d64[i, :len(d)]
        kth = d[-1]
        tol = _tol(kth, Q[i], wl.metric)
        if not (np.all(np.abs(ref - d) <= tol + 1e-6 * np.abs(d))):
            bad.append(int(i))
    return {"checked": len(sample), "disagreements": bad}


def score(wl: Workload, got: np.ndarray, Q, lo, hi, cnt, gt_d64) -> dict:
    """Tie-aware recall@K over min(K, window rows) plus correctness counters for a (m, K) -1 padded id matrix."""
    m = got.shape[0]
    rec = np.zeros(m)
    short = outside = dups = 0
    for i in range(m):
        ids = got[i][got[i] >= 0]
        need = int(min(K, cnt[i]))
        if len(ids) < need:
            short += 1
        if len(np.unique(ids)) < len(ids):
            dups += 1
        if len(ids):
            lab = wl.labels[ids]
            inw = (lab >= lo[i]) & (lab <= hi[i])
            if not inw.all():
                outside += 1
            ids = np.unique(ids[inw])
        if need == 0:
            rec[i] = 1.0
            continue
        if len(ids) == 0:
            continue
        kth = gt_d64[i, need - 1]
        d = _dist64(wl.X, wl.metric, ids, Q[i])
        hits = int((d <= kth + _tol(kth, Q[i], wl.metric)).sum())
        rec[i] = min(hits, need) / need
    return {"recall": float(rec.mean()) if m else float("nan"), "worst_query_recall": float(rec.min()) if m else None,
            "short_results": short, "out_of_window": outside, "duplicates": dups}


# ---- timing --------------------------------------------------------------------------------------

def _loop(f: Callable, idxs) -> tuple:
    out = np.full((len(idxs), K), -1, dtype=np.int64)
    was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for j, i in enumerate(idxs):
            r = f(i)
            out[j, :len(r)] = r[:K]
        t = time.perf_counter() - t0
    finally:
        if was:
            gc.enable()
    return t, out


def run_cell(f: Callable, nq: int, opts: dict, cap: Optional[int] = None) -> dict:
    """Probe 2 queries, then as many as fit in the cell budget; median of up to `repeats` passes."""
    nq = min(nq, cap) if cap else nq
    npro = min(2, nq)
    tp, outp = _loop(f, range(npro))
    per = tp / max(npro, 1)
    if per > opts["slow"] or npro == nq:
        return {"queries": npro, "passes_s": [tp], "time_s": tp, "qps": npro / tp if tp > 0 else float("inf"),
                "per_query_s": per, "probe_only": npro < nq, "_ids": outp}
    m = int(min(nq, max(opts["min_queries"], opts["cell_budget"] / max(per, 1e-9))))
    times, out = [], None
    spent = 0.0
    while len(times) < opts["repeats"]:
        t, out = _loop(f, range(m))
        times.append(t)
        spent += t
        if spent + t > opts["cell_budget"] * 1.5:
            break
    tm = median(times)
    return {"queries": m, "passes_s": times, "time_s": tm, "qps": m / tm if tm > 0 else float("inf"),
            "per_query_s": tm / m, "probe_only": False, "_ids": out}


def call_overhead(wl: Workload, calls: int = 2000) -> dict:
    """Per-call cost floor, one thread: each method on an empty window (lo > hi, or an empty slice)."""
    Q = np.ascontiguousarray(wl.ds.Q[:8], dtype=np.float32)
    lo = np.full(len(Q), 1.0)
    hi = np.full(len(Q), 0.0)
    cnt = np.zeros(len(Q), dtype=np.int64)
    out = {}
    for key in ("knnsql", "prefilter_slice", "prefilter_flat"):
        f = getattr(wl, "fn_" + key)(Q, lo, hi, cnt, 16)
        n = calls if key != "prefilter_flat" else 30
        _loop(lambda i: f(i % len(Q)), range(20))
        ts = [_loop(lambda i: f(i % len(Q)), range(n))[0] / n * 1e6 for _ in range(3)]
        out[key + "_us"] = median(ts)
    return out


def window_plans(g, Q, lo, hi, ef: int, m: int) -> Optional[dict]:
    """Untimed: the core's plan per query (0 exact window scan, 1 two-hop filtered beam, 2 a beam + exact
    fallback, 3 in-search postfilter beam, 4 bucket-graph beams)."""
    try:
        from knnsql import _ffi

        ffi, lib = _ffi.ffi, _ffi.lib()
        counts = [0, 0, 0, 0, 0]
        for i in range(min(m, Q.shape[0])):
            q = np.ascontiguousarray(Q[i:i + 1], dtype=np.float32)
            ids = np.empty((1, K), dtype=np.int64)
            dists = np.empty((1, K), dtype=np.float32)
            found = np.empty(1, dtype=np.uintp)
            plans = np.zeros(1, dtype=np.intc)
            buf = _ffi.errbuf()
            st = lib.knn_graph_query_window(g._handle, ffi.from_buffer("float[]", q), 1, K, int(ef), float(lo[i]),
                                            float(hi[i]), 1, ffi.from_buffer("int64_t[]", ids),
                                            ffi.from_buffer("float[]", dists),
                                            ffi.cast("size_t *", ffi.from_buffer("size_t[]", found)),
                                            ffi.cast("int *", ffi.from_buffer("int[]", plans)), buf, _ffi.ERRMSG_LEN)
            _ffi.check(st, buf)
            counts[int(plans[0])] += 1
        tot = sum(counts) or 1
        return {"exact": counts[0] / tot, "graph": counts[1] / tot, "post": counts[3] / tot, "fallback": counts[2] / tot,
                "bucket": counts[4] / tot, "queries": sum(counts)}
    except Exception as exc:  # diagnostics only
        return {"error": f"{type(exc).__name__}: {exc}"}


# ---- per fraction --------------------------------------------------------------------------------

def _fraction_inputs(wl: Workload, exp, opts, rng, adv: Optional[dict]) -> tuple:
    """(Q, lo, hi, cnt, meta) for one fraction: exp is an int i (fraction 2^-i) or "cluster" (adversarial)."""
    import datasets

    nq = opts["queries"]
    nl = wl.n_labelled
    if exp == "cluster":  # Engels: window = exactly one cluster, query near another one
        C = adv["clusters"]
        wc = rng.integers(0, C, size=nq)
        qc = (wc + rng.integers(1, C, size=nq)) % C
        lo, hi = wc - 0.5, wc + 0.5
        cnt = np.searchsorted(wl.sorted_labels, hi, "right") - np.searchsorted(wl.sorted_labels, lo, "left")
        Q = datasets.adversarial_query(adv["means"], qc, rng)
        return Q, lo.astype(np.float64), hi.astype(np.float64), cnt, {"fraction": 1.0 / C, "w_target": nl // C}
    frac = 2.0 ** -exp
    w = max(1, int(round(frac * nl)))
    lo, hi, cnt = make_windows(wl.sorted_labels, w, nq, rng)
    if adv is not None:  # query near a cluster that does not meet the window (if any)
        C = adv["clusters"]
        first = np.floor(lo + 0.5).astype(int)
        last = np.floor(hi + 0.5).astype(int)
        qc = np.empty(nq, dtype=int)
        for i in range(nq):
            free = np.r_[0:max(first[i], 0), min(last[i] + 1, C):C]
            qc[i] = rng.choice(free) if len(free) else rng.integers(0, C)
        Q = datasets.adversarial_query(adv["means"], qc, rng)
    else:
        Q = wl.ds.Q[:nq]
    return np.ascontiguousarray(Q, dtype=np.float32), lo, hi, cnt, {"fraction": frac, "w_target": w}


def run_fraction(wl: Workload, exp, opts, methods, rng, adv) -> dict:
    Q, lo, hi, cnt, meta = _fraction_inputs(wl, exp, opts, rng, adv)
    nq = Q.shape[0]
    t0 = time.perf_counter()
    gt_rows, gt_d64 = ground_truth(wl, Q, lo, hi, cnt)
    gt_s = time.perf_counter() - t0
    sample = rng.choice(nq, size=min(opts["numpy_check"], nq), replace=False)
    chk = numpy_check(wl, Q, lo, hi, gt_d64, sample)
    if chk["disagreements"]:
        raise AssertionError(f"{wl.name} 2^-{exp}: knnsql flat and numpy disagree on queries {chk['disagreements']}")
    res = {"exp": exp, **meta, "queries": nq, "w_median": float(np.median(cnt)), "w_min": int(cnt.min()),
           "w_max": int(cnt.max()), "gt_s": gt_s, "numpy_check": chk, "methods": {}}
    if "vss" in methods:  # kept for run_vss_window (popped there)
        nv = min(nq, opts["vss_queries"])
        res["_vss_in"] = {"Q": Q[:nv], "lo": lo[:nv], "hi": hi[:nv], "cnt": cnt[:nv], "gt_d64": gt_d64[:nv]}
    label = f"2^-{exp}" if exp != "cluster" else "1 cluster"
    for key in methods:
        if key in ("knnsql_sql", "knnsql_sql_batch", "knnsql_ffi", "vss"):
            continue  # after the knnsql sweep (uses its ef); vss once per workload (run_vss_window)
        make = getattr(wl, "fn_" + key)
        if key in SWEPT:
            pts = []
            t_sweep = time.perf_counter()
            for ef in opts["efs"]:
                settle(0.02)
                cell = run_cell(make(Q, lo, hi, cnt, ef), nq, opts)
                ids = cell.pop("_ids")
                sc = score(wl, ids, Q[:cell["queries"]], lo, hi, cnt, gt_d64)
                pt = {"ef": ef, **cell, **sc}
                if key == "knnsql":
                    pt["plans"] = window_plans(wl.g, Q, lo, hi, ef, min(cell["queries"], opts["plan_queries"]))
                pts.append(pt)
                spent = time.perf_counter() - t_sweep
                reached = max(p["recall"] for p in pts) >= THRESHOLD
                if (sc["recall"] >= STOP_RECALL or cell["per_query_s"] > opts["slow"]
                        or (reached and spent > opts["sweep_budget"]) or spent > 3 * opts["sweep_budget"]):
                    break
        else:
            cap = opts["duck_queries"] if key == "duckdb_sql" else None
            settle(0.02)
            cell = run_cell(make(Q, lo, hi, cnt, None), nq, opts, cap=cap)
            ids = cell.pop("_ids")
            pts = [{"ef": None, **cell, **score(wl, ids, Q[:cell["queries"]], lo, hi, cnt, gt_d64)}]
        res["methods"][key] = summarise(pts)
        b = res["methods"][key]
        log(f"    {label:<9} {LABELS[key]:<26} best QPS@{THRESHOLD} {fmt(b['best_qps'])} "
            f"(ef {b['best_ef']}, recall {fmt(b['best_recall'])}); {len(pts)} point(s), "
            f"max recall {fmt(b['max_recall'])}")
    # knnsql SQL at the ef the numpy API needed
    kb = res["methods"].get("knnsql")
    ef_sql = (kb["best_ef"] or kb["points"][-1]["ef"]) if kb else 64
    if "knnsql_ffi" in methods:
        settle(0.02)
        cell = run_cell(wl.fn_knnsql_ffi(Q, lo, hi, cnt, ef_sql), nq, opts)
        ids = cell.pop("_ids")
        res["methods"]["knnsql_ffi"] = summarise([{"ef": ef_sql, **cell, **score(wl, ids, Q[:cell["queries"]], lo,
                                                                                   hi, cnt, gt_d64)}])
    if "knnsql_sql" in methods:
        settle(0.02)
        cell = run_cell(wl.fn_knnsql_sql(Q, lo, hi, cnt, ef_sql), nq, opts, cap=opts["sql_queries"])
        ids = cell.pop("_ids")
        res["methods"]["knnsql_sql"] = summarise([{"ef": ef_sql, **cell, **score(wl, ids, Q[:cell["queries"]], lo,
                                                                                   hi, cnt, gt_d64)}])
    if "knnsql_sql_batch" in methods:
        res["methods"]["knnsql_sql_batch"] = summarise([sql_batch(wl, Q, lo, hi, cnt, ef_sql, gt_d64, opts)])
    for key in ("knnsql_ffi", "knnsql_sql", "knnsql_sql_batch"):
        if key in res["methods"]:
            b = res["methods"][key]
            log(f"    {label:<9} {LABELS[key]:<26} QPS {fmt(b['points'][0]['qps'])} at ef {ef_sql}, recall "
                f"{fmt(b['points'][0]['recall'])}")
    return res


def sql_batch(wl: Workload, Q, lo, hi, cnt, ef, gt_d64, opts) -> dict:
    import pyarrow as pa

    nq = Q.shape[0]
    con = wl.con
    vec = pa.FixedSizeListArray.from_arrays(pa.array(Q.reshape(-1), type=pa.float32()), wl.d)
    con.register("_win_q", pa.table({"qid": pa.array(np.arange(nq, dtype=np.int64)), "emb": vec,
                                     "lo": pa.array(lo), "hi": pa.array(hi)}))
    con.execute(f"CREATE OR REPLACE TABLE queries AS SELECT qid, emb::FLOAT[{wl.d}] AS emb, lo, hi FROM _win_q")
    con.unregister("_win_q")
    sql = f"SELECT qid, knn('win', emb, {K}, lo, hi, {int(ef)}) AS r FROM queries"

    def once():
        cur = con.execute(sql)
        return cur.to_arrow_table() if hasattr(cur, "to_arrow_table") else cur.fetch_arrow_table()
    once()  # warm-up
    times, tbl = [], None
    for _ in range(max(1, opts["repeats"])):
        gc.disable()
        t0 = time.perf_counter()
        tbl = once()
        times.append(time.perf_counter() - t0)
        gc.enable()
    out = np.full((nq, K), -1, dtype=np.int64)
    qid = tbl.column("qid").to_numpy()
    col = tbl.column("r").combine_chunks()
    lens = np.diff(col.offsets.to_numpy())
    flat = col.flatten().field("id").to_numpy()
    pos = 0
    for q, ln in zip(qid, lens):
        out[q, :min(ln, K)] = flat[pos:pos + min(ln, K)]
        pos += ln
    tm = median(times)
    return {"ef": ef, "queries": nq, "passes_s": times, "time_s": tm, "qps": nq / tm, "per_query_s": tm / nq,
            "probe_only": False, **score(wl, out, Q, lo, hi, cnt, gt_d64)}


def summarise(points: List[dict]) -> dict:
    ok = [p for p in points if p["recall"] >= THRESHOLD]
    best = max(ok, key=lambda p: p["qps"]) if ok else None
    return {"points": points, "best_qps": best["qps"] if best else None, "best_ef": best["ef"] if best else None,
            "best_recall": best["recall"] if best else None, "max_recall": max(p["recall"] for p in points)}


# ---- builds per base dataset ---------------------------------------------------------------------

def build_base(ds, methods, opts) -> dict:
    """Label-independent structures shared by a base dataset's workloads: hnswlib, a plain knnsql graph."""
    import knnsql

    base = {"build": {}}
    pg = opts.get("plain_graph", "auto")
    if pg == "all" or (pg == "auto" and ds.n <= PLAIN_AUTO_MAX_ROWS):
        settle(0.5)
        r0 = trimmed_rss()
        s0 = cpu_snapshot()
        p = knnsql.Index(ds.dim, ds.metric, kind="graph", m=M, ef_construction=EF_CONSTRUCTION, ef=64, seed=42)
        t0 = time.perf_counter()
        p.add(ds.X, np.arange(ds.n, dtype=np.int64))
        t = time.perf_counter() - t0
        base["build"]["plain_graph"] = {"build_s": t, "memory_bytes": int(p.memory_bytes),
                                        "rss_delta_bytes": trimmed_rss() - r0, "threads": os.cpu_count(),
                                        "noise": foreign_load(s0, cpu_snapshot())}
        log(f"  knnsql plain graph:  {t:.1f} s, {p.memory_bytes / 2**20:.1f} MiB reported, "
            f"{base['build']['plain_graph']['rss_delta_bytes'] / 2**20:.1f} MiB RSS")
        del p
    else:
        log(f"  knnsql plain graph:  skipped ({ds.n:,} rows > {PLAIN_AUTO_MAX_ROWS:,}; --plain-graph all builds it)")
    if "hnswlib" in methods:
        import hnswlib

        space = {"cosine": "cosine", "l2": "l2", "ip": "ip"}[ds.metric]
        h = hnswlib.Index(space=space, dim=ds.dim)
        h.init_index(max_elements=ds.n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=42)
        settle(0.5)
        t0 = time.perf_counter()
        h.add_items(ds.X, np.arange(ds.n, dtype=np.int64), num_threads=-1)
        base["build"]["hnswlib"] = {"build_s": time.perf_counter() - t0, "threads": os.cpu_count(),
                                    "version": getattr(hnswlib, "__version__", None)}
        h.set_num_threads(1)
        base["hnswlib"] = h
        log(f"  hnswlib:             {base['build']['hnswlib']['build_s']:.1f} s")
    return base


def workload_labels(kind: str, ds) -> tuple:
    import datasets

    if kind == "random":
        return np.random.default_rng(7).random(ds.n), None
    if kind == "rank":
        return ds.ids.astype(np.float64), None
    if kind == "installed_size":
        return datasets.minilm_installed_size(ds), None
    if kind == "adversarial":
        per = ds.info["per_cluster"]
        parts = datasets.adversarial_parts(per)
        if not np.array_equal(parts["X"], ds.X):
            raise AssertionError("adversarial_parts and load_adversarial disagree")
        return parts["labels"], {"clusters": int(parts["means"].shape[0]), "means": parts["means"]}
    raise ValueError(kind)


def run(args) -> dict:
    import datasets

    opts = dict(QUICK if args.quick else FULL)
    for k in ("efs", "exponents", "queries", "cell_budget", "min_queries", "duck_queries", "sql_queries", "plain_graph",
              "vss_queries"):
        v = getattr(args, k, None)
        if v is not None:
            opts[k] = v
    if args.repeats:
        opts["repeats"] = args.repeats
    opts["vss_python"] = str(getattr(args, "vss_python", None) or VSS_PYTHON)
    methods = args.methods or list(METHODS)
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    wnames = args.workloads or [w for w, (b, _) in WORKLOADS.items() if b in args.datasets]
    for w in wnames:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    opts["methods"] = methods
    opts["workloads"] = wnames
    blas = _Blas()
    blas_before = blas.get()
    blas.set(1)  # the slice prefilter (and the numpy checks) on one core
    opts["numpy_blas_threads"] = {"before": blas_before, "during": blas.get()}

    out, skipped = {}, {}
    bases = []
    for w in wnames:
        if WORKLOADS[w][0] not in bases:
            bases.append(WORKLOADS[w][0])
    try:
        for bname in bases:
            rows = args.rows or (QUICK_ROWS.get(bname) if args.quick else None)
            log(f"dataset {bname}" + (f" (first {rows:,} rows)" if rows else ""))
            try:
                ds = datasets.load(bname, max_rows=rows)
            except datasets.DatasetMissing as exc:
                if not args.skip_missing:
                    raise
                log(f"  SKIPPED: {exc}")
                for w in wnames:
                    if WORKLOADS[w][0] == bname:
                        skipped[w] = str(exc)
                continue
            base = build_base(ds, methods, opts)
            for w in [w for w in wnames if WORKLOADS[w][0] == bname]:
                out[w] = run_workload(w, ds, base, methods, opts)
            base.clear()
            del ds
    finally:
        if blas_before:
            blas.set(blas_before)
    res = {"options": opts, "workloads": out, "skipped": skipped}
    res["targets"] = evaluate_targets(res)
    res["anomalies"] = [a for r in out.values() for a in r["anomalies"]]
    return res


def run_workload(wname: str, ds, base: dict, methods, opts) -> dict:
    kind = WORKLOADS[wname][1]
    log(f"workload {wname}: labels {LABEL_DESC[kind]}")
    labels, adv = workload_labels(kind, ds)
    wl = Workload(wname, ds, labels, opts, base)
    snap0 = cpu_snapshot()
    rng = np.random.default_rng([ord(c) for c in wname])
    fr = []
    overhead = {}
    try:
        wl.build_all(methods)
        overhead = call_overhead(wl)
        log(f"  per-call floor (empty window): knnsql Index.search {overhead['knnsql_us']:.1f} us, "
            f"slice prefilter {overhead['prefilter_slice_us']:.1f} us, flat {overhead['prefilter_flat_us']:.1f} us")
        exps = list(opts["exponents"]) + (["cluster"] if adv is not None else [])
        for e in exps:
            fr.append(run_fraction(wl, e, opts, methods, rng, adv))
    finally:
        wl.close()
        if "vss" in methods and fr:
            vss = run_vss_window(wl, fr, opts)
            if vss.get("build_s") is not None:
                wl.build["vss"] = {"build_s": vss["build_s"], "memory_bytes": vss.get("approx_memory_bytes"),
                                   "version": vss.get("duckdb"), "plan_uses_index": vss.get("plan_uses_index"),
                                   "query_form": vss.get("query_form")}
                if vss.get("build_rss_delta_bytes") is not None:
                    wl.build["vss"]["rss_delta_bytes"] = vss["build_rss_delta_bytes"]
            if "error" in vss:
                log(f"  vss: {vss['error']}")
                wl.build["vss_error"] = vss["error"]
        for f in fr:
            f.pop("_vss_in", None)
    build = dict(wl.build, plain_graph=base["build"].get("plain_graph"), hnswlib=base["build"].get("hnswlib"))
    anomalies = find_anomalies(wname, fr, base)
    return {"workload": wname, "dataset": ds.name, "description": ds.description, "labels": LABEL_DESC[kind],
            "n": ds.n, "n_labelled": wl.n_labelled, "dim": ds.dim, "metric": ds.metric, "k": K, "build": build,
            "fractions": fr, "cpu_noise": foreign_load(snap0, cpu_snapshot()), "anomalies": anomalies,
            "call_overhead": overhead,
            "hnswlib_failures": base.get("hnswlib_failures", [0])[0]}


def run_vss_window(wl: Workload, fr: List[dict], opts: dict) -> dict:
    """DuckDB vss (HNSW on emb, DuckDB 1.5.5 in its own venv, see _vss_worker.py) on each fraction's first
    queries with the DuckDB SQL baseline's WHERE; scores them into f["methods"]["vss"]. One subprocess (one
    index build) per workload. Returns the worker's summary or {"error": ...}."""
    import json
    import subprocess
    import tempfile

    python = Path(opts["vss_python"])
    if not python.is_file():
        return {"error": f"{python} not found: create the venv with `python -m venv {python.parent.parent} && "
                         f"{python.parent}/pip install duckdb==1.5.5 duckdb-extension-vss==1.5.5 numpy pyarrow`"}
    import pyarrow as pa
    import pyarrow.parquet as pq

    log(f"  DuckDB vss (subprocess): {opts['vss_queries']} statements per fraction x ef {opts['vss_efs']}")
    with tempfile.TemporaryDirectory(prefix="knnsql-window-vss-") as tmp:
        tmp = Path(tmp)
        vec = pa.FixedSizeListArray.from_arrays(pa.array(wl.X.reshape(-1), type=pa.float32()), wl.d)
        lab = pa.array(wl.labels, type=pa.float64(), from_pandas=True)  # NaN -> NULL: never in a window
        pq.write_table(pa.table({"id": pa.array(wl.rows), "emb": vec, "label": lab}), tmp / "base.parquet",
                       compression="none")
        frs = []
        for j, f in enumerate(fr):
            x = f["_vss_in"]
            np.save(tmp / f"q{j}.npy", np.ascontiguousarray(x["Q"], dtype=np.float32))
            frs.append({"queries": str(tmp / f"q{j}.npy"), "lo": [float(v) for v in x["lo"]],
                        "hi": [float(v) for v in x["hi"]]})
        job = {"parquet": str(tmp / "base.parquet"), "dim": wl.d, "metric": wl.metric, "m": M,
               "ef_construction": EF_CONSTRUCTION, "k": K, "efs": opts["vss_efs"], "threads_build": 0,
               "threads_search": 1, "window": frs}
        (tmp / "job.json").write_text(json.dumps(job))
        worker = Path(__file__).resolve().parent / "_vss_worker.py"
        try:
            p = subprocess.run([str(python), str(worker), str(tmp / "job.json")], stdout=subprocess.PIPE,
                               stderr=None, text=True, timeout=opts["vss_timeout"])
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {opts['vss_timeout']} s"}
        if p.returncode != 0:
            return {"error": f"worker exited with status {p.returncode}", "stdout_tail": p.stdout[-2000:]}
        try:
            out = json.loads(p.stdout)
        except json.JSONDecodeError:
            return {"error": "worker printed no JSON", "stdout_tail": p.stdout[-2000:]}
    for f, pts_in in zip(fr, out.pop("window", [])):
        x = f["_vss_in"]
        pts = []
        for pt in pts_in:
            ids = np.array(pt["ids"], dtype=np.int64)
            t = sum(pt["latencies_s"])
            sc = score(wl, ids, x["Q"], x["lo"], x["hi"], x["cnt"], x["gt_d64"])
            pts.append({"ef": pt["ef"], "queries": len(ids), "passes_s": [t], "time_s": t,
                        "qps": len(ids) / t if t > 0 else float("inf"), "per_query_s": t / max(len(ids), 1),
                        "probe_only": False, **sc})
        if pts:
            f["methods"]["vss"] = summarise(pts)
            b = f["methods"]["vss"]
            log(f"    {_flabel(f):<9} {LABELS['vss']:<26} best QPS@{THRESHOLD} {fmt(b['best_qps'])}, max recall "
                f"{fmt(b['max_recall'])} ({len(pts)} ef)")
    return out


def _flabel(f: dict) -> str:
    return "1 cluster" if f["exp"] == "cluster" else f"2^-{f['exp']}"


def find_anomalies(wname: str, fr: List[dict], base: Optional[dict] = None) -> List[str]:
    """Correctness problems of the knnsql methods (and out-of-window / duplicate rows of any method)."""
    out = []
    for f in fr:
        for key, b in f["methods"].items():
            for p in b["points"]:
                if p["out_of_window"] or p["duplicates"] or (key in KNNSQL_KEYS and p["short_results"]):
                    out.append(f"{wname} {_flabel(f)} {LABELS[key]} ef={p['ef']}: {p['short_results']} queries with "
                               f"fewer than min(k, window) rows, {p['out_of_window']} with out-of-window rows, "
                               f"{p['duplicates']} with duplicate ids (of {p['queries']})")
            if key in KNNSQL_KEYS and b["max_recall"] < THRESHOLD and not _subset_only(f, key, b):
                last = b["points"][-1]
                out.append(f"{wname} {_flabel(f)} {LABELS[key]}: recall@10 {last['recall']:.3f} at ef={last['ef']} "
                           f"(max over the sweep {b['max_recall']:.3f}) < {THRESHOLD}")
    return out


def _subset_only(f: dict, key: str, b: dict) -> bool:
    """knn_search runs on the first few queries only: below 0.95 there while the numpy API, at the same ef over
    all queries, reaches 0.95 is a sampling effect, not a separate problem (same graph, same core call)."""
    if key != "knnsql_sql":
        return False
    ef = b["points"][0]["ef"]
    kp = next((p for p in f["methods"].get("knnsql", {}).get("points", []) if p["ef"] == ef), None)
    return bool(kp) and kp["recall"] >= THRESHOLD and b["points"][0]["queries"] < kp["queries"]


def subset_notes(wname: str, fr: List[dict]) -> List[str]:
    out = []
    for f in fr:
        b = f["methods"].get("knnsql_sql")
        if b and b["max_recall"] < THRESHOLD and _subset_only(f, "knnsql_sql", b):
            p = b["points"][0]
            kp = next(x for x in f["methods"]["knnsql"]["points"] if x["ef"] == p["ef"])
            out.append(f"{wname} {_flabel(f)}: knnsql SQL knn_search recall@10 {p['recall']:.3f} on its first "
                       f"{p['queries']} queries at ef={p['ef']}; the numpy API at that ef over {kp['queries']} "
                       f"queries: {kp['recall']:.3f}")
    return out


# ---- targets -------------------------------------------------------------------------------------

def _best_of(f: dict, keys) -> tuple:
    """(QPS, key) of the fastest of `keys` at recall >= 0.95 at this fraction."""
    cands = [(f["methods"][k]["best_qps"], k) for k in keys if k in f["methods"] and f["methods"][k]["best_qps"]]
    return max(cands) if cands else (None, None)


def evaluate_targets(res: dict) -> dict:
    """T1: knnsql >= the best baseline at every fraction; T2: >= 10x at 2^-4 ... 2^-10 on >= 2 datasets.
    Evaluated against the brief's baselines (flat prefilter, postfilter) and strictly (+ slice prefilter)."""
    out = {}
    for sname, keys in BASELINE_SETS.items():
        per = {}
        for w, r in res["workloads"].items():
            rows = []
            for f in r["fractions"]:
                k = f["methods"].get("knnsql", {}).get("best_qps")
                bq, bk = _best_of(f, keys)
                rows.append({"exp": f["exp"], "knnsql_qps": k, "baseline_qps": bq, "baseline": bk,
                             "ratio": (k / bq) if (k and bq) else None})
            core = [x for x in rows if x["exp"] != "cluster"]
            miss = [x for x in core if x["ratio"] is None or x["ratio"] < 1.0]
            band = [x for x in core if x["exp"] in TARGET_BAND]
            band_r = [x["ratio"] for x in band]
            per[w] = {"rows": rows, "t1_holds": not miss, "t1_misses": [x["exp"] for x in miss],
                      "t2_holds": bool(band) and all(x is not None and x >= 10.0 for x in band_r),
                      "t2_min": min(band_r) if band and None not in band_r else None,
                      "t2_max": max([x for x in band_r if x is not None] or [None]) if band else None,
                      "band_fractions": len(band)}
        datasets_ok = sorted({res["workloads"][w]["dataset"] for w, v in per.items() if v["t2_holds"]})
        out[sname] = {"baselines": list(keys), "per_workload": per,
                      "t1_all": all(v["t1_holds"] for v in per.values()) if per else None,
                      "t2_workloads": [w for w, v in per.items() if v["t2_holds"]], "t2_datasets": datasets_ok,
                      "t2_holds": len(datasets_ok) >= 2}
    return out


# ---- report --------------------------------------------------------------------------------------

def _q(b: Optional[dict]) -> str:
    if not b:
        return ""
    if b["best_qps"] is None:
        return f"<0.95 ({b['max_recall']:.2f})"
    s = fmt(b["best_qps"])
    best = next((p for p in b["points"] if p["ef"] == b["best_ef"]), None)
    if best and best.get("probe_only"):
        s += "~"
    return s


def _plan_cell(b: Optional[dict]) -> str:
    if not b or b["best_qps"] is None:
        return "-"
    p = next((x for x in b["points"] if x["ef"] == b["best_ef"]), None)
    pl = (p or {}).get("plans") or {}
    if "exact" not in pl:
        return "-"
    return (f"{100 * pl['exact']:.0f}/{100 * pl.get('bucket', 0):.0f}/{100 * pl.get('post', 0):.0f}/"
            f"{100 * pl['graph']:.0f}/{100 * pl['fallback']:.0f}")


def _ratio_s(x) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


def _short(k: Optional[str]) -> str:
    return {"prefilter_flat": "pre-flat", "prefilter_slice": "pre-slice", "postfilter": "post"}.get(k, "-")


def summary_tables(res: dict) -> List[str]:
    ws = res["workloads"]
    if not ws:
        return []
    exps = []
    for r in ws.values():
        for f in r["fractions"]:
            if f["exp"] not in exps:
                exps.append(f["exp"])
    L = []
    titles = {"brief": "knnsql graph QPS / max(prefilter via flat + lo/hi, postfilter), recall@10 >= 0.95",
              "strict": "knnsql graph QPS / max(prefilter via flat + lo/hi, prefilter on the sorted slice, "
                        "postfilter), recall@10 >= 0.95"}
    for sname in ("brief", "strict"):
        per = res["targets"][sname]["per_workload"]
        L += [f"#### Summary ({sname}): {titles[sname]}", ""]
        rows = []
        for e in exps:
            row = ["1 cluster" if e == "cluster" else f"2^-{e}"]
            for w in ws:
                t = next((x for x in per[w]["rows"] if x["exp"] == e), None)
                row.append("" if t is None else f"{_ratio_s(t['ratio'])} ({fmt(t['knnsql_qps'])} / "
                                                 f"{fmt(t['baseline_qps'])} {_short(t['baseline'])})")
            rows.append(row)
        L += [md_table(["fraction"] + list(ws), rows), ""]
    L += ["Cells: ratio (knnsql QPS / best baseline QPS, baseline). pre-flat = prefilter via the flat index + lo/hi "
          "(scores every row), pre-slice = prefilter on the label-sorted slice (numpy, 1 thread), post = doubling "
          "postfilter on the same graph.", ""]
    return L


def targets_markdown(res: dict) -> List[str]:
    L = ["### Targets", ""]
    rows = []
    for sname in ("brief", "strict"):
        t = res["targets"][sname]
        for w, v in t["per_workload"].items():
            core = [x for x in v["rows"] if x["exp"] != "cluster"]
            worst = min(core, key=lambda x: x["ratio"] if x["ratio"] is not None else -1) if core else None
            t1 = "holds" if v["t1_holds"] else "misses at " + ", ".join(f"2^-{e}" for e in v["t1_misses"])
            t2 = ("holds" if v["t2_holds"] else "misses") + (
                f" (band min {_ratio_s(v['t2_min'])}, max {_ratio_s(v['t2_max'])})" if v["band_fractions"]
                else " (band not run)")
            rows.append([sname, w, t1, (f"{_ratio_s(worst['ratio'])} at 2^-{worst['exp']}" if worst else "-"), t2])
    L.append(md_table(["baselines", "workload", "T1: knnsql >= best baseline at every fraction", "worst ratio",
                       "T2: >= 10x at 2^-4 ... 2^-10"], rows, "lllll"))
    L.append("")
    for sname in ("brief", "strict"):
        t = res["targets"][sname]
        L.append(f"- **{sname}** ({', '.join(t['baselines'])}): T1 at every fraction of every workload: "
                 f"**{'holds' if t['t1_all'] else 'misses'}**; T2 (>= 10x at 2^-4 ... 2^-10 on at least two "
                 f"datasets): **{'holds' if t['t2_holds'] else 'misses'}** (holds on: "
                 f"{', '.join(t['t2_workloads']) or 'none'}).")
    return L


def to_markdown(doc: dict) -> str:
    res = doc["results"]
    o = res["options"]
    L = [f"## Suite `window` — window-filtered k-NN, k = {K}", "",
         f"Run {doc['started']} ({doc['duration_s'] / 60:.1f} min), `{doc['command']}`.", "",
         machine_markdown(doc["machine"]), "",
         f"Each query has its own random window of a fraction 2^-i of the labelled rows (consecutive in label "
         f"order); recall@10 is tie-aware against the exact top-10 inside the window (over min(10, window rows)). "
         f"Cells: **highest QPS at recall@10 >= {THRESHOLD}**, single-threaded, one call per query "
         f"(from an ef sweep {o['efs']} where applicable; `<0.95 (r)` = never reached, r = best recall; "
         f"`~` = from 2 probe queries only, each slower than {o['slow']} s). Up to {o['queries']} queries per "
         f"fraction, fewer for slow cells (budget {o['cell_budget']} s per cell; DuckDB SQL {o['duck_queries']}, "
         f"knnsql SQL {o['sql_queries']} statements). *knnsql / best* = knnsql graph QPS over the best of "
         "prefilter (flat, slice) and postfilter. *plans* = share of the knnsql graph's queries (at its best ef) "
         "answered by exact window scan / bucket-graph beams / in-search postfilter beam / two-hop filtered beam / "
         "beam + exact fallback.", ""]
    ws = res["workloads"]
    if ws:
        L += ["### Summary", ""] + summary_tables(res) + targets_markdown(res) + [""]
        L += ["Per-call floor (one thread, empty window, us per call): " + "; ".join(
            f"{w}: knnsql {fmt(r['call_overhead'].get('knnsql_us'))}, slice prefilter "
            f"{fmt(r['call_overhead'].get('prefilter_slice_us'))}, flat prefilter "
            f"{fmt(r['call_overhead'].get('prefilter_flat_us'))}" for w, r in ws.items() if r.get("call_overhead")) + ".",
              ""]
    strict = res["targets"]["strict"]["per_workload"] if ws else {}
    for w, r in ws.items():
        L += [f"### {w}: {r['description']}", "", f"Labels: {r['labels']}; {r['n_labelled']:,} labelled rows.", ""]
        b = r["build"]
        wg, pg = b.get("window_graph") or {}, b.get("plain_graph") or {}
        brow = []
        for name, x in (("knnsql graph with labels (window-capable)", wg), ("knnsql graph without labels", pg),
                        ("hnswlib (same M, ef_construction)", b.get("hnswlib") or {}),
                        ("DuckDB vss HNSW (same M, ef_construction; DuckDB 1.5.5)", b.get("vss") or {})):
            if x:
                brow.append([name, fmt(x.get("build_s")), fmt(x["calibrate_s"]) if "calibrate_s" in x else "-",
                             ", ".join(f"{r:,}" for r in x["bucket_rows"]) if x.get("bucket_rows") else "-",
                             fmt((x.get("memory_bytes") or 0) / 2**20) if x.get("memory_bytes") else "-",
                             fmt(x["rss_delta_bytes"] / 2**20) if "rss_delta_bytes" in x else "-"])
        L.append(md_table(["index", "build s (all cores, with calibration and buckets)", "of which first window query s",
                           "bucket levels (rows per bucket)", "memory_bytes MiB", "RSS growth MiB"], brow))
        if wg and pg:
            L += ["", f"Window-capable / plain: build {_ratio_s(wg['build_s'] / pg['build_s'])}, memory_bytes "
                      f"{_ratio_s(wg['memory_bytes'] / pg['memory_bytes'])}, RSS growth "
                      f"{_ratio_s(wg['rss_delta_bytes'] / pg['rss_delta_bytes']) if pg['rss_delta_bytes'] > 0 else '-'}."
                      + (" (The plain graph is built once per dataset and shared by its label sets.)"
                         if r["dataset"] == "glove" else "")]
        elif wg:
            L += ["", "No plain graph for this dataset (skipped for time; `--plain-graph all` builds it)."]
        L.append("")
        keys = [k for k in METHODS if any(k in f["methods"] for f in r["fractions"])]
        rows = []
        for f in r["fractions"]:
            t = next(x for x in strict[w]["rows"] if x["exp"] == f["exp"])
            rows.append([_flabel(f), fmt(f["w_median"])] + [_q(f["methods"].get(k)) for k in keys]
                        + [_ratio_s(t["ratio"]), _plan_cell(f["methods"].get("knnsql"))])
        L.append(md_table(["fraction", "window rows"] + [LABELS[k] for k in keys] + ["knnsql / best", "plans"], rows))
        noise = r.get("cpu_noise") or {}
        L += ["", f"Other processes kept {fmt(noise.get('other_processes_cores'))} cores busy on average while this "
                  f"workload ran (steal {fmt(noise.get('steal_cores'))}). hnswlib queries that raised (fewer than k "
                  f"found): {r.get('hnswlib_failures', 0)}.", ""]
        L += ["<details><summary>recall / QPS points (ef: recall @ QPS)</summary>", ""]
        drows = []
        for f in r["fractions"]:
            for k in SWEPT + ("knnsql_ffi", "knnsql_sql", "knnsql_sql_batch", "vss"):
                if k in f["methods"]:
                    pts = "; ".join(f"{p['ef']}: {p['recall']:.3f} @ {fmt(p['qps'])}" + ("~" if p["probe_only"] else "")
                                    for p in f["methods"][k]["points"])
                    drows.append([_flabel(f), LABELS[k], pts])
        L.append(md_table(["fraction", "method", "points"], drows, "lll"))
        L += ["", "</details>", ""]
    if res["skipped"]:
        L += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items()), ""]
    notes = [x for w, r in ws.items() for x in subset_notes(w, r["fractions"])]
    if notes:
        L += ["Sampling notes (not anomalies: knn_search is the same graph and core call as the numpy API, and "
              "returned the same result sets as the numpy API on all 200 queries of a separate check on minilm, full window, ef 48):", ""] + [f"- {x}" for x in notes] + [""]
    if res["anomalies"]:
        L += ["**Anomalies:**", ""] + [f"- {a}" for a in res["anomalies"]] + [""]
    else:
        L += ["No anomalies: every knnsql result had min(k, window rows) rows, all inside the window, no duplicates, "
              "and the knnsql sweeps reached recall@10 >= 0.95 at every fraction.", ""]
    return "\n".join(L)


def plot(doc: dict, outdir) -> List[str]:
    plt = try_import_pyplot()
    if plt is None:
        return []
    paths = []
    colors = {"knnsql": "#2ca02c", "knnsql_ffi": "#98df8a", "prefilter_flat": "#9467bd", "prefilter_slice": "#8c564b", "postfilter": "#ff7f0e",
              "hnswlib": "#d62728", "duckdb_sql": "#7f7f7f", "knnsql_sql": "#1f77b4", "knnsql_sql_batch": "#17becf", "vss": "#bcbd22"}
    for w, r in doc["results"]["workloads"].items():
        fig, ax = plt.subplots(figsize=(9.5, 4.8))
        fr = [f for f in r["fractions"] if f["exp"] != "cluster"]
        for k in METHODS:
            xs, ys = [], []
            for f in fr:
                b = f["methods"].get(k)
                if b and b["best_qps"]:
                    xs.append(f["fraction"])
                    ys.append(b["best_qps"])
            if xs:
                ax.plot(xs, ys, marker="o", ms=3.5, lw=2.2 if k == "knnsql" else 1.2, color=colors[k], label=LABELS[k])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("window fraction of the rows (log2)")
        ax.set_ylabel(f"QPS at recall@10 >= {THRESHOLD} (1 thread, log)")
        ax.set_title(f"{w}: {r['n']:,} x {r['dim']} ({r['metric']}), k = {K}", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
        fig.tight_layout()
        path = Path(outdir) / f"window-{w}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(str(path))
    return paths
