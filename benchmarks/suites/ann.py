"""Suite "ann": approximate k-NN with HNSW graphs, k = 10: recall@10 against QPS, build time, memory, restore.

Every library builds one HNSW graph per dataset with the same parameters (M = 16 links per node, 2M on
the bottom layer, ef_construction = 200), using all cores, and then answers the same queries with a
sweep of the search beam ef (``--efs``). Single-threaded search for every contender:

====================  ==================================================================================
knnsql Index          ``knnsql.Index(d, metric, kind="graph", m=16, ef_construction=200)``; ``add(X, ids)``;
                      ``search(Q, 10, ef=ef, threads=1)``
knnsql SQL            ``knn_index_create(..)`` + ``SELECT knn_index_insert(name, id, emb) FROM base``;
                      one statement per query ``SELECT id FROM knn_search(name, $q::FLOAT[d], k := 10, ef := ef)``
                      (DuckDB threads = 1; a subset of the queries, ``--sql-queries``)
hnswlib               ``hnswlib.Index(space, d)``, ``init_index(M=16, ef_construction=200)``, ``add_items(num_threads=-1)``;
                      ``set_num_threads(1)``, ``set_ef(ef)``, ``knn_query(Q, 10)``
faiss                 ``IndexHNSWFlat(d, 16, METRIC_L2 | METRIC_INNER_PRODUCT)`` (unit vectors for cosine),
                      ``efConstruction = 200``; ``omp_set_num_threads(1)``, ``hnsw.efSearch = ef``
usearch               ``usearch.index.Index(ndim=d, metric="cos" | "l2sq", dtype="f32", connectivity=16,
                      expansion_add=200)``; ``expansion_search = ef``, ``search(Q, 10, threads=1)``
DuckDB vss            DuckDB 1.5.5 + vss 1.5.5 in a separate venv (subprocess): ``CREATE INDEX .. USING HNSW (emb)
                      WITH (metric = 'cosine' | 'l2sq', M = 16, ef_construction = 200)``; one statement per query
                      ``SELECT id FROM t ORDER BY array_cosine_distance(emb, $q::FLOAT[d]) LIMIT 10``
                      (``array_distance`` for l2sq) after ``SET hnsw_ef_search = ef``; DuckDB threads = 1;
                      fewer queries (``--vss-queries``) and a shorter ef sweep (``--vss-efs``)
====================  ==================================================================================

All-core batch (1000 queries at once, for the ratio SQL / numpy API): ``Index.search(Q, 10, ef=ef)`` against
``SELECT id, knn(name, emb, 10, ef) FROM queries`` over a 1000-row DuckDB table.

Restore: ``knn_index_dump`` into a table, ``knn_index_drop``, ``knn_index_restore`` from it; and
``Index.to_bytes`` / ``Index.from_bytes``; compared with the build time. The restored index answers the
queries (ids checked identical to the original index's).

Ground truth: ``knnsql.Index(kind="flat")`` (exact), cross-checked on a sample of queries against a numpy
float32 GEMM re-ranked in float64 (the run stops if they disagree). recall@10 is tie-aware: a returned id
counts when its float64 distance is within the exact 10th distance (+1e-5 relative), as in ann-benchmarks;
the strict id-set overlap is stored as well.

Timing: the single-threaded sweep runs ef by ef, cycling through the contenders within each ef, and
repeats that ``--repeats`` times; QPS = queries / median time. Builds run once each.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np

from _common import (trimmed_rss, cpu_snapshot, fmt, foreign_load, log, machine_markdown, md_table, median, quantile, ratio,
                     settle, timed, try_import_pyplot)

NAME = "ann"
SUMMARY = ("approximate k-NN (HNSW, k=10): recall@10 vs QPS, build time, memory, restore; knnsql Index + SQL "
           "vs hnswlib, faiss HNSW, usearch, DuckDB vss")
DEFAULT_DATASETS = ["glove", "fashion", "minilm"]

K = 10
M = 16
EF_CONSTRUCTION = 200
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384]
VSS_EFS = [16, 32, 64, 128, 256, 384]
VSS_PYTHON = Path.home() / ".cache" / "knnsql-bench" / "vss-venv" / "bin" / "python"
WORKER = Path(__file__).resolve().parent / "_vss_worker.py"

FULL = dict(repeats=3, queries=1000, sql_queries=500, vss_queries=500, efs=EFS, vss_efs=VSS_EFS,
            vss_timeout=900, vss_budget=150, numpy_check=100, reach_rows=10_000)
QUICK = dict(repeats=1, queries=200, sql_queries=30, vss_queries=30, efs=[10, 32, 64, 128, 256], vss_efs=[32, 128],
             vss_timeout=120, vss_budget=20, numpy_check=50, reach_rows=2000)
QUICK_ROWS = {"glove": 20_000, "fashion": 10_000, "minilm": 10_000, "synthetic": 20_000}

LABELS = {
    "knnsql": "knnsql Index",
    "knnsql_sql": "knnsql SQL",
    "hnswlib": "hnswlib",
    "faiss": "faiss HNSWFlat",
    "usearch": "usearch",
    "vss": "DuckDB vss",
}
SWEEP_KEYS = ["knnsql", "hnswlib", "faiss", "usearch"]   # in-process, single-threaded, batch of queries
THRESHOLDS = (0.95, 0.9)


def add_arguments(p) -> None:
    ints = lambda s: [int(x) for x in s.split(",") if x.strip()]  # noqa: E731
    p.add_argument("--efs", type=ints, default=None, help=f"ef sweep (default {','.join(map(str, EFS))})")
    p.add_argument("--queries", type=int, default=None, help="queries per sweep point (default 1000, quick 200)")
    p.add_argument("--sql-queries", type=int, default=None,
                   help="single SQL statements per ef for knnsql SQL latency (default 500, quick 30)")
    p.add_argument("--rows", type=int, default=None, help="cap base rows per dataset (default all; quick: small slices)")
    p.add_argument("--contenders", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=None,
                   help="subset of hnswlib,faiss,usearch,vss (knnsql always runs)")
    p.add_argument("--no-vss", action="store_true", help="skip DuckDB vss")
    p.add_argument("--vss-python", type=Path, default=None,
                   help=f"python of the venv with duckdb==1.5.5 and duckdb-extension-vss==1.5.5 (default {VSS_PYTHON})")
    p.add_argument("--vss-queries", type=int, default=None, help="queries per ef for vss (default 500, quick 30)")
    p.add_argument("--vss-efs", type=ints, default=None, help=f"vss ef sweep (default {','.join(map(str, VSS_EFS))})")
    p.add_argument("--vss-timeout", type=float, default=None,
                   help="seconds before the vss worker is killed, per dataset (default 900)")


# ---- memory --------------------------------------------------------------------------------------



def hnswlib_estimate(n: int, d: int, m: int) -> int:
    """hnswlib's own allocations: level-0 block (2M links + count, vector, label per node), upper-level links
    (expected 1/(M-1) levels per node), element levels, link-list pointers, label map, per-node mutexes."""
    lvl0 = n * (2 * m * 4 + 4 + d * 4 + 8)
    upper = n / (m - 1) * (m * 4 + 4)
    return int(lvl0 + upper + n * (4 + 8 + 40 + 40) + 65536 * 40)


# ---- contenders ----------------------------------------------------------------------------------

class Built:
    """One built index: how long it took, what it holds, and a single-threaded search(Q, ef) -> ids."""

    def __init__(self, key: str):
        self.key = key
        self.label = LABELS[key]
        self.info: dict = {}
        self.search: Optional[Callable[[np.ndarray, int], np.ndarray]] = None
        self.obj = None


def _build(key: str, fn: Callable[[], Built]) -> Built:
    settle(0.5)
    r0 = trimmed_rss()
    s0 = cpu_snapshot()
    t0 = time.perf_counter()
    b = fn()
    t = time.perf_counter() - t0
    noise = foreign_load(s0, cpu_snapshot())
    b.info.setdefault("build_s", t)
    b.info["rss_delta_bytes"] = trimmed_rss() - r0
    b.info["build_noise"] = noise
    log(f"  built {LABELS[key]:<16} {b.info['build_s']:7.2f} s ({b.info.get('build_threads')} threads), "
        f"memory {fmt(b.info.get('memory_bytes', 0) / 2**20)} MiB reported, "
        f"{fmt(b.info['rss_delta_bytes'] / 2**20)} MiB RSS delta")
    return b


def build_knnsql(ds) -> Built:
    import knnsql

    b = Built("knnsql")
    g = knnsql.Index(ds.dim, ds.metric, kind="graph", m=M, ef_construction=EF_CONSTRUCTION, ef=64, seed=42)
    t, _ = timed(g.add, ds.X, ds.ids)
    b.obj = g
    b.info.update(build_s=t, build_threads=os.cpu_count(), memory_bytes=g.memory_bytes,
                  memory_method="Index.memory_bytes", params=str(getattr(g, "params", "")))

    def search(Q, ef, threads=1):
        return g.search(Q, K, ef=ef, threads=threads)[0]
    b.search = search
    return b


def build_hnswlib(ds) -> Built:
    import hnswlib

    b = Built("hnswlib")
    space = {"cosine": "cosine", "l2": "l2", "ip": "ip"}[ds.metric]
    p = hnswlib.Index(space=space, dim=ds.dim)
    p.init_index(max_elements=ds.n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=42)
    t, _ = timed(lambda: p.add_items(ds.X, ds.ids, num_threads=-1))
    b.obj = p
    b.info.update(build_s=t, build_threads=os.cpu_count(), memory_bytes=hnswlib_estimate(ds.n, ds.dim, M),
                  memory_method="formula (data+links+label map+locks)", index_file_bytes=int(p.index_file_size()),
                  version=getattr(hnswlib, "__version__", None))

    def search(Q, ef, threads=1):
        p.set_num_threads(threads or os.cpu_count())
        p.set_ef(ef)
        return p.knn_query(Q, k=K)[0].astype(np.int64)
    b.search = search
    return b


def build_faiss(ds) -> Built:
    import faiss

    b = Built("faiss")
    mt = faiss.METRIC_INNER_PRODUCT if ds.metric in ("cosine", "ip") else faiss.METRIC_L2
    X = ds.X
    if ds.metric == "cosine":  # datasets are unit-norm already; make sure
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    ix = faiss.IndexHNSWFlat(ds.dim, M, mt)
    ix.hnsw.efConstruction = EF_CONSTRUCTION
    threads = faiss.omp_get_max_threads()
    t, _ = timed(ix.add, np.ascontiguousarray(X, dtype=np.float32))
    b.obj = ix
    h = ix.hnsw
    mem = ds.n * ds.dim * 4 + h.neighbors.size() * 4 + h.offsets.size() * 8 + h.levels.size() * 4
    b.info.update(build_s=t, build_threads=threads, memory_bytes=int(mem),
                  memory_method="vectors + neighbors + offsets + levels", version=faiss.__version__)
    ids = ds.ids

    def search(Q, ef, threads=1):
        faiss.omp_set_num_threads(threads or os.cpu_count())
        try:
            h.efSearch = ef
            if ds.metric == "cosine":
                Q = np.ascontiguousarray(Q / np.linalg.norm(Q, axis=1, keepdims=True), dtype=np.float32)
            lab = ix.search(Q, K)[1]
        finally:
            faiss.omp_set_num_threads(threads_default)
        out = np.full(lab.shape, -1, dtype=np.int64)
        ok = lab >= 0
        out[ok] = ids[lab[ok]]
        return out
    threads_default = threads
    b.search = search
    return b


def build_usearch(ds) -> Built:
    import usearch
    from usearch.index import Index

    b = Built("usearch")
    metric = {"cosine": "cos", "l2": "l2sq", "ip": "ip"}[ds.metric]
    u = Index(ndim=ds.dim, metric=metric, dtype="f32", connectivity=M, expansion_add=EF_CONSTRUCTION,
              expansion_search=64)
    t, _ = timed(lambda: u.add(ds.ids, ds.X, threads=0))
    b.obj = u
    b.info.update(build_s=t, build_threads=os.cpu_count(), memory_bytes=int(u.memory_usage),
                  memory_method="Index.memory_usage", version=usearch.__version__)

    def search(Q, ef, threads=1):
        u.expansion_search = ef
        return np.asarray(u.search(Q, K, threads=threads or 0).keys, dtype=np.int64)
    b.search = search
    return b


class SqlIndex:
    """The knnsql SQL side: a DuckDB table, a graph index built with knn_index_insert, and its queries."""

    def __init__(self, ds, Q: np.ndarray):
        import knnsql

        self.ds = ds
        self.db = knnsql.connect()
        self.con = self.db.con
        self.name = f"ann_{ds.name}"
        self.d = ds.dim
        t0 = time.perf_counter()
        self.con.register("_ann_src", knnsql.vectors_table(ds.X, ds.ids))
        self.con.execute("CREATE TABLE base AS SELECT * FROM _ann_src")
        self.con.unregister("_ann_src")
        self.con.register("_ann_q", knnsql.vectors_table(Q, np.arange(Q.shape[0], dtype=np.int64)))
        self.con.execute("CREATE TABLE queries AS SELECT * FROM _ann_q")
        self.con.unregister("_ann_q")
        self.load_s = time.perf_counter() - t0
        self.threads = self.con.execute("SELECT current_setting('threads')").fetchone()[0]

    def build(self) -> Built:
        b = Built("knnsql_sql")
        c = self.con
        c.execute(f"SELECT * FROM knn_index_create('{self.name}', dim := {self.d}, metric := '{self.ds.metric}', "
                  f"m := {M}, ef_construction := {EF_CONSTRUCTION})").fetchall()
        t0 = time.perf_counter()
        n = c.execute(f"SELECT knn_index_insert('{self.name}', id, emb) FROM base").fetchone()[0]
        t = time.perf_counter() - t0
        if n != self.ds.n:
            raise RuntimeError(f"knn_index_insert added {n} rows, expected {self.ds.n}")
        b.info.update(build_s=t, build_threads=self.threads, memory_bytes=self.memory_bytes(),
                      memory_method="knn_indexes().memory_bytes", table_load_s=self.load_s)
        b.obj = self
        return b

    def memory_bytes(self) -> int:
        return int(self.con.execute("SELECT memory_bytes FROM knn_indexes() WHERE name = ?", [self.name]).fetchone()[0])

    def set_threads(self, n: Optional[int]) -> None:
        self.con.execute(f"SET threads = {int(n or self.threads)}")

    def single(self, qs: List[list], ef: int) -> tuple:
        """One statement per query: (latencies, ids (m, K))."""
        sql = f"SELECT id FROM knn_search('{self.name}', $q::FLOAT[{self.d}], k := {K}, ef := {int(ef)})"
        c = self.con
        lat, ids = [], []
        gc.disable()
        try:
            for q in qs:
                t0 = time.perf_counter()
                rows = c.execute(sql, {"q": q}).fetchall()
                lat.append(time.perf_counter() - t0)
                ids.append([r[0] for r in rows] + [-1] * (K - len(rows)))
        finally:
            gc.enable()
        return lat, np.array(ids, dtype=np.int64)

    def overhead(self, qs: List[list]) -> dict:
        """Median latency of statements that only bind the query vector: as a parameter (the form timed) and
        as a literal (slower on DuckDB 2.0; vss on 1.5.5 is the other way round)."""
        out = {}
        for name, fn in (("param_bind_only", lambda q: self.con.execute(f"SELECT $q::FLOAT[{self.d}] IS NULL", {"q": q})),
                         ("literal_only", lambda q: self.con.execute(
                             "SELECT [" + ", ".join(map(repr, q)) + f"]::FLOAT[{self.d}] IS NULL"))):
            lat = []
            for q in qs:
                t0 = time.perf_counter()
                fn(q).fetchall()
                lat.append(time.perf_counter() - t0)
            out[name + "_median_ms"] = median(lat) * 1e3
        return out

    def knn_call(self, ef: int) -> str:
        """knn(name, emb, k, lo, hi, ef) (current signature) or knn(name, emb, k, ef) (before window search)."""
        if not hasattr(self, "_knn_form"):
            self._knn_form = None
            for form in ("knn('{n}', emb, {k}, NULL, NULL, {ef})", "knn('{n}', emb, {k}, {ef})"):
                try:
                    self.con.execute(f"SELECT {form.format(n=self.name, k=K, ef=64)} FROM queries LIMIT 1").fetchall()
                    self._knn_form = form
                    break
                except Exception as exc:  # noqa: PERF203
                    err = exc
            if self._knn_form is None:
                raise err
        return self._knn_form.format(n=self.name, k=K, ef=int(ef))

    def batch_fn(self, ef: int) -> Callable[[], object]:
        sql = f"SELECT id, {self.knn_call(ef)} AS r FROM queries"
        c = self.con

        def run():
            rel = c.sql(sql)
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
        return run

    @staticmethod
    def batch_ids(tbl, nq: int) -> np.ndarray:
        qid = tbl.column("id").to_numpy()
        col = tbl.column("r").combine_chunks()
        out = np.full((nq, K), -1, dtype=np.int64)
        lens = np.diff(col.offsets.to_numpy())
        flat = col.flatten().field("id").to_numpy()
        if np.all(lens == K):
            out[qid] = flat.reshape(-1, K)
        else:
            pos = 0
            for q, ln in zip(qid, lens):
                out[q, :ln] = flat[pos:pos + ln]
                pos += ln
        return out

    def restore_cycle(self, repeats: int) -> dict:
        """knn_index_dump into a table, then (drop + knn_index_restore) `repeats` times; the index stays restored."""
        c = self.con
        t0 = time.perf_counter()
        c.execute(f"CREATE OR REPLACE TABLE ann_dump AS SELECT * FROM knn_index_dump('{self.name}')")
        dump_s = time.perf_counter() - t0
        parts, nbytes = c.execute("SELECT count(*), sum(octet_length(bytes)) FROM ann_dump").fetchone()
        times = []
        for _ in range(repeats):
            c.execute(f"SELECT * FROM knn_index_drop('{self.name}')").fetchall()
            t0 = time.perf_counter()
            n = c.execute(f"SELECT knn_index_restore('{self.name}', part, bytes) FROM ann_dump").fetchone()[0]
            times.append(time.perf_counter() - t0)
            if n != self.ds.n:
                raise RuntimeError(f"knn_index_restore restored {n} rows, expected {self.ds.n}")
        return {"dump_s": dump_s, "restore_s": median(times), "restore_samples_s": times, "parts": int(parts),
                "bytes": int(nbytes)}

    def close(self) -> None:
        self.db.close()


# ---- ground truth and recall ---------------------------------------------------------------------

def ground_truth(ds, Q: np.ndarray, n_check: int) -> tuple:
    """Exact top-K with knnsql's flat index: (rows into ds.X (m, K), float64 distances (m, K), info)."""
    import knnsql

    from suites.exact import _dist64, reference

    fl = knnsql.Index(ds.dim, ds.metric, kind="flat")
    fl.add(ds.X, ds.ids)
    t, (gt_ids, _) = timed(lambda: fl.search(Q, K))
    del fl
    rows = np.searchsorted(ds.ids, gt_ids)
    if np.any(rows >= ds.n) or np.any(ds.ids[np.clip(rows, 0, ds.n - 1)] != gt_ids):
        raise AssertionError(f"{ds.name}: the flat index returned ids that are not in the base")
    d64 = _dist64(ds, rows, Q)
    order = np.argsort(d64, axis=1, kind="stable")
    rows = np.take_along_axis(rows, order, axis=1)
    d64 = np.take_along_axis(d64, order, axis=1)

    # cross-check on a sample against numpy (float32 GEMM top-42 re-ranked in float64)
    m = min(n_check, Q.shape[0])
    sample = np.random.default_rng(1).choice(Q.shape[0], size=m, replace=False)
    np_rows, np_d = reference(ds, Q[sample])
    kth_np = np_d[:, K - 1]
    scale = 1.0 if ds.metric == "cosine" else (Q[sample].astype(np.float64) ** 2).sum(1)
    tol = 1e-5 * np.abs(kth_np) + 1e-6 * scale
    ok_kth = np.abs(d64[sample, K - 1] - kth_np) <= tol
    ok_all = (d64[sample] <= (kth_np + tol)[:, None]).all(1)
    strict = np.mean([len(set(a) & set(b)) / K for a, b in zip(rows[sample].tolist(), np_rows.tolist())])
    if not (ok_kth.all() and ok_all.all()):
        bad = sample[~(ok_kth & ok_all)]
        raise AssertionError(f"{ds.name}: knnsql flat and numpy disagree on {len(bad)} of {m} sampled queries "
                             f"(first: query {bad[0]})")
    return rows, d64, {"flat_search_s": t, "numpy_checked_queries": int(m), "numpy_agreement_tie_aware": 1.0,
                       "numpy_agreement_strict": float(strict)}


