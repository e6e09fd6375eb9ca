"""Suite "quant": vector codes. So far: the exact flat scan over 8-bit codes (quantization 'sq8') against
the float flat scan, k = 10, one thread, one query at a time.

Contenders, on the same data in the same run (single queries in interleaved rounds: each round times every
contender on the same queries, after a short pause so the previous one's threads go to sleep):

=====================  ================================================================================
knnsql flat f32        ``knnsql.Index(d, metric, "flat")``: float rows on the heap, brute force
knnsql flat sq8        ``knnsql.Index(d, metric, "flat", quantization="sq8")``: 8-bit codes on the heap,
                       float rows in an unlinked file mapping, exact (the codes' bound decides which float
                       rows are read)
faiss Flat             ``IndexFlatL2`` / ``IndexFlatIP`` (unit rows for cosine), 1 thread
faiss SQ8              ``IndexScalarQuantizer(d, QT_8bit)``: approximate (no re-rank), for scale
=====================  ================================================================================

Reported per dataset: heap bytes per row (``memory_bytes / rows``; faiss: its code size), the file's bytes,
median single-query latency and QPS at one thread, the ratio to the float flat scan, whether every query's
ids and distances equal the float index's (the exact mode's promise), and recall@10 (tie-aware, against the
float flat result) for the approximate contender.
"""

from __future__ import annotations

import tempfile
from typing import Dict

import numpy as np

from _common import (cpu_snapshot, dataset_sections, fmt, foreign_load, load_dataset, log, md_table, median,
                     report_intro, settle, timed)

NAME = "quant"
SUMMARY = "vector codes: exact flat scan over 8-bit codes vs the float flat scan and faiss (1 thread, k=10)"
DEFAULT_DATASETS = ["fashion", "glove", "synthetic", "minilm"]

K = 10
FULL = dict(queries=200, rounds=5)
QUICK = dict(queries=30, rounds=2)
QUICK_ROWS = 50_000


def add_arguments(p) -> None:
    p.add_argument("--queries", type=int, default=None, help="distinct single queries per round (default 200)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")


def _recall(ref_d: np.ndarray, got_d: np.ndarray) -> float:
    """Share of returned rows within the reference's k-th distance (ties count)."""
    kth = ref_d[:, -1:]
    return float(np.mean(got_d <= kth * (1 + 1e-5) + 1e-6))


