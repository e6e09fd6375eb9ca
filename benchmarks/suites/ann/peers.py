"""The contenders: each library's HNSW build (timed, with its memory) and single-threaded search, and the
knnsql SQL side (a DuckDB table, an index built with knn_index_insert, its statements, dump and restore)."""

from __future__ import annotations

import gc
import os
import time
from typing import Callable, List, Optional

import numpy as np

from _common import cpu_snapshot, fmt, foreign_load, log, median, settle, timed, trimmed_rss

from .config import EF_CONSTRUCTION, K, LABELS, M


def hnswlib_estimate(n: int, d: int, m: int) -> int:
    """hnswlib's own allocations: level-0 block (2M links + count, vector, label per node), upper-level links
    (expected 1/(M-1) levels per node), element levels, link-list pointers, label map, per-node mutexes."""
    lvl0 = n * (2 * m * 4 + 4 + d * 4 + 8)
    upper = n / (m - 1) * (m * 4 + 4)
    return int(lvl0 + upper + n * (4 + 8 + 40 + 40) + 65536 * 40)


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