def recall_of(ds, ids: np.ndarray, gt_rows: np.ndarray, gt_d: np.ndarray, Q: np.ndarray) -> dict:
    from suites.exact import recall

    m = ids.shape[0]
    r = recall(ds, ids, gt_rows[:m], gt_d[:m], Q[:m])
    return {"recall": r["recall"], "recall_strict": r["recall_strict"], "worst": r.get("worst_query_recall")}


def reachability(ds, built: Dict[str, "Built"], rows: int, ef: int) -> dict:
    """Searches a sample of base vectors for themselves (all cores): how many come back without a row at
    distance 0 (the vector itself or an exact duplicate)? Those nodes are unreachable at this ef."""
    from suites.exact import _dist64

    m = min(rows, ds.n)
    sample = np.sort(np.random.default_rng(2).choice(ds.n, size=m, replace=False))
    Xs = np.ascontiguousarray(ds.X[sample])
    out = {"rows": int(m), "ef": ef}
    for key, b in built.items():
        ids = b.search(Xs, ef, threads=None)[:, 0]
        r = np.clip(np.searchsorted(ds.ids, ids), 0, ds.n - 1)
        ok = ds.ids[r] == ids
        d = np.full(m, np.inf)
        d[ok] = _dist64(ds, r[ok][:, None], Xs[ok])[:, 0]
        scale = 1.0 if ds.metric == "cosine" else np.maximum((Xs.astype(np.float64) ** 2).sum(1), 1.0)
        out[key] = int((d > 1e-5 * scale).sum())
    return out


