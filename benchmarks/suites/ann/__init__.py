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

import time
from pathlib import Path
from typing import Dict, List

import numpy as np

from _common import cpu_snapshot, foreign_load, load_dataset, log, median, timed, trimmed_rss

from .config import EF_CONSTRUCTION, EFS, FULL, K, LABELS, M, QUICK, QUICK_ROWS, THRESHOLDS, VSS_EFS, VSS_PYTHON
from .measure import (GT, ground_truth, reachability, summarize, sweep_batch_all_cores, sweep_single_thread,
                      sweep_sql_single)
from .peers import Built, SqlIndex, _build, build_faiss, build_hnswlib, build_knnsql, build_usearch
from .report import plot, to_markdown
from .vss import run_vss

NAME = "ann"
SUMMARY = ("approximate k-NN (HNSW, k=10): recall@10 vs QPS, build time, memory, restore; knnsql Index + SQL "
           "vs hnswlib, faiss HNSW, usearch, DuckDB vss")
DEFAULT_DATASETS = ["glove", "fashion", "minilm"]
__all__ = ["NAME", "SUMMARY", "DEFAULT_DATASETS", "add_arguments", "run", "to_markdown", "plot"]


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


def run(args) -> dict:
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
        ds, missing = load_dataset(args, name, args.rows or (QUICK_ROWS.get(name, 20_000) if args.quick else None))
        if ds is None:
            skipped[name] = missing
            continue
        t0 = time.perf_counter()
        out[name] = run_dataset(ds, opts, contenders)
        out[name]["wall_s"] = time.perf_counter() - t0
        log(f"  {name} done in {out[name]['wall_s'] / 60:.1f} min")
        del ds
        GT.clear()
    warnings = [w for r in out.values() for w in r["warnings"]]
    return {"options": opts, "datasets": out, "skipped": skipped, "warnings": warnings}