def _dataset(args, name: str, opts: dict) -> dict:
    import knnsql

    ds, reason = load_dataset(args, name, QUICK_ROWS if args.quick else None)
    if ds is None:
        return {"skipped": reason}
    X = np.ascontiguousarray(ds.X, dtype=np.float32)
    Q = np.ascontiguousarray(ds.Q[: opts["queries"]], dtype=np.float32)
    metric = ds.metric
    n, d = X.shape
    ids = np.arange(n, dtype=np.int64)
    out: Dict = {"description": ds.description, "rows": n, "dim": d, "metric": metric, "contenders": {}}
    vdir = tempfile.mkdtemp(prefix="knnsql-bench-")
    f32 = knnsql.Index(d, metric, "flat")
    sq8 = knnsql.Index(d, metric, "flat", quantization="sq8", vectors_dir=vdir)
    t_f, _ = timed(f32.add, X, ids)
    t_q, _ = timed(sq8.add, X, ids)
    searches = {  # each takes a query's position in Q
        "f32": lambda i: f32.search(Q[i], K, threads=1),
        "sq8": lambda i: sq8.search(Q[i], K, threads=1),
    }
    mem = {"f32": (f32.memory_bytes, f32.disk_bytes, t_f), "sq8": (sq8.memory_bytes, sq8.disk_bytes, t_q)}
    try:
        import faiss

        faiss.omp_set_num_threads(1)
        Xf = X if metric != "cosine" else X / np.linalg.norm(X, axis=1, keepdims=True).clip(1e-30)
        Qf = Q if metric != "cosine" else Q / np.linalg.norm(Q, axis=1, keepdims=True).clip(1e-30)
        flat = faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d)
        t_ff, _ = timed(flat.add, Xf)
        mtype = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        sq = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, mtype)
        t_sq, _ = timed(lambda: (sq.train(Xf), sq.add(Xf)))
        searches["faiss_flat"] = lambda i: flat.search(Qf[i: i + 1], K)
        searches["faiss_sq8"] = lambda i: sq.search(Qf[i: i + 1], K)
        mem["faiss_flat"] = (n * d * 4, 0, t_ff)
        mem["faiss_sq8"] = (n * sq.sa_code_size(), 0, t_sq)
    except ImportError:
        log("  faiss missing: its rows are left out")
    # same answers? (the exact mode must equal the float scan query by query)
    ref = [f32.search(q, K, threads=1) for q in Q]
    same = all(np.array_equal(r[0], s[0]) and np.array_equal(r[1], s[1])
               for r, s in zip(ref, (sq8.search(q, K, threads=1) for q in Q)))
    ref_d = np.vstack([r[1].reshape(1, -1) for r in ref])
    times: Dict[str, list] = {c: [] for c in searches}
    before = cpu_snapshot()
    for rnd in range(opts["rounds"]):
        for name, fn in searches.items():
            settle(0.1)
            per = []
            for i in range(len(Q)):
                t, _ = timed(fn, i)
                per.append(t)
            times[name].append(median(per))
        log(f"  round {rnd + 1}: " + ", ".join(f"{c} {times[c][-1] * 1e3:.3f} ms" for c in searches))
    out["load"] = foreign_load(before, cpu_snapshot())
    for name in searches:
        ms = median(times[name]) * 1e3
        heap, disk, build = mem[name]
        c = {"median_ms": ms, "qps": 1e3 / ms, "heap_bytes_per_row": heap / n, "disk_bytes": disk, "build_s": build,
             "round_ms": [t * 1e3 for t in times[name]]}
        if name == "sq8":
            c["identical_to_f32"] = same
        if name == "faiss_sq8":
            got_d = np.vstack([searches[name](i)[0] for i in range(len(Q))])
            if metric != "l2":  # inner products: distances as knnsql reports them
                got_d = 1.0 - got_d if metric == "cosine" else -got_d
            c["recall"] = _recall(ref_d, got_d)
        out["contenders"][name] = c
    base = out["contenders"]["f32"]["median_ms"]
    for c in out["contenders"].values():
        c["speedup_vs_f32"] = base / c["median_ms"]
    return out


def run(args) -> dict:
    opts = dict(QUICK if args.quick else FULL)
    opts.update({key: getattr(args, key) for key in ("queries", "rounds") if getattr(args, key)})
    datasets = args.datasets or DEFAULT_DATASETS
    return {"options": opts, "datasets": {name: _dataset(args, name, opts) for name in datasets}}


LABELS = {"f32": "knnsql flat f32", "sq8": "knnsql flat sq8 (exact)", "faiss_flat": "faiss Flat",
          "faiss_sq8": "faiss SQ8 (approximate)"}


def _section(name: str, r: dict) -> list:
    rows = []
    for key in [k for k in LABELS if k in r["contenders"]]:
        c = r["contenders"][key]
        rows.append([LABELS[key], fmt(c["heap_bytes_per_row"]), fmt(c["disk_bytes"] / 1e6) + " MB" if c["disk_bytes"]
                     else "", fmt(c["median_ms"]), fmt(c["qps"]), fmt(c["speedup_vs_f32"]) + "x",
                     {True: "yes", False: "NO"}.get(c.get("identical_to_f32"), ""),
                     fmt(c["recall"]) if "recall" in c else "", fmt(c["build_s"])])
    return [f"### {name}: {r['description']} ({r['rows']:,} x {r['dim']}, {r['metric']})", "",
            md_table(["contender", "heap B/row", "file", "1-query ms", "QPS", "vs f32", "same answer", "recall@10",
                      "build s"], rows), "",
            f"Other processes kept {r['load'].get('other_processes_cores', 0):.3g} cores busy on average.", ""]


def to_markdown(doc: dict) -> str:
    res = doc["results"]
    L = report_intro(doc, f"## Suite `quant` — vector codes, k = {K}, one thread",
                     f"Single-query latency: the median over {res['options']['rounds']} interleaved rounds of each "
                     f"round's median over {res['options']['queries']} distinct queries. **vs f32** = float flat "
                     "time / this time. *heap B/row*: the index's heap bytes per row (faiss: its stored bytes); "
                     "*file*: the mapped file of float rows. *same answer*: every query's ids and distances equal "
                     "the float flat index's. recall@10 is tie-aware against the float flat result.")
    return "\n".join(L + dataset_sections(res["datasets"], _section))
