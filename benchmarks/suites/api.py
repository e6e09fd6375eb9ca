"""Suite "api": filtered k-NN (k = 10) through knnsql's Python table API, its SQL and the db.sql rewrite,
against the raw knn_search statement, plain DuckDB SQL and LanceDB, over the same rows.

Data (``_api_data.py``): per dataset the base rows and held-out queries of ``datasets.py`` (GloVe-400k
50-d cosine, Fashion-MNIST-60k 784-d l2), plus attribute columns ``u`` DOUBLE uniform [0,1), ``cat``
INTEGER uniform 0..9, ``u2`` DOUBLE uniform [0,1) and ``far`` BIGINT = rank of the row by descending
distance from the centroid of the dataset's query set. Filters keep 100% (no filter), 10%, 1%, 0.1%:

==========  ===================================================================  ======================
shape       predicate keeping a fraction s                                      relation to the vectors
==========  ===================================================================  ======================
range       ``u < s``                                                           independent
in+range    ``cat IN (3, 7) AND u2 < s/0.2``                                   independent
far         ``far < round(s*n)``: the s*n rows farthest from the queries        anti-correlated
==========  ===================================================================  ======================

knnsql: ``db.create_table("items", dim, metric, columns={u, cat, u2, far})``, ``add``,
``create_index(m=16, ef_construction=200)`` (a graph index holding all four columns as attributes).
LanceDB (``_api_lance.py``): the same rows, IVF_HNSW_SQ with the table's metric and LanceDB's defaults,
BTREE indexes on u, cat, u2, far, ``where(pred, prefilter=True)``; at its defaults and at the cheapest
setting of a ladder (ef, refine_factor, nprobes) reaching recall 0.95 on 20 separate tuning queries.

Contenders and timing (``_api_measure.py``): one call per query, interleaved round robin over the
contenders for each query (the first one rotating), garbage collector off, DuckDB / LanceDB at their
default thread counts; 60 queries per cell for the knnsql paths, the first 20 of them for plain DuckDB
SQL and LanceDB; medians. Recall@10 against numpy's exact top-10 among the rows the filter keeps
(float64, tie-aware). Batches: 1,000 queries with one filter in one call (``table.search(Q).where(pred)``
and ``SELECT qid, knn('items__emb', emb, 10, pred) FROM queries``) against the plain DuckDB statement in a
loop over 100 of the queries, extrapolated to 1,000; 3 interleaved repeats.

``--quick``: 20k-row slices, 10 queries (5 slow), a 20-query loop, 2 repeats (~2 minutes).
"""

from __future__ import annotations

import time
from typing import List

import numpy as np

from _common import cpu_snapshot, foreign_load, load_dataset, log
from ._api_data import COLUMNS, Truth, attributes, cells, mask_of, predicate
from ._api_measure import Contenders, run_batch, run_cell, tune_lance

NAME = "api"
SUMMARY = "filtered k-NN: table API, knn_search filter :=, db.sql rewrite vs DuckDB SQL and LanceDB (k=10)"
DEFAULT_DATASETS = ["glove", "fashion"]

FULL = dict(rows=None, queries=60, slow_queries=20, tune_queries=20, batch_queries=1000, loop_queries=100,
            repeats=3, lance=True)
QUICK = dict(rows=20_000, queries=10, slow_queries=5, tune_queries=10, batch_queries=1000, loop_queries=20,
             repeats=2, lance=True)
BATCH_CELLS = ["range/10%", "range/1%", "far/10%", "far/1%", "in+range/10%", "in+range/1%"]
WARM = 2


def add_arguments(p) -> None:
    p.add_argument("--rows", type=int, default=None, help="base rows per dataset (default all; quick 20,000)")
    p.add_argument("--queries", type=int, default=None, help="queries per cell, knnsql paths (default 60)")
    p.add_argument("--slow-queries", "--duck-queries", type=int, default=None,
                   help="of those, queries for plain DuckDB SQL and LanceDB (default 20)")
    p.add_argument("--loop-queries", type=int, default=None,
                   help="queries of the DuckDB loop the batches are compared with (default 100)")
    p.add_argument("--no-lance", action="store_true", help="leave LanceDB out")
    p.add_argument("--cells", default=None, help="comma-separated cell keys to run (e.g. all,range/1%%)")


