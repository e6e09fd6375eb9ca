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

from pathlib import Path
import numpy as np

from _common import cpu_snapshot, foreign_load, load_dataset, log

from .config import EF_CONSTRUCTION, M  # noqa: F401  (for scripts that use the suite: window_ab.py)
from .config import EFS, FULL, K, LABEL_DESC, METHODS, QUICK, QUICK_ROWS, VSS_PYTHON, WORKLOADS
from .measure import call_overhead, run_fraction
from .report import plot, to_markdown  # noqa: F401  (the suite interface)
from .targets import evaluate_targets, find_anomalies
from .vss import run_vss_window
from .workload import Workload, _Blas, build_base, workload_labels

NAME = "window"
SUMMARY = ("window-filtered k-NN (label in [lo, hi], k=10, Engels et al. workload): knnsql graph vs prefilter, "
           "postfilter, hnswlib filter, DuckDB SQL")
DEFAULT_DATASETS = ["glove", "fashion", "adversarial", "minilm"]
__all__ = ["NAME", "SUMMARY", "DEFAULT_DATASETS", "add_arguments", "run", "to_markdown", "plot",  # the suite
           "WORKLOADS", "M", "EF_CONSTRUCTION", "workload_labels", "evaluate_targets"]  # for window_ab.py, window_merge.py


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


def run(args) -> dict:
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
            ds, missing = load_dataset(args, bname, args.rows or (QUICK_ROWS.get(bname) if args.quick else None))
            if ds is None:
                skipped.update((w, missing) for w in wnames if WORKLOADS[w][0] == bname)
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
