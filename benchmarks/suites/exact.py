"""Suite "exact": exact (brute-force) k-NN, knnsql against its peers, k = 10.

For every dataset, two workloads:

* **1 query**: the median latency over many *different* single queries (each contender sees the same
  queries; a few warm-up queries first). Also reported as effective scan throughput,
  rows x dim x 4 bytes / latency.
* **1000 queries**: one batch call; the median over ``--repeats`` runs (after a small warm-up batch).

Contenders, all on the same machine in the same run (batch repeats are interleaved across contenders,
single queries in rounds, with a short pause between contenders so spinning BLAS/OpenMP threads of one
do not slow the next):

=================  ======================================================================================
knnsql SQL         ``knn_exact(id, vec, $q::FLOAT[d], 10, metric)`` over a DuckDB table ``t(id, vec FLOAT[d])``;
                   batch: ``unnest(knn_exact_join(id, vec, (SELECT list({'qid':..,'emb':..}) FROM qb), 10, metric))``
knnsql Index       ``knnsql.Index(d, metric).search(Q, 10)``, all cores, and again with ``threads=1``
numpy/BLAS         ``||x||^2 - 2 Q X^T`` (cosine: ``-Q X^T`` on unit vectors) + ``argpartition``, chunked
faiss              ``IndexFlatL2`` / ``IndexFlatIP`` (unit vectors for cosine), all cores and 1 thread
DuckDB SQL         ``SELECT id FROM t ORDER BY array_distance(vec, $q::FLOAT[d]) LIMIT 10``
                   (``array_cosine_distance`` for cosine); the batch is 20 such queries, extrapolated
=================  ======================================================================================

Correctness: every contender's ids are checked against a reference top-10 (numpy float32 GEMM top-42
re-ranked in float64). recall@10 counts a returned id as correct when its float64 distance is within
the 10th reference distance (+1e-5 relative, + float32 rounding), i.e. "modulo ties"; the strict id-set
overlap is stored too. A warning is printed when a knnsql contender's recall is below 1.

Single-core scan throughput of ``Index.search(q, threads=1)`` is set next to the machine's single-core
read bandwidth, measured in the same run with a C read kernel (benchmarks/_bandwidth.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np

from _common import (cpu_snapshot, fmt, foreign_load, load_dataset, log, machine_markdown, md_table, median, parse_size,
                     quantile, ratio, save_figure, settle, timed, try_import_pyplot)

NAME = "exact"
SUMMARY = "exact k-NN (k=10): knnsql SQL + numpy API vs numpy/BLAS, faiss flat, DuckDB ORDER BY ... LIMIT"
DEFAULT_DATASETS = ["glove", "fashion", "synthetic"]

K = 10
RERANK_PAD = 32
QUICK_ROWS = 20_000

FULL = dict(repeats=7, single=40, batch=1000, duck_batch=20, bw_mib=1024)
QUICK = dict(repeats=2, single=10, batch=1000, duck_batch=5, bw_mib=256)


def add_arguments(p) -> None:
    p.add_argument("--single", type=int, default=None,
                   help=f"number of distinct single queries to time (default {FULL['single']}, quick {QUICK['single']})")
    p.add_argument("--batch", type=int, default=None, help="queries in the batch workload (default 1000)")
    p.add_argument("--duck-batch", type=int, default=None,
                   help="queries timed for DuckDB SQL's extrapolated batch (default 20; 0 skips it)")
    p.add_argument("--rows", type=int, default=None,
                   help=f"cap base rows per dataset (default: all; --quick uses {QUICK_ROWS:,})")
    p.add_argument("--bw-mib", type=int, default=None, help="array size for the bandwidth kernel (default 1024)")
    p.add_argument("--no-duckdb-sql", action="store_true", help="skip DuckDB's ORDER BY ... LIMIT contender")


# ---- contenders ----------------------------------------------------------------------------------

@dataclass
class Contender:
    key: str
    label: str
    threads: str                                   # "all" or "1"
    single: Optional[Callable[[np.ndarray], np.ndarray]] = None
    # batch_prepare(Q) -> (zero-arg callable returning ids (m, K), number of queries it runs)
    batch_prepare: Optional[Callable[[np.ndarray], tuple]] = None


LABELS = {
    "knnsql_sql": "knnsql SQL",
    "knnsql_sql_flat": "knnsql SQL flat index",
    "knnsql_index": "knnsql Index",
    "knnsql_index_1t": "knnsql Index (1 thread)",
    "numpy": "numpy/BLAS",
    "faiss": "faiss Flat",
    "faiss_1t": "faiss Flat (1 thread)",
    "duckdb_sql": "DuckDB SQL",
}
KNNSQL_KEYS = ("knnsql_sql", "knnsql_sql_flat", "knnsql_index", "knnsql_index_1t")


def _arrow_table(ids: np.ndarray, X: np.ndarray, id_name: str, vec_name: str):
    import pyarrow as pa

    vec = pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(X, dtype=np.float32).reshape(-1)),
                                            X.shape[1])
    return pa.table({id_name: pa.array(np.asarray(ids, dtype=np.int64)), vec_name: vec})


def load_table(con, name: str, ids: np.ndarray, X: np.ndarray, id_name="id", vec_name="vec") -> None:
    """CREATE TABLE name(id BIGINT, vec FLOAT[d]) from numpy, through Arrow when pyarrow is present."""
    d = X.shape[1]
    try:
        src = _arrow_table(ids, X, id_name, vec_name)
        con.register("_knnbench_src", src)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {id_name}::BIGINT AS {id_name}, "
                    f"{vec_name}::FLOAT[{d}] AS {vec_name} FROM _knnbench_src")
        con.unregister("_knnbench_src")
    except ImportError:  # slow path without pyarrow: long format, re-assembled per row
        n = X.shape[0]
        long = {"rid": np.repeat(np.asarray(ids, dtype=np.int64), d), "pos": np.tile(np.arange(d, dtype=np.int32), n),
                "v": np.ascontiguousarray(X, dtype=np.float32).reshape(-1)}
        con.register("_knnbench_src", long)
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT rid AS {id_name}, list(v ORDER BY pos)::FLOAT[{d}] "
                    f"AS {vec_name} FROM _knnbench_src GROUP BY rid ORDER BY rid")
        con.unregister("_knnbench_src")


def build_contenders(ds, con, opts, setup: dict) -> List[Contender]:
    import knnsql

    X, ids, d, metric = ds.X, ds.ids, ds.dim, ds.metric
    cs: List[Contender] = []

    # knnsql SQL ------------------------------------------------------------------------------
    t, _ = timed(load_table, con, "t", ids, X)
    setup["duckdb_table_load_s"] = t
    sql1 = f"SELECT knn_exact(id, vec, $q::FLOAT[{d}], {K}, '{metric}') FROM t"
    qcount = [0]

    def sql_single(q):
        res = con.execute(sql1, {"q": q.tolist()}).fetchone()[0]
        return np.array([r["id"] for r in res], dtype=np.int64)

    def sql_batch_prepare(Q):
        qcount[0] += 1
        name = f"qb{qcount[0]}"
        load_table(con, name, np.arange(Q.shape[0]), Q, "qid", "emb")
        sql = (f"SELECT unnest(knn_exact_join(id, vec, (SELECT list({{'qid': qid, 'emb': emb}}) FROM {name}), "
               f"{K}, '{metric}'), recursive := true) FROM t")
        m = Q.shape[0]

        def run():
            r = con.execute(sql).fetchnumpy()
            order = np.lexsort((np.asarray(r["rank"]), np.asarray(r["query_id"])))
            out = np.asarray(r["id"], dtype=np.int64)[order]
            if out.size != m * K:
                raise RuntimeError(f"knn_exact_join returned {out.size} rows, expected {m * K}")
            return out.reshape(m, K)
        return run, m

    cs.append(Contender("knnsql_sql", LABELS["knnsql_sql"], "all", sql_single, sql_batch_prepare))

    # knnsql SQL over a flat index: the table's vectors cached contiguously in the index registry,
    # searched with knn_search (one query) and knn() over a query table (batch).
    t_flat, _ = timed(lambda: (con.execute(f"SELECT * FROM knn_index_create('bench_flat', dim := {d}, "
                                           f"metric := '{metric}', kind := 'flat')").fetchall(),
                               con.execute("SELECT knn_index_insert('bench_flat', id, vec) FROM t").fetchall()))
    setup["knnsql_sql_flat_build_s"] = t_flat
    sql_flat1 = f"SELECT id FROM knn_search('bench_flat', $q::FLOAT[{d}], k := {K})"

    def flat_single(q):
        return np.array([r[0] for r in con.execute(sql_flat1, {"q": q.tolist()}).fetchall()], dtype=np.int64)

    def flat_batch_prepare(Q):
        qcount[0] += 1
        name = f"qf{qcount[0]}"
        load_table(con, name, np.arange(Q.shape[0]), Q, "qid", "emb")
        sql = f"SELECT qid, [r.id FOR r IN knn('bench_flat', emb, {K})] AS ids FROM {name} ORDER BY qid"
        m = Q.shape[0]

        def run():
            rows = con.execute(sql).fetchall()
            out = np.array([r[1] for r in rows], dtype=np.int64)
            if out.shape != (m, K):
                raise RuntimeError(f"knn over a flat index returned shape {out.shape}, expected {(m, K)}")
            return out
        return run, m

    cs.append(Contender("knnsql_sql_flat", LABELS["knnsql_sql_flat"], "all", flat_single, flat_batch_prepare))

    # knnsql Index ------------------------------------------------------------------------------
    ix = knnsql.Index(d, metric=metric)
    setup["knnsql_index_add_s"], _ = timed(ix.add, X, ids)
    setup["knnsql_simd"] = ix.simd

    def ix_contender(key, threads):
        def single(q):
            return ix.search(q, K, threads=threads)[0][0]

        def prep(Q):
            return (lambda: ix.search(Q, K, threads=threads)[0]), Q.shape[0]
        return Contender(key, LABELS[key], "1" if threads == 1 else "all", single, prep)

    cs.append(ix_contender("knnsql_index", None))
    cs.append(ix_contender("knnsql_index_1t", 1))

    # numpy / BLAS ------------------------------------------------------------------------------
    cosine = metric == "cosine"
    xn = None if cosine else np.einsum("ij,ij->i", X, X)
    n = X.shape[0]

    def np_single(q):
        s = X @ q
        dist = -s if cosine else xn - 2.0 * s
        idx = np.argpartition(dist, K - 1)[:K]
        return ids[idx[np.argsort(dist[idx], kind="stable")]]

    def np_batch(Q):
        m = Q.shape[0]
        out = np.empty((m, K), dtype=np.int64)
        chunk = max(1, (1 << 26) // n)  # <= 256 MB of distances at a time
        for i in range(0, m, chunk):
            S = Q[i:i + chunk] @ X.T
            if cosine:
                np.negative(S, out=S)
            else:
                S *= -2.0
                S += xn
            part = np.argpartition(S, K - 1, axis=1)[:, :K]
            pd = np.take_along_axis(S, part, axis=1)
            out[i:i + chunk] = np.take_along_axis(part, np.argsort(pd, axis=1, kind="stable"), axis=1)
        return ids[out]

    cs.append(Contender("numpy", LABELS["numpy"], "all", np_single, lambda Q: ((lambda: np_batch(Q)), Q.shape[0])))

    # faiss -------------------------------------------------------------------------------------
    try:
        import faiss
    except ImportError:
        log("  faiss-cpu not installed (pip install faiss-cpu): skipping the faiss contenders")
        faiss = None
    if faiss is not None:
        fx = faiss.IndexFlatIP(d) if cosine else faiss.IndexFlatL2(d)
        setup["faiss_add_s"], _ = timed(fx.add, X)
        default_threads = faiss.omp_get_max_threads()

        def fa_contender(key, threads):
            def search(Q):
                if threads:
                    faiss.omp_set_num_threads(threads)
                try:
                    return ids[fx.search(Q, K)[1]]
                finally:
                    if threads:
                        faiss.omp_set_num_threads(default_threads)

            return Contender(key, LABELS[key], "1" if threads == 1 else "all", lambda q: search(q[None, :])[0],
                             lambda Q: ((lambda: search(Q)), Q.shape[0]))

        cs.append(fa_contender("faiss", None))
        cs.append(fa_contender("faiss_1t", 1))

    # DuckDB's own SQL --------------------------------------------------------------------------
    if not opts["no_duckdb_sql"]:
        fn = "array_cosine_distance" if cosine else "array_distance"
        sqld = f"SELECT id FROM t ORDER BY {fn}(vec, $q::FLOAT[{d}]) LIMIT {K}"

        def duck_single(q):
            return np.array([r[0] for r in con.execute(sqld, {"q": q.tolist()}).fetchall()], dtype=np.int64)

        def duck_prep(Q):
            m = min(opts["duck_batch"], Q.shape[0])
            if m <= 0:
                return None
            sub = Q[:m]
            return (lambda: np.stack([duck_single(q) for q in sub])), m

        cs.append(Contender("duckdb_sql", LABELS["duckdb_sql"], "all", duck_single, duck_prep))
    return cs


# ---- reference and recall ------------------------------------------------------------------------

def _dist64(ds, rows: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """float64 distances between Q[i] and X[rows[i, j]] -> (m, r)."""
    Xr = ds.X[rows].astype(np.float64)               # (m, r, d)
    Qd = Q.astype(np.float64)[:, None, :]
    if ds.metric == "cosine":
        dots = (Xr * Qd).sum(-1)
        return 1.0 - dots / (np.linalg.norm(Xr, axis=-1) * np.linalg.norm(Qd, axis=-1))
    diff = Xr - Qd
    return (diff * diff).sum(-1)


def reference(ds, Q: np.ndarray) -> tuple:
    """Exact top-K rows and float64 distances: float32 GEMM top-(K+pad), re-ranked in float64."""
    X = ds.X
    n = X.shape[0]
    kk = min(n, K + RERANK_PAD)
    cosine = ds.metric == "cosine"
    xn = None if cosine else np.einsum("ij,ij->i", X, X)
    rows_out = np.empty((Q.shape[0], K), dtype=np.int64)
    d_out = np.empty((Q.shape[0], K), dtype=np.float64)
    chunk = max(1, (1 << 26) // n)
    for i in range(0, Q.shape[0], chunk):
        Qc = Q[i:i + chunk]
        S = Qc @ X.T
        if cosine:
            np.negative(S, out=S)
        else:
            S *= -2.0
            S += xn
        cand = np.argpartition(S, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (Qc.shape[0], 1))
        d64 = _dist64(ds, cand, Qc)
        o = np.argsort(d64, axis=1, kind="stable")[:, :K]
        rows_out[i:i + chunk] = np.take_along_axis(cand, o, axis=1)
        d_out[i:i + chunk] = np.take_along_axis(d64, o, axis=1)
    return rows_out, d_out


def recall(ds, res_ids: np.ndarray, ref_rows: np.ndarray, ref_d: np.ndarray, Q: np.ndarray) -> dict:
    """Tie-aware and strict recall@K of res_ids (m, K) against the reference for queries Q (m, d)."""
    m = res_ids.shape[0]
    if res_ids.shape != (m, K):
        return {"recall": 0.0, "recall_strict": 0.0, "queries": m, "note": f"bad result shape {res_ids.shape}"}
    rows = np.searchsorted(ds.ids, res_ids)
    rows = np.clip(rows, 0, ds.n - 1)
    valid = ds.ids[rows] == res_ids
    srt = np.sort(res_ids, axis=1)
    dup_sorted = np.concatenate([np.zeros((m, 1), bool), srt[:, 1:] == srt[:, :-1]], axis=1)
    ndup = dup_sorted.sum(1)
    d64 = _dist64(ds, rows, Q[:m])
    kth = ref_d[:m, K - 1]
    scale = 1.0 if ds.metric == "cosine" else (Q[:m].astype(np.float64) ** 2).sum(1)
    tol = 1e-5 * np.abs(kth) + 1e-6 * scale
    ok = valid & (d64 <= (kth + tol)[:, None])
    hits = ok.sum(1) - ndup
    ref_ids = ds.ids[ref_rows[:m]]
    strict = np.array([len(set(a.tolist()) & set(b.tolist())) for a, b in zip(res_ids, ref_ids)])
    return {"recall": float(hits.sum() / (m * K)), "recall_strict": float(strict.sum() / (m * K)), "queries": int(m),
            "worst_query_recall": float(hits.min() / K)}


# ---- workloads -----------------------------------------------------------------------------------

def _single_workload(ds, cs: List[Contender], Qs: np.ndarray, Qwarm: np.ndarray, rounds: int) -> Dict[str, dict]:
    times = {c.key: [] for c in cs if c.single}
    results = {c.key: [None] * len(Qs) for c in cs if c.single}
    idx_rounds = np.array_split(np.arange(len(Qs)), rounds)
    for r, idxs in enumerate(idx_rounds):
        for c in cs:
            if not c.single:
                continue
            settle()
            for q in Qwarm[r % len(Qwarm):][:2] if r else Qwarm:    # warm-up (more before the first round)
                c.single(q)
            for i in idxs:
                t, out = timed(c.single, Qs[i])
                times[c.key].append(t)
                results[c.key][i] = out
    out = {}
    for key, ts in times.items():
        out[key] = {"median_ms": median(ts) * 1e3, "p10_ms": quantile(ts, 0.1) * 1e3, "p90_ms": quantile(ts, 0.9) * 1e3,
                    "samples_ms": [t * 1e3 for t in ts], "qps": 1.0 / median(ts),
                    "gbps": ds.n * ds.dim * 4 / median(ts) / 1e9, "_ids": np.stack(results[key])}
    return out


def _batch_workload(ds, cs: List[Contender], Qb: np.ndarray, repeats: int) -> Dict[str, dict]:
    nb = Qb.shape[0]
    runs, warm = {}, {}
    for c in cs:
        if not c.batch_prepare:
            continue
        prep = c.batch_prepare(Qb)
        if prep is None:
            continue
        runs[c.key] = prep
        w = c.batch_prepare(Qb[:min(20, nb)])
        warm[c.key] = w[0] if w else None
    for key, w in warm.items():  # warm-up: thread pools, page faults, prepared plans
        if w:
            settle()
            w()
    times = {k: [] for k in runs}
    ids = {}
    for r in range(repeats):
        for key, (fn, m) in runs.items():
            settle()
            t, out = timed(fn)
            times[key].append(t)
            ids[key] = out
            log(f"    batch repeat {r + 1}/{repeats} {LABELS[key]:<24} {t:8.3f} s" + ("" if m == nb else f" ({m} queries)"))
    out = {}
    for key, ts in times.items():
        m = runs[key][1]
        per_query = median(ts) / m
        out[key] = {"median_s": per_query * nb, "timed_s_median": median(ts), "samples_s": ts, "queries_timed": m,
                    "extrapolated": m != nb, "qps": 1.0 / per_query, "_ids": ids[key]}
    return out


def _faiss_peer_time(res: dict, key: str, field: str, threads: str):
    """faiss time to compare `key` with: faiss at 1 thread for 1-thread rows, else the faster faiss setting."""
    if key.startswith("faiss"):
        return None
    cands = ["faiss_1t"] if threads == "1" else ["faiss", "faiss_1t"]
    ts = [res[c][field] for c in cands if c in res]
    return min(ts) if ts else None


def _ratios(res: dict, key: str, field: str, cs) -> dict:
    """Peer time / this time (> 1: this contender is faster)."""
    me = res[key][field]
    threads = next(c.threads for c in cs if c.key == key)
    out = {}
    fp = _faiss_peer_time(res, key, field, threads)
    if fp is not None:
        out["vs_faiss"] = fp / me
    for peer in ("faiss", "faiss_1t", "duckdb_sql", "numpy"):
        if peer in res and peer != key:
            out[f"vs_{peer}"] = res[peer][field] / me
    return out


def run_dataset(ds, opts) -> dict:
    import knnsql

    setup = {}
    snap0 = cpu_snapshot()
    db = knnsql.connect()
    con = db.con
    try:
        log(f"  building tables and indexes ({ds.n:,} x {ds.dim}, {ds.metric})")
        cs = build_contenders(ds, con, opts, setup)
        setup["duckdb_threads"] = con.execute("SELECT current_setting('threads')").fetchone()[0]
        n_single = min(opts["single"], ds.Q.shape[0] - 3)
        nb = min(opts["batch"], ds.Q.shape[0])
        Qs = ds.Q[:n_single]
        Qwarm = ds.Q[-3:]
        Qb = ds.Q[:nb]
        nref = max(n_single, nb)
        t, (ref_rows, ref_d) = timed(reference, ds, ds.Q[:nref])
        setup["reference_s"] = t

        log(f"  1-query workload: {n_single} distinct queries")
        single = _single_workload(ds, cs, Qs, Qwarm, rounds=3 if n_single >= 15 else 1)
        log(f"  {nb}-query batch workload: {opts['repeats']} repeats")
        batch = _batch_workload(ds, cs, Qb, opts["repeats"])
    finally:
        db.close()
    setup["cpu_noise"] = foreign_load(snap0, cpu_snapshot())

    for wl, res, field in (("single", single, "median_ms"), ("batch", batch, "median_s")):
        for key, r in res.items():
            r["ratios"] = _ratios(res, key, field, cs)

    warnings = []
    for wl, res, Qw in (("single", single, Qs), ("batch", batch, Qb)):
        for key, r in res.items():
            got = r.pop("_ids")
            r.update({f"check_{k}": v for k, v in recall(ds, got, ref_rows, ref_d, Qw[:got.shape[0]]).items()})
            if key in KNNSQL_KEYS and r["check_recall"] < 1.0:
                msg = (f"{ds.name} {wl} {LABELS[key]}: recall@{K} {r['check_recall']:.4f} < 1 against numpy exact "
                       f"(strict {r['check_recall_strict']:.4f}, worst query {r['check_worst_query_recall']:.2f})")
                warnings.append(msg)
                log("  WARNING: " + msg)
    return {"dataset": ds.name, "description": ds.description, "n": ds.n, "dim": ds.dim, "metric": ds.metric,
            "k": K, "bytes": ds.n * ds.dim * 4, "single_queries": n_single, "batch_queries": nb,
            "repeats": opts["repeats"], "setup": setup, "single": single, "batch": batch,
            "contenders": {c.key: {"label": c.label, "threads": c.threads} for c in cs},
            "warnings": warnings}


def run(args) -> dict:
    import _bandwidth

    base = QUICK if args.quick else FULL
    opts = dict(base)
    if args.repeats:
        opts["repeats"] = args.repeats
    for k in ("single", "batch", "duck_batch", "bw_mib"):
        if getattr(args, k, None) is not None:
            opts[k] = getattr(args, k)
    opts["no_duckdb_sql"] = args.no_duckdb_sql
    rows = args.rows or (QUICK_ROWS if args.quick else None)
    opts["rows"] = rows

    log(f"bandwidth: single-core read of a {opts['bw_mib']} MiB array")
    bw = [_bandwidth.measure(opts["bw_mib"], repeats=7)]
    log(f"  {bw[0]['gbps_median']:.2f} GB/s ({bw[0]['method']})")

    out, skipped = {}, {}
    for name in args.datasets:
        ds, missing = load_dataset(args, name, rows, show_rows=False)
        if ds is None:
            skipped[name] = missing
            continue
        out[name] = run_dataset(ds, opts)
        del ds

    log("bandwidth again (end of run)")
    bw.append(_bandwidth.measure(opts["bw_mib"], repeats=7))
    samples = bw[0]["gbps_samples"] + bw[1]["gbps_samples"]
    bandwidth = {"gbps_median": median(samples), "gbps_max": max(samples), "start": bw[0], "end": bw[1],
                 "array_mib": opts["bw_mib"], "method": bw[0]["method"]}
    for r in out.values():
        s = r["single"].get("knnsql_index_1t")
        if s:
            r["scan"] = {"knnsql_1t_single_ms": s["median_ms"], "gbps": s["gbps"],
                         "read_bandwidth_gbps": bandwidth["gbps_median"],
                         "fraction_of_bandwidth": s["gbps"] / bandwidth["gbps_median"]}
    warnings = [w for r in out.values() for w in r["warnings"]]
    return {"options": opts, "bandwidth": bandwidth, "datasets": out, "skipped": skipped, "warnings": warnings}


# ---- report --------------------------------------------------------------------------------------

ORDER = ["knnsql_sql", "knnsql_sql_flat", "knnsql_index", "knnsql_index_1t", "numpy", "faiss", "faiss_1t", "duckdb_sql"]


def _recall_cell(*rs) -> str:
    rs = [r for r in rs if r]
    if not rs:
        return "-"
    rec = min(r["check_recall"] for r in rs)
    strict = min(r["check_recall_strict"] for r in rs)
    return f"{rec:.3f}" + ("" if abs(strict - rec) < 5e-4 else f" ({strict:.3f})")


def to_markdown(doc: dict) -> str:
    res = doc["results"]
    L = [f"## Suite `exact` — exact k-NN, k = {K}", "",
         f"Run {doc['started']} ({doc['duration_s'] / 60:.1f} min), `{doc['command']}`.", "",
         machine_markdown(doc["machine"]), "",
         "Latency and batch time are medians (single queries: over distinct queries; batch: over repeats). "
         "**vs faiss** / **vs DuckDB SQL** = peer time / this time, so above 1x means faster than the peer; "
         "1-thread rows are compared with faiss at 1 thread, the others with the faster of faiss's two settings "
         "(all cores or 1 thread: on 2 shared cores, OpenMP's all-core single query is often the slower). "
         "*scan GB/s* = rows x dim x 4 bytes / latency. recall@10 is tie-aware against an exact float64 "
         "re-rank (strict id-overlap in parentheses when different). `*` = extrapolated from "
         f"{res['options']['duck_batch']} sequential queries.", ""]
    for name, r in res["datasets"].items():
        L += [f"### {name}: {r['description']}", ""]
        s, b = r["single"], r["batch"]
        rows = []
        for key in [k for k in ORDER if k in r["contenders"]]:
            c = r["contenders"][key]
            si, bi = s.get(key), b.get(key)
            f_s = _faiss_peer_time(s, key, "median_ms", c["threads"])
            f_b = _faiss_peer_time(b, key, "median_s", c["threads"])
            d_s = s.get("duckdb_sql", {}).get("median_ms")
            d_b = b.get("duckdb_sql", {}).get("median_s")
            star = "*" if bi and bi["extrapolated"] else ""
            rows.append([c["label"], c["threads"],
                         fmt(si["median_ms"]) if si else "-", fmt(si["p90_ms"]) if si else "-",
                         fmt(si["gbps"]) if si else "-",
                         ratio(f_s, si["median_ms"]) if si and f_s else "",
                         ratio(d_s, si["median_ms"]) if si and key != "duckdb_sql" else "",
                         (fmt(bi["median_s"] * 1e3) + star) if bi else "-",
                         (fmt(bi["qps"]) + star) if bi else "-",
                         ratio(f_b, bi["median_s"]) if bi and f_b else "",
                         ratio(d_b, bi["median_s"]) + ("*" if d_b else "") if bi and key != "duckdb_sql" else "",
                         _recall_cell(si, bi)])
        L.append(md_table(["contender", "threads", "1-query ms", "p90 ms", "scan GB/s", "vs faiss", "vs DuckDB SQL",
                           f"{r['batch_queries']}-query batch ms", "QPS", "vs faiss", "vs DuckDB SQL", "recall@10"],
                          rows, "llrrrrrrrrrr"))
        st = r["setup"]
        L += ["", f"Setup (not timed above): DuckDB table load {fmt(st.get('duckdb_table_load_s'))} s, "
                  f"knnsql Index.add {fmt(st.get('knnsql_index_add_s'))} s (SIMD {st.get('knnsql_simd')}), "
                  f"faiss add {fmt(st.get('faiss_add_s'))} s; DuckDB threads {st.get('duckdb_threads')}; "
                  f"{r['single_queries']} single queries, {r['repeats']} batch repeats. "
                  f"Other processes kept {fmt(st.get('cpu_noise', {}).get('other_processes_cores'))} cores busy "
                  f"on average while this dataset ran (steal {fmt(st.get('cpu_noise', {}).get('steal_cores'))}).",
              ""]
    bw = res["bandwidth"]
    L += ["### Single-core scan throughput", "",
          f"knnsql `Index.search(q, 10, threads=1)` on one query reads the whole base once. Read bandwidth: "
          f"{bw['method']}, {bw['array_mib']} MiB array, one thread, median of 14 passes "
          f"(7 at the start and 7 at the end of the run; max {bw['gbps_max']:.1f} GB/s).", ""]
    rows = []
    l3 = parse_size(doc["machine"].get("l3_cache"))
    for name, r in res["datasets"].items():
        sc = r.get("scan")
        if sc:
            in_l3 = " (fits in L3)" if l3 and r["bytes"] <= l3 else ""
            rows.append([name, f"{r['n']:,} x {r['dim']}", fmt(r["bytes"] / 1e6) + in_l3, fmt(sc["knnsql_1t_single_ms"]),
                         fmt(sc["gbps"]), fmt(sc["read_bandwidth_gbps"]), f"{100 * sc['fraction_of_bandwidth']:.0f}%"])
    L.append(md_table(["dataset", "rows x dim", "MB scanned", "1-thread latency ms", "scan GB/s",
                       "read bandwidth GB/s", "of bandwidth"], rows))
    L.append("")
    if res["skipped"]:
        L += ["Skipped datasets: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items()), ""]
    if res["warnings"]:
        L += ["**Correctness warnings:**", ""] + [f"- {w}" for w in res["warnings"]] + [""]
    else:
        L += ["Correctness: every knnsql contender returned recall@10 = 1.000 (tie-aware) on every checked query.",
              ""]
    return "\n".join(L)


def plot(doc: dict, outdir) -> List[str]:
    plt = try_import_pyplot()
    if plt is None:
        return []
    dss = doc["results"]["datasets"]
    if not dss:
        return []
    fig, axes = plt.subplots(2, len(dss), figsize=(5.2 * len(dss), 7.5), squeeze=False)
    colors = {"knnsql_sql": "#1f77b4", "knnsql_sql_flat": "#17becf", "knnsql_index": "#2ca02c", "knnsql_index_1t": "#98df8a", "numpy": "#9467bd",
              "faiss": "#d62728", "faiss_1t": "#ff9896", "duckdb_sql": "#7f7f7f"}
    for j, (name, r) in enumerate(dss.items()):
        for i, (wl, field, xlabel) in enumerate((("single", "median_ms", "1-query latency, ms (log)"),
                                                 ("batch", "qps", f"{r['batch_queries']}-query batch, QPS (log)"))):
            ax = axes[i][j]
            keys = [k for k in ORDER if k in r[wl]][::-1]
            vals = [r[wl][k][field] for k in keys]
            labels = [LABELS[k] + ("*" if wl == "batch" and r[wl][k].get("extrapolated") else "") for k in keys]
            ax.barh(labels, vals, color=[colors[k] for k in keys])
            ax.set_xscale("log")
            from matplotlib.ticker import NullFormatter

            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(xlabel)
            for y, v in enumerate(vals):
                ax.text(v, y, " " + fmt(v), va="center", fontsize=8)
            if i == 0:
                ax.set_title(f"{name} ({r['n']:,} x {r['dim']}, {r['metric']})")
            ax.margins(x=0.25)
    fig.suptitle("knnsql exact k-NN (k=10), medians; * = extrapolated", fontsize=11)
    return [save_figure(plt, fig, outdir / "exact.png")]