# ---- workloads -----------------------------------------------------------------------------------

def sweep_single_thread(ds, built: Dict[str, Built], Q: np.ndarray, efs: List[int], repeats: int) -> dict:
    """Interleaved sweep: for each repeat, for each ef, each contender answers all of Q on one thread."""
    times = {k: {ef: [] for ef in efs} for k in built}
    ids = {k: {} for k in built}
    for b in built.values():  # warm-up
        b.search(Q[:100], 64)
    for r in range(repeats):
        t_rep = time.perf_counter()
        for ef in efs:
            for key, b in built.items():
                settle(0.05)
                t, out = timed(b.search, Q, ef)
                times[key][ef].append(t)
                if r == 0:
                    ids[key][ef] = out
        log(f"  single-thread sweep repeat {r + 1}/{repeats}: {time.perf_counter() - t_rep:.1f} s")
    res = {}
    nq = Q.shape[0]
    for key in built:
        pts = []
        for ef in efs:
            rc = recall_of(ds, ids[key][ef], *GT[ds.name], Q)
            med = median(times[key][ef])
            pts.append({"ef": ef, "qps": nq / med, "median_s": med, "samples_s": times[key][ef], **rc})
        res[key] = pts
    return res


def sweep_batch_all_cores(ds, g: Built, sql: SqlIndex, Q: np.ndarray, efs: List[int], repeats: int) -> dict:
    """knnsql numpy API (all cores) against the SQL batch knn(...) over the 1000-row queries table."""
    nq = Q.shape[0]
    times = {"knnsql": {ef: [] for ef in efs}, "knnsql_sql": {ef: [] for ef in efs}}
    got = {"knnsql": {}, "knnsql_sql": {}}
    g.search(Q[:100], 64, threads=None)
    sql.batch_fn(64)()
    for r in range(repeats):
        for ef in efs:
            settle(0.05)
            t, out = timed(lambda: g.search(Q, ef, threads=None))
            times["knnsql"][ef].append(t)
            got["knnsql"].setdefault(ef, out)
            settle(0.05)
            t, tbl = timed(sql.batch_fn(ef))
            times["knnsql_sql"][ef].append(t)
            if ef not in got["knnsql_sql"]:
                got["knnsql_sql"][ef] = SqlIndex.batch_ids(tbl, nq)
    res = {}
    for key in times:
        pts = []
        for ef in efs:
            med = median(times[key][ef])
            pts.append({"ef": ef, "qps": nq / med, "median_s": med, "samples_s": times[key][ef],
                        **recall_of(ds, got[key][ef], *GT[ds.name], Q)})
        res[key] = pts
    return res