def run_dataset(ds, opts, args) -> dict:
    import knnsql
    import pyarrow as pa

    X = ds.X
    n, d = X.shape
    Q_all = np.ascontiguousarray(ds.Q, dtype=np.float32)
    need = opts["queries"] + opts["tune_queries"] + WARM
    if len(Q_all) < max(need, opts["batch_queries"]):
        raise ValueError(f"{ds.name}: {len(Q_all)} queries, need {max(need, opts['batch_queries'])}")
    rows = list(range(opts["queries"]))
    tune_rows = list(range(opts["queries"], opts["queries"] + opts["tune_queries"]))
    warm_rows = list(range(need - WARM, need))
    batch_rows = list(range(opts["batch_queries"]))
    loop_rows = batch_rows[:opts["loop_queries"]]

    t0 = time.perf_counter()
    X64 = X.astype(np.float64)
    sq = (X64 * X64).sum(1)
    attrs = attributes(X64, Q_all, ds.metric, sq)
    all_cells = cells(n)
    if opts.get("cells"):
        all_cells = [c for c in all_cells if c[0] in opts["cells"]]
    masks = {key: mask_of(shape, s, attrs) for key, shape, _, s in all_cells}
    batch_keys = [k for k in BATCH_CELLS if k in masks]
    truth = Truth(X64, ds.metric, sq)
    truth.add(masks, Q_all, rows + tune_rows)
    truth.add({k: masks[k] for k in batch_keys}, Q_all, batch_rows)
    truth_s = time.perf_counter() - t0
    log(f"{ds.name}: {n:,} x {d} {ds.metric}; attributes + ground truth {truth_s:.1f} s")

    db = knnsql.connect()
    t = db.create_table("items", dim=d, metric=ds.metric, columns=dict(COLUMNS))
    t0 = time.perf_counter()
    t.add({"id": np.arange(n, dtype=np.int64), "emb": X, **attrs})
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    t.create_index(m=16, ef_construction=200)
    build_s = time.perf_counter() - t0
    info = t.index
    db.con.register("_qv", pa.table({"qid": pa.array(np.arange(len(batch_rows), dtype=np.int64)),
                                     "emb": pa.FixedSizeListArray.from_arrays(pa.array(Q_all[batch_rows].reshape(-1)), d)}))
    db.con.execute(f"CREATE TABLE queries AS SELECT qid, emb::FLOAT[{d}] AS emb FROM _qv").fetchall()
    db.con.unregister("_qv")
    log(f"  knnsql: add {add_s:.1f} s, index {build_s:.1f} s ({info.params})")

    lance, lance_build = None, None
    if opts["lance"]:
        from ._api_lance import Lance
        lance = Lance(X, attrs, ds.metric)
        lance_build = {"version": lance.version, "load_s": lance.load_s, "vector_index_s": lance.vector_index_s,
                       "scalar_index_s": lance.scalar_index_s, "indexes": lance.index_info,
                       "partitions": lance.partitions(Q_all[warm_rows[0]])}
        log(f"  LanceDB {lance.version}: load {lance.load_s:.1f} s, IVF_HNSW_SQ {lance.vector_index_s:.1f} s, "
            f"4 BTREE {lance.scalar_index_s:.1f} s")

    cont = Contenders(db, t, d, ds.metric, lance)
    snap = cpu_snapshot()
    out_cells = []
    for key, shape, label, s in all_cells:
        pred = predicate(shape, s, n) if shape else None
        kept = int(masks[key].sum())
        log(f"  cell {key}: {pred or 'no filter'} keeps {kept:,} rows ({kept / n:.4%})")
        tuned, steps = (None, [])
        if lance is not None:
            tuned, steps = tune_lance(lance, pred, key, truth, Q_all, tune_rows)
        explain = db.explain(cont.plain_sql(pred), q=Q_all[rows[0]])
        res = run_cell(cont.for_cell(pred, tuned), key, truth, Q_all, rows, opts["slow_queries"], warm_rows)
        lance_plan = lance.plan_text(Q_all[rows[0]], pred, {}) if lance is not None else None
        out_cells.append({"key": key, "shape": shape, "label": label, "s": s, "pred": pred, "kept_rows": kept,
                          "kept_frac": kept / n, "methods": res, "lance_tuned": tuned, "lance_tuning": steps,
                          "lance_plan": lance_plan, "knn_search_sql": cont.knn_search_sql(pred),
                          "plain_sql": cont.plain_sql(pred),
                          "dbsql": {"rewritten": explain.rewritten, "reason": explain.reason,
                                    "sql": explain.sql[:400]}})
        log("    " + ", ".join(f"{m} {v['p50_ms']:.2f} ms r {v['recall']:.3f}" for m, v in res.items())
            + f"; api plans {res['api']['plans']}; db.sql rewritten {explain.rewritten}")
    single_noise = foreign_load(snap, cpu_snapshot())

    snap = cpu_snapshot()
    batches = []
    for key in batch_keys:
        shape, label = key.split("/")
        s = dict(((c[0], c[3]) for c in all_cells))[key]
        pred = predicate(shape, s, n)
        b = run_batch(db, t, cont, pred, key, truth, Q_all, batch_rows, loop_rows, opts["repeats"])
        b.update(key=key, shape=shape, label=label, kept_frac=float(masks[key].mean()))
        batches.append(b)
    batch_noise = foreign_load(snap, cpu_snapshot())

    if lance is not None:
        lance.close()
    db.close()
    # the shape ab.py's cells_api reads (range shape; there is no .exact() contender any more)
    legacy = {"raw_ms": out_cells[0]["methods"]["sql"]["p50_ms"] if out_cells[0]["key"] == "all" else None,
              "rows": [{"selectivity": c["label"], "api_ms": c["methods"]["api"]["p50_ms"],
                        "api_recall": c["methods"]["api"]["recall"], "sql_ms": c["methods"]["db.sql"]["p50_ms"],
                        "sql_recall": c["methods"]["db.sql"]["recall"], "duck_ms": c["methods"]["duckdb"]["p50_ms"],
                        "duck_recall": c["methods"]["duckdb"]["recall"]}
                       for c in out_cells if c["shape"] in (None, "range")]}
    return {**legacy,"dataset": ds.name, "description": ds.description, "n": n, "dim": d, "metric": ds.metric,
            "truth_s": truth_s, "add_s": add_s, "build_s": build_s, "index_params": info.params,
            "lance_build": lance_build, "cells": out_cells, "batches": batches,
            "noise": {"single": single_noise, "batch": batch_noise},
            "queries": {"measured": len(rows), "slow": opts["slow_queries"], "tune": len(tune_rows),
                        "batch": len(batch_rows), "loop": len(loop_rows)}}


