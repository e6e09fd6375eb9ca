"""One workload's indexes and methods: the knnsql graph, flat index, sorted copy and SQL tables it builds,
each method as fn(i) -> ids for query i, and the label-independent builds shared per base dataset."""

from __future__ import annotations

import ctypes
import glob
import os
import time
from typing import Optional

import numpy as np

from _common import cpu_snapshot, foreign_load, log, settle, trimmed_rss

from .config import EF_CONSTRUCTION, K, M, PLAIN_AUTO_MAX_ROWS


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

    def _sql_fn(self, sql: str, Q, lo, hi):
        """fn(i) -> ids of one SQL statement with $q, $lo, $hi bound to query i and its window."""
        con = self.con
        qs = [q.tolist() for q in Q]

        def f(i):
            rows = con.execute(sql, {"lo": float(lo[i]), "hi": float(hi[i]), "q": qs[i]}).fetchall()
            return np.array([r[0] for r in rows], dtype=np.int64)
        return f

    def fn_duckdb_sql(self, Q, lo, hi, cnt, ef):
        fn = "array_cosine_distance" if self.metric == "cosine" else "array_distance"
        return self._sql_fn(f"SELECT id FROM t WHERE label BETWEEN $lo AND $hi ORDER BY {fn}(emb, $q::FLOAT[{self.d}]) "
                            f"LIMIT {K}", Q, lo, hi)

    def fn_knnsql_sql(self, Q, lo, hi, cnt, ef):
        return self._sql_fn(f"SELECT id FROM knn_search('win', $q::FLOAT[{self.d}], k := {K}, lo := $lo, hi := $hi, "
                            f"ef := {int(ef)})", Q, lo, hi)


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