def sweep_sql_single(ds, sql: SqlIndex, Q: np.ndarray, efs: List[int], repeats: int) -> dict:
    """One statement per query, DuckDB threads = 1; the ef sweep runs `repeats` times (QPS from the median)."""
    qs = [q.tolist() for q in Q]
    sql.set_threads(1)
    totals = {ef: [] for ef in efs}
    lats = {ef: [] for ef in efs}
    got = {}
    try:
        floors = sql.overhead(qs[:20])
        sql.single(qs[:5], 64)
        for _ in range(repeats):
            for ef in efs:
                lat, ids = sql.single(qs, ef)
                totals[ef].append(sum(lat))
                lats[ef] += lat
                got.setdefault(ef, ids)
    finally:
        sql.set_threads(None)
    pts = [{"ef": ef, "qps": len(qs) / median(totals[ef]), "total_s_samples": totals[ef],
            "median_ms": median(lats[ef]) * 1e3, "p90_ms": quantile(lats[ef], 0.9) * 1e3,
            **recall_of(ds, got[ef], *GT[ds.name], Q)} for ef in efs]
    return {"points": pts, "queries": len(qs), "repeats": repeats, "floors": floors, "duckdb_threads": 1,
            "query_form": f"SELECT id FROM knn_search('{sql.name}', $q::FLOAT[{sql.d}], k := {K}, ef := <ef>)"}


def run_vss(ds, Q: np.ndarray, opts: dict, python: Path) -> dict:
    """Runs _vss_worker.py in the vss venv; returns its results (with recall) or {"error": ...}."""
    if not python.is_file():
        return {"error": f"{python} not found: create the venv with `python -m venv {python.parent.parent} && "
                         f"{python.parent}/pip install duckdb==1.5.5 duckdb-extension-vss==1.5.5 numpy`"}
    try:
        import pyarrow.parquet as pq

        import knnsql
    except ImportError as exc:
        return {"error": f"pyarrow is needed to hand the table to the vss worker ({exc})"}
    with tempfile.TemporaryDirectory(prefix="knnsql-ann-vss-") as tmp:
        tmp = Path(tmp)
        pq.write_table(knnsql.vectors_table(ds.X, ds.ids), tmp / "base.parquet", compression="none")
        np.save(tmp / "queries.npy", np.ascontiguousarray(Q, dtype=np.float32))
        job = {"parquet": str(tmp / "base.parquet"), "queries": str(tmp / "queries.npy"), "dim": ds.dim,
               "metric": ds.metric, "m": M, "ef_construction": EF_CONSTRUCTION, "k": K, "efs": opts["vss_efs"],
               "threads_build": 0, "threads_search": 1, "budget_s": opts["vss_budget"], "repeats": opts["repeats"]}
        (tmp / "job.json").write_text(json.dumps(job))
        t0 = time.perf_counter()
        try:
            p = subprocess.run([str(python), str(WORKER), str(tmp / "job.json")], stdout=subprocess.PIPE,
                               stderr=None, text=True, timeout=opts["vss_timeout"])
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {opts['vss_timeout']:.0f} s (--vss-timeout); the worker was killed",
                    "wall_s": time.perf_counter() - t0}
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sig = f" (signal {-p.returncode})" if p.returncode < 0 else ""
            return {"error": f"worker exited with status {p.returncode}{sig}", "stdout_tail": p.stdout[-2000:],
                    "wall_s": wall}
        try:
            out = json.loads(p.stdout)
        except json.JSONDecodeError:
            return {"error": "worker printed no JSON", "stdout_tail": p.stdout[-2000:], "wall_s": wall}
    out["wall_s"] = wall
    pts = []
    for s in out.pop("sweep", []):
        ids = np.array(s["ids"], dtype=np.int64)
        lat = [t for rep in s["latencies_s"] for t in rep]
        totals = [sum(rep) for rep in s["latencies_s"]]
        pts.append({"ef": s["ef"], "qps": Q.shape[0] / median(totals), "total_s_samples": totals,
                    "median_ms": median(lat) * 1e3, "p90_ms": quantile(lat, 0.9) * 1e3,
                    **recall_of(ds, ids, *GT[ds.name], Q)})
    out["points"] = pts
    out["queries"] = int(Q.shape[0])
    return out