def _git_state() -> dict:
    import subprocess
    from _common import REPO

    def git(*a):
        try:
            return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"head": git("log", "-1", "--format=%H %ad %s", "--date=iso")[:300],
            "modified": git("status", "--porcelain", "--untracked-files=no").splitlines()}


def run(args) -> dict:
    git = _git_state()
    log(f"git: {git['head'][:120]}; modified: {git['modified']}")
    opts = dict(QUICK if args.quick else FULL)
    for k in ("rows", "queries", "slow_queries", "loop_queries"):
        if getattr(args, k, None) is not None:
            opts[k] = getattr(args, k)
    if args.repeats:
        opts["repeats"] = args.repeats
    if args.no_lance:
        opts["lance"] = False
    opts["cells"] = [c.strip() for c in args.cells.split(",")] if args.cells else None
    opts["slow_queries"] = min(opts["slow_queries"], opts["queries"])
    out = []
    for name in args.datasets:
        ds, missing = load_dataset(args, name, opts["rows"])
        if ds is None:
            continue
        out.append(run_dataset(ds, opts, args))
    return {"datasets": out, "opts": opts, "git": git}


def to_markdown(doc: dict) -> str:
    from ._api_report import to_markdown as md
    return md(doc)


def plot(doc: dict, outdir) -> List[str]:
    return []