GT: Dict[str, tuple] = {}


# ---- per dataset ---------------------------------------------------------------------------------

def qps_at_recall(points: List[dict], r: float) -> Optional[float]:
    """QPS at exactly recall r, interpolating log(QPS) linearly in recall between the two sweep points that
    bracket r (points in ef order). None when no point reaches r. Less sensitive than best_at() to which side
    of the threshold a library's nearest ef happens to land."""
    pts = sorted(points, key=lambda p: p["ef"])
    for a, b in zip(pts, pts[1:]):
        if a["recall"] < r <= b["recall"]:
            f = (r - a["recall"]) / (b["recall"] - a["recall"])
            return float(np.exp(np.log(a["qps"]) + f * (np.log(b["qps"]) - np.log(a["qps"]))))
    hit = [p["qps"] for p in pts if p["recall"] >= r]
    return max(hit) if hit else None


def best_at(points: List[dict], thr: float) -> Optional[dict]:
    ok = [p for p in points if p["recall"] >= thr]
    return max(ok, key=lambda p: p["qps"]) if ok else None


def run_dataset(ds, opts: dict, contenders: List[str]) -> dict:
    snap0 = cpu_snapshot()
    nq = min(opts["queries"], ds.Q.shape[0])
    Q = np.ascontiguousarray(ds.Q[:nq])
    warnings: List[str] = []

    log(f"  ground truth: knnsql flat index, {nq} queries; numpy cross-check on {opts['numpy_check']}")
    gt_rows, gt_d, gt_info = ground_truth(ds, Q, opts["numpy_check"])
    GT[ds.name] = (gt_rows, gt_d)

    log(f"  building HNSW graphs (M={M}, ef_construction={EF_CONSTRUCTION}) on {ds.n:,} x {ds.dim} ({ds.metric})")
    builders = {"hnswlib": build_hnswlib, "knnsql": build_knnsql, "faiss": build_faiss, "usearch": build_usearch}
    built: Dict[str, Built] = {}
    errors = {}
    for key in ["hnswlib", "knnsql", "faiss", "usearch"]:
        if key != "knnsql" and key not in contenders:
            continue
        try:
            built[key] = _build(key, lambda: builders[key](ds))
        except ImportError as exc:
            errors[key] = f"not installed: {exc}"
            log(f"  {key}: {errors[key]}")
    sql = SqlIndex(ds, Q)
    built_sql = _build("knnsql_sql", sql.build)

    # restore vs rebuild --------------------------------------------------------------------------
    import knnsql

    g = built["knnsql"].obj
    reps = max(3, opts["repeats"])
    t_tb, blob = timed(g.to_bytes)
    fb = []
    for _ in range(reps):
        t, g2 = timed(knnsql.Index.from_bytes, blob)
        fb.append(t)
    same_np = bool(np.array_equal(g2.search(Q[:100], K, ef=64, threads=1)[0], g.search(Q[:100], K, ef=64, threads=1)[0]))
    del g2
    before = sql.single([q.tolist() for q in Q[:50]], 64)[1]
    rs = sql.restore_cycle(reps)
    after = sql.single([q.tolist() for q in Q[:50]], 64)[1]
    same_sql = bool(np.array_equal(before, after))
    restore = {"numpy": {"to_bytes_s": t_tb, "bytes": len(blob), "from_bytes_s": median(fb), "from_bytes_samples_s": fb,
                         "build_s": built["knnsql"].info["build_s"], "identical_results": same_np},
               "sql": dict(rs, build_s=built_sql.info["build_s"], identical_results=same_sql)}
    restore["numpy"]["speedup"] = restore["numpy"]["build_s"] / restore["numpy"]["from_bytes_s"]
    restore["sql"]["speedup"] = restore["sql"]["build_s"] / restore["sql"]["restore_s"]
    del blob
    for k_, v in restore.items():
        log(f"  restore ({k_}): {v.get('from_bytes_s', v.get('restore_s')):.3f} s vs build {v['build_s']:.1f} s "
            f"= {v['speedup']:.0f}x faster; identical results: {v['identical_results']}")
        if not v["identical_results"]:
            warnings.append(f"{ds.name}: the restored index ({k_}) answered differently from the original")

    # search -------------------------------------------------------------------------------------
    log(f"  single-thread sweep: {len(built)} contenders x {len(opts['efs'])} ef x {opts['repeats']} repeats, "
        f"{nq} queries")
    single = sweep_single_thread(ds, built, Q, opts["efs"], opts["repeats"])
    log("  all-core batch: knnsql Index vs SQL knn(...)")
    batch = sweep_batch_all_cores(ds, built["knnsql"], sql, Q, opts["efs"], opts["repeats"])
    nsq = min(opts["sql_queries"], nq)
    log(f"  knnsql SQL: one statement per query, {nsq} queries x {len(opts['efs'])} ef")
    sql_single = sweep_sql_single(ds, sql, Q[:nsq], opts["efs"], opts["repeats"])

    log(f"  reachability: {opts['reach_rows']} base vectors searched for themselves (ef=64)")
    reach = reachability(ds, built, opts["reach_rows"], 64)
    log("    not found: " + ", ".join(f"{LABELS[k]} {reach[k]}" for k in built))
    if reach["knnsql"] > max(10, 3 * min((reach[k] for k in built if k != "knnsql"), default=0)):
        warnings.append(f"{ds.name}: {reach['knnsql']} of {reach['rows']} base vectors searched for themselves "
                        f"(ef=64) do not come back at distance 0 from the knnsql Index ("
                        + ", ".join(f"{LABELS[k]} {reach[k]}" for k in built if k != "knnsql")
                        + "): unreachable graph nodes")
    builds = {k: b.info for k, b in built.items()}
    builds["knnsql_sql"] = built_sql.info
    knn_form = sql.knn_call(0).replace(sql.name, "name").replace(", 0)", ", ef)")
    sql.close()
    del sql, built, built_sql, g
    trimmed_rss()

    vss = None
    if "vss" in contenders:
        nv = min(opts["vss_queries"], nq)
        log(f"  DuckDB vss (subprocess, {opts['vss_python']}): {nv} queries x ef {opts['vss_efs']}")
        vss = run_vss(ds, Q[:nv], opts, Path(opts["vss_python"]))
        if "error" in vss:
            log(f"  vss: {vss['error']}")
            warnings.append(f"{ds.name}: DuckDB vss: {vss['error']}")
        else:
            builds["vss"] = {"build_s": vss["build_s"], "build_threads": vss.get("threads_build"),
                             "memory_bytes": vss.get("approx_memory_bytes"),
                             "memory_method": "pragma_hnsw_index_info approx_memory_usage",
                             "rss_delta_bytes": vss.get("build_rss_delta_bytes"), "version": vss.get("duckdb")}
            if not vss.get("plan_uses_index"):
                warnings.append(f"{ds.name}: the vss query plan did not show HNSW_INDEX_SCAN")

    for key, pts in single.items():
        top = max(pts, key=lambda p: p["recall"])
        if top["recall"] < THRESHOLDS[0]:
            warnings.append(f"{ds.name}: {LABELS[key]} tops out at recall {top['recall']:.3f} (ef={top['ef']}); "
                            f"never reaches {THRESHOLDS[0]}")
    sm = summarize(ds, single, batch, sql_single, vss, builds, restore)
    return {"dataset": ds.name, "description": ds.description, "n": ds.n, "dim": ds.dim, "metric": ds.metric,
            "k": K, "queries": nq, "ground_truth": gt_info, "builds": builds, "errors": errors, "restore": restore,
            "single_thread": single, "batch_all_cores": batch, "sql_single": sql_single, "vss": vss,
            "reachability": reach, "knn_sql_form": knn_form,
            "summary": sm, "warnings": warnings, "cpu_noise": foreign_load(snap0, cpu_snapshot())}


def summarize(ds, single, batch, sql_single, vss, builds, restore) -> dict:
    s: dict = {"best": {}, "targets": {}}
    curves = dict(single)
    curves["knnsql_sql"] = sql_single["points"]
    if vss and vss.get("points"):
        curves["vss"] = vss["points"]
    for key, pts in curves.items():
        s["best"][key] = {str(t): best_at(pts, t) for t in THRESHOLDS}
        s["best"][key]["max_recall"] = max(p["recall"] for p in pts)
    hb = builds.get("hnswlib")
    T = s["targets"]
    # 1. knnsql QPS >= 1.5x hnswlib at recall >= 0.95, single-threaded
    if "hnswlib" in single:
        for t in THRESHOLDS:
            a, b = best_at(single["knnsql"], t), best_at(single["hnswlib"], t)
            T[f"qps_vs_hnswlib@{t}"] = a["qps"] / b["qps"] if a and b else None
            a, b = qps_at_recall(single["knnsql"], t), qps_at_recall(single["hnswlib"], t)
            T[f"qps_vs_hnswlib_interp@{t}"] = a / b if a and b else None
    # 2. build time <= hnswlib; 3. memory <= 1.3x hnswlib
    if hb:
        T["build_vs_hnswlib"] = builds["knnsql"]["build_s"] / hb["build_s"]
        T["memory_vs_hnswlib_reported"] = builds["knnsql"]["memory_bytes"] / hb["memory_bytes"]
        T["memory_vs_hnswlib_rss"] = (builds["knnsql"]["rss_delta_bytes"] / hb["rss_delta_bytes"]
                                      if hb["rss_delta_bytes"] > 0 else None)
        T["memory_vs_hnswlib_index_file"] = builds["knnsql"]["memory_bytes"] / hb["index_file_bytes"]
    # 4. SQL batch >= 0.7x numpy API QPS (all cores) at the ef where the knnsql Index reaches 0.95
    ef95 = next((p["ef"] for p in single["knnsql"] if p["recall"] >= 0.95), None)
    s["ef_at_0.95"] = ef95
    if ef95 is not None:
        a = next(p for p in batch["knnsql_sql"] if p["ef"] == ef95)
        b = next(p for p in batch["knnsql"] if p["ef"] == ef95)
        T["sql_batch_vs_numpy"] = a["qps"] / b["qps"]
        s["batch_at_ef95"] = {"ef": ef95, "sql_qps": a["qps"], "numpy_qps": b["qps"], "sql_recall": a["recall"],
                              "numpy_recall": b["recall"]}
    # 5. vs vss: QPS through SQL (one statement per query both) and build time
    if vss and vss.get("points"):
        T["build_vs_vss"] = vss["build_s"] / builds["knnsql_sql"]["build_s"]
        vb = best_at(vss["points"], 0.95)
        level = 0.95
        if vb is None:  # vss does not reach 0.95: compare at the best recall it reaches
            vb = max(vss["points"], key=lambda p: (p["recall"], p["qps"]))
            level = vb["recall"]
        kb = best_at(sql_single["points"], level)
        T["sql_qps_vs_vss"] = kb["qps"] / vb["qps"] if kb else None
        s["vss_compare"] = {"recall_level": level, "vss": vb, "knnsql_sql": kb}
    # 6. restore >= 20x faster than rebuild
    T["restore_sql_speedup"] = restore["sql"]["speedup"]
    T["restore_numpy_speedup"] = restore["numpy"]["speedup"]
    return s


def run(args) -> dict:
    import datasets

    opts = dict(QUICK if args.quick else FULL)
    if args.repeats:
        opts["repeats"] = args.repeats
    for k in ("efs", "queries", "sql_queries", "vss_queries", "vss_efs", "vss_timeout"):
        if getattr(args, k, None) is not None:
            opts[k] = getattr(args, k)
    opts["vss_python"] = str(args.vss_python or VSS_PYTHON)
    contenders = args.contenders or ["hnswlib", "faiss", "usearch", "vss"]
    if args.no_vss and "vss" in contenders:
        contenders = [c for c in contenders if c != "vss"]
    opts["contenders"] = contenders
    versions = {}
    from importlib import metadata

    for mod, dist in (("hnswlib", "hnswlib"), ("faiss", "faiss-cpu"), ("usearch", "usearch")):
        try:
            versions[mod] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[mod] = None
    opts["versions"] = versions

    out, skipped = {}, {}
    for name in args.datasets:
        rows = args.rows or (QUICK_ROWS.get(name, 20_000) if args.quick else None)
        log(f"dataset {name}" + (f" (first {rows:,} rows)" if rows else ""))
        try:
            ds = datasets.load(name, max_rows=rows)
        except datasets.DatasetMissing as exc:
            if not args.skip_missing:
                raise
            log(f"  SKIPPED: {exc}")
            skipped[name] = str(exc)
            continue
        t0 = time.perf_counter()
        out[name] = run_dataset(ds, opts, contenders)
        out[name]["wall_s"] = time.perf_counter() - t0
        log(f"  {name} done in {out[name]['wall_s'] / 60:.1f} min")
        del ds
        GT.clear()
    warnings = [w for r in out.values() for w in r["warnings"]]
    return {"options": opts, "datasets": out, "skipped": skipped, "warnings": warnings}


# ---- report --------------------------------------------------------------------------------------

TARGETS = [  # key, label, goal, higher is better?
    ("qps_vs_hnswlib@0.95", "knnsql Index QPS / hnswlib QPS at recall >= 0.95 (1 thread; best sweep point)", 1.5, True),
    ("qps_vs_hnswlib_interp@0.95", "same, both interpolated to recall = 0.95 exactly (see below)", 1.5, True),
    ("build_vs_hnswlib", "knnsql Index build time / hnswlib build time", 1.0, False),
    ("memory_vs_hnswlib_reported", "knnsql Index.memory_bytes / hnswlib's own allocations (formula)", 1.3, False),
    ("memory_vs_hnswlib_rss", "knnsql / hnswlib, process RSS growth over the build", 1.3, False),
    ("sql_batch_vs_numpy", "SQL batch knn(...) QPS / Index.search QPS, all cores, at the ef reaching 0.95", 0.7, True),
    ("sql_qps_vs_vss", "knnsql SQL QPS / DuckDB vss QPS, one statement per query, at recall >= 0.95*", 10.0, True),
    ("build_vs_vss", "DuckDB vss build time / knnsql SQL build time", 5.0, True),
    ("restore_sql_speedup", "knnsql SQL build time / knn_index_restore time", 20.0, True),
    ("restore_numpy_speedup", "knnsql Index build time / Index.from_bytes time", 20.0, True),
]


def _target_value(T: dict, key: str, r: Optional[dict] = None):
    if key == "qps_vs_hnswlib_interp@0.95" and r is not None:
        st = r["single_thread"]
        if "hnswlib" not in st:
            return None
        a, b = qps_at_recall(st["knnsql"], 0.95), qps_at_recall(st["hnswlib"], 0.95)
        return a / b if a and b else None
    return T.get(key)


def _x(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}x" if v < 100 else f"{v:.0f}x"


def _mib(b) -> str:
    return "-" if b is None else fmt(b / 2**20)


def _pt(p, field="qps") -> str:
    return "-" if p is None else f"{fmt(p[field])} (ef {p['ef']}, r {p['recall']:.3f})"


def to_markdown(doc: dict) -> str:
    res = doc["results"]
    opts = res["options"]
    dss = res["datasets"]
    L = [f"## Suite `ann` — approximate k-NN (HNSW), k = {K}", "",
         f"Run {doc['started']} ({doc['duration_s'] / 60:.1f} min), `{doc['command']}`.", "",
         machine_markdown(doc["machine"]) + " Peers: " +
         ", ".join(f"{k} {v}" for k, v in opts["versions"].items()) + ".", "",
         f"Every library builds an HNSW graph with M = {M} (2M links on the bottom layer), ef_construction = "
         f"{EF_CONSTRUCTION}, on all cores, once; then answers {opts['queries']} queries per ef on **one thread** "
         f"(QPS = queries / median of {opts['repeats']} interleaved repeats). recall@10 is tie-aware against "
         "exact results from knnsql's flat index, which are cross-checked against numpy on a sample. "
         f"knnsql SQL and DuckDB vss are timed one SQL statement per query ({opts['sql_queries']} and "
         f"{opts['vss_queries']} queries per ef, the same first queries; QPS = statements / median total time of "
         f"{opts['repeats']} sweeps), DuckDB threads = 1, each passing the query vector the faster way for its "
         "client (see the per-statement floors).", ""]

    # targets ------------------------------------------------------------------------------------
    L += ["### Targets", "",
          "Value per dataset; **met** / *missed* against the goal.", ""]
    rows = []
    for key, label, goal, higher in TARGETS:
        cells = []
        for name, r in dss.items():
            v = _target_value(r["summary"]["targets"], key, r)
            if v is None:
                cells.append("-")
            else:
                met = v >= goal if higher else v <= goal
                cells.append(f"{_x(v)} " + ("**met**" if met else "*missed*"))
        rows.append([label, ("≥ " if higher else "≤ ") + _x(goal)] + cells)
    L.append(md_table(["target", "goal"] + list(dss), rows, "ll" + "r" * len(dss)))
    L += ["", "\\* when vss never reaches 0.95, at the highest recall vss reaches (see the vss table). "
          "*Best sweep point* = the highest QPS among the ef values whose recall is ≥ 0.95 (as in ann-benchmarks); "
          "it jumps when one library's ef lands just above 0.95 and the other's just below. *Interpolated* = "
          "log(QPS) interpolated linearly in recall between the two ef values that bracket 0.95, for each library.", ""]

    for name, r in dss.items():
        sm = r["summary"]
        L += [f"### {name}: {r['description']}", ""]
        # builds
        rows = []
        hb = r["builds"].get("hnswlib", {})
        for key in ["knnsql", "knnsql_sql", "hnswlib", "faiss", "usearch", "vss"]:
            b = r["builds"].get(key)
            if not b:
                continue
            rows.append([LABELS[key], fmt(b["build_s"]), b.get("build_threads"),
                         ratio(b["build_s"], hb.get("build_s")) if hb else "-",
                         _mib(b.get("memory_bytes")), b.get("memory_method", ""),
                         _mib(b.get("rss_delta_bytes")),
                         ratio(b.get("memory_bytes"), hb.get("memory_bytes")) if hb else "-",
                         ratio(b.get("rss_delta_bytes"), hb.get("rss_delta_bytes")) if hb else "-"])
        L.append(md_table(["library", "build s", "threads", "build / hnswlib", "memory MiB", "(how)",
                           "RSS delta MiB", "mem / hnswlib", "RSS / hnswlib"], rows, "lrrrrlrrr"))
        if hb.get("index_file_bytes"):
            L += ["", f"hnswlib's serialised index (vectors + links + labels, no maps or locks) is "
                      f"{_mib(hb['index_file_bytes'])} MiB; knnsql / that = "
                      f"{_x(sm['targets'].get('memory_vs_hnswlib_index_file'))}."]
        L.append("")
        # best QPS at recall
        rows = []
        best = sm["best"]
        for key in ["knnsql", "hnswlib", "faiss", "usearch", "knnsql_sql", "vss"]:
            if key not in best:
                continue
            cells = [LABELS[key] + (" (1 stmt/query)" if key in ("knnsql_sql", "vss") else "")]
            for t in THRESHOLDS:
                p = best[key][str(t)]
                hp = best.get("hnswlib", {}).get(str(t))
                cells += [_pt(p), ratio(p["qps"], hp["qps"]) if p and hp else "-"]
            cells.append(f"{best[key]['max_recall']:.4f}")
            curve = (r["sql_single"]["points"] if key == "knnsql_sql" else
                     (r["vss"]["points"] if key == "vss" else r["single_thread"][key]))
            qi = qps_at_recall(curve, 0.95)
            qh = qps_at_recall(r["single_thread"]["hnswlib"], 0.95) if "hnswlib" in r["single_thread"] else None
            cells += [fmt(qi), ratio(qi, qh) if qi and qh else "-"]
            rows.append(cells)
        L.append(md_table(["contender", "best QPS at recall ≥ 0.95", "vs hnswlib", "best QPS at recall ≥ 0.9",
                           "vs hnswlib", "max recall", "QPS at 0.95, interpolated", "vs hnswlib"], rows, "lrrrrrrr"))
        L.append("")
        # sweep table
        L += [f"Recall@10 / QPS per ef, 1 thread, {r['queries']} queries:", ""]
        st = r["single_thread"]
        keys = [k for k in ["knnsql", "hnswlib", "faiss", "usearch"] if k in st]
        rows = []
        for i, ef in enumerate(p["ef"] for p in st["knnsql"]):
            cells = [ef]
            for k in keys:
                p = st[k][i]
                cells.append(f"{p['recall']:.4f} / {fmt(p['qps'])}")
            sq = r["sql_single"]["points"]
            p = next((x for x in sq if x["ef"] == ef), None)
            cells.append(f"{p['recall']:.4f} / {fmt(p['qps'])} ({fmt(p['median_ms'])} ms)" if p else "-")
            rows.append(cells)
        L.append(md_table(["ef"] + [LABELS[k] for k in keys] + ["knnsql SQL, 1 stmt/query (median ms)"], rows))
        fl = r["sql_single"]["floors"]
        L += ["", f"knnsql SQL passes the query as a parameter `$q::FLOAT[{r['dim']}]`; a statement that only binds it "
                  f"(`SELECT $q::FLOAT[{r['dim']}] IS NULL`) takes {fmt(fl['param_bind_only_median_ms'])} ms (median), "
                  f"the per-statement floor (as a literal: {fmt(fl['literal_only_median_ms'])} ms).", ""]
        rc = r.get("reachability")
        if rc:
            L += [f"Reachability: {rc['rows']:,} base vectors searched for themselves (k=10, ef={rc['ef']}); not found "
                  "at distance 0: " + ", ".join(f"{LABELS[k]} {rc[k]}" for k in ["knnsql", "hnswlib", "faiss", "usearch"]
                                                if k in rc) + ".", ""]
        # batch
        b = r["batch_all_cores"]
        rows = [[x["ef"], f"{x['recall']:.4f}", fmt(x["qps"]), f"{y['recall']:.4f}", fmt(y["qps"]), _x(y["qps"] / x["qps"])]
                for x, y in zip(b["knnsql"], b["knnsql_sql"])]
        L += [f"All cores, {r['queries']} queries in one call: knnsql `Index.search` vs SQL "
              f"`SELECT id, {r.get('knn_sql_form', 'knn(name, emb, 10, ef)')} AS r FROM queries` (ef reaching 0.95 on 1 thread: "
              f"{sm.get('ef_at_0.95')}):", ""]
        L.append(md_table(["ef", "Index recall", "Index QPS", "SQL recall", "SQL QPS", "SQL / Index"], rows))
        L.append("")
        # restore
        rs = r["restore"]
        L += [md_table(["path", "build s", "restore s", "faster than rebuild", "bytes MiB", "identical results"], [
            ["SQL: knn_index_dump -> table -> knn_index_restore", fmt(rs["sql"]["build_s"]), fmt(rs["sql"]["restore_s"]),
             _x(rs["sql"]["speedup"]), _mib(rs["sql"]["bytes"]), rs["sql"]["identical_results"]],
            ["numpy: Index.to_bytes -> Index.from_bytes", fmt(rs["numpy"]["build_s"]), fmt(rs["numpy"]["from_bytes_s"]),
             _x(rs["numpy"]["speedup"]), _mib(rs["numpy"]["bytes"]), rs["numpy"]["identical_results"]],
        ], "lrrrrl"), "",
            f"(dump {fmt(rs['sql']['dump_s'])} s into {rs['sql']['parts']} parts; to_bytes {fmt(rs['numpy']['to_bytes_s'])} s; "
            "restore times are medians of "
            f"{len(rs['numpy']['from_bytes_samples_s'])}.)", ""]
        # vss
        v = r.get("vss")
        if v is None:
            pass
        elif "error" in v:
            L += [f"DuckDB vss: **not measured**: {v['error']}", ""]
        else:
            rows = [[p["ef"], f"{p['recall']:.4f}", fmt(p["qps"]), fmt(p["median_ms"]), fmt(p["p90_ms"])] for p in v["points"]]
            vf = v.get("floors", {})
            L += [f"DuckDB vss {v.get('duckdb')} (extension {v.get('extension_version')}), {v['queries']} queries, "
                  f"1 statement each (`{v.get('query_form')}`), threads {v.get('threads_search')} (build: "
                  f"{v.get('threads_build')} threads, {fmt(v['build_s'])} s; plan uses HNSW_INDEX_SCAN: "
                  f"{v.get('plan_uses_index')}). Per-statement floor: literal only {fmt(vf.get('literal_only_median_ms'))} ms; "
                  f"binding a `$q` parameter instead would cost {fmt(vf.get('param_bind_only_median_ms'))} ms.", ""]
            L.append(md_table(["hnsw_ef_search", "recall@10", "QPS", "median ms", "p90 ms"], rows))
            vc = sm.get("vss_compare")
            if vc:
                L += ["", f"Compared at recall ≥ {vc['recall_level']:.3f}: knnsql SQL {_pt(vc['knnsql_sql'])} vs vss "
                          f"{_pt(vc['vss'])}."]
            L.append("")
        gi = r["ground_truth"]
        noise = r.get("cpu_noise", {})
        L += [f"Ground truth: knnsql flat index ({fmt(gi['flat_search_s'])} s for {r['queries']} queries), agreeing "
              f"with numpy on {gi['numpy_checked_queries']} sampled queries (tie-aware 1.0, strict id overlap "
              f"{gi['numpy_agreement_strict']:.4f}). Other processes kept "
              f"{fmt(noise.get('other_processes_cores'))} cores busy on average during this dataset "
              f"({fmt(r.get('wall_s', 0) / 60)} min).", ""]
    if res["skipped"]:
        L += ["Skipped datasets: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items()), ""]
    if res["warnings"]:
        L += ["**Warnings:**", ""] + [f"- {w}" for w in res["warnings"]] + [""]
    return "\n".join(L)


def plot(doc: dict, outdir) -> List[str]:
    plt = try_import_pyplot()
    if plt is None:
        return []
    paths = []
    style = {"knnsql": ("#2ca02c", "-", "o"), "hnswlib": ("#ff7f0e", "-", "s"), "faiss": ("#d62728", "-", "^"),
             "usearch": ("#9467bd", "-", "v"), "knnsql_sql": ("#1f77b4", "--", "o"), "vss": ("#7f7f7f", "--", "D"),
             "knnsql_all": ("#2ca02c", ":", "."), "knnsql_sql_all": ("#1f77b4", ":", ".")}
    for name, r in doc["results"]["datasets"].items():
        fig, ax = plt.subplots(figsize=(8, 5.5))
        curves = [(k, LABELS[k] + " (1 thread)", r["single_thread"][k]) for k in SWEEP_KEYS if k in r["single_thread"]]
        curves.append(("knnsql_sql", "knnsql SQL knn_search, 1 statement/query", r["sql_single"]["points"]))
        if r.get("vss") and r["vss"].get("points"):
            curves.append(("vss", "DuckDB vss, 1 statement/query", r["vss"]["points"]))
        curves.append(("knnsql_all", "knnsql Index, all cores", r["batch_all_cores"]["knnsql"]))
        curves.append(("knnsql_sql_all", "knnsql SQL knn(...) batch, all cores", r["batch_all_cores"]["knnsql_sql"]))
        for key, label, pts in curves:
            c, ls, mk = style[key]
            ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], ls, marker=mk, color=c, label=label,
                    markersize=4, linewidth=1.4)
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries per second (log)")
        lo = min(p["recall"] for _, _, pts in curves for p in pts)
        ax.set_xlim(max(0.0, min(lo, 0.85) - 0.02), 1.005)
        ax.axvline(0.95, color="#bbbbbb", linewidth=0.8, zorder=0)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{name}: {r['n']:,} x {r['dim']}, {r['metric']}, k={K}, M={M}, ef_construction={EF_CONSTRUCTION}")
        ax.legend(fontsize=8, loc="lower left")
        fig.tight_layout()
        path = Path(outdir) / f"ann-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(str(path))
    return paths
