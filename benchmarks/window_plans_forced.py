"""Each window plan forced on its own, per window fraction: the measurements behind the planner's design
(ARCHITECTURE.md, "Window search"). For every fraction 2^-1 .. 2^-10 and every plan (the cost model's
choice, the exact scan, the whole graph's postfilter beam, the bucket graphs), the highest single-thread
QPS at recall@10 >= 0.95 over an ef sweep, against the exact in-window top 10, on the same random windows
and queries. Bucket levels are the cost model's unless --levels forces them.

    python benchmarks/window_plans_forced.py --datasets glove,fashion [--rows 100000] [--levels 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import datasets  # noqa: E402

PLANS = {"auto": -1, "exact": 0, "post": 3, "bucket": 4}
EFS = [10, 16, 24, 32, 48, 64, 96, 128]


def truth_top10(Xs, order, q, s, e, metric):
    if metric == "cosine":
        d = -(Xs[s:e] @ (q / np.linalg.norm(q)))
    else:
        d = ((Xs[s:e] - q) ** 2).sum(1)
    return set(order[s + np.argsort(d, kind="stable")[:10]].tolist())


def run(name: str, rows, levels: int, nq: int, seed: int) -> dict:
    import knnsql
    from knnsql import _ffi

    ds = datasets.load(name, rows)
    X = np.ascontiguousarray(ds.X, dtype=np.float32)
    n = len(X)
    rng = np.random.default_rng(seed)
    labels = rng.random(n)
    g = knnsql.Index(X.shape[1], ds.metric, kind="graph", m=16, ef_construction=200, seed=42)
    t0 = time.perf_counter()
    g.add(X, labels=labels)
    build = time.perf_counter() - t0
    lib = _ffi.lib()
    if levels:
        lib.knn_graph_force_buckets(g._handle, levels)
    lv = _ffi.ffi.new("size_t[8]")
    ns = _ffi.ffi.new("double[16]")
    nl = int(lib.knn_graph_bucket_info(g._handle, lv, ns, 8))
    order = np.argsort(labels, kind="stable")
    Ls, Xs = labels[order], X[order]
    Q = np.ascontiguousarray(ds.Q[:nq] if len(ds.Q) >= nq else X[rng.integers(0, n, nq)], dtype=np.float32)
    out = {"dataset": name, "rows": n, "dim": int(X.shape[1]), "build_s": build,
           "bucket_levels": [{"rows": int(lv[i]), "ns_half": ns[2 * i], "ns_quarter": ns[2 * i + 1]} for i in range(nl)],
           "fractions": {}}
    print(f"{name}: {n} rows, build {build:.1f} s, bucket levels {[int(lv[i]) for i in range(nl)]}", flush=True)
    for j in range(1, 11):
        w = n >> j
        s = rng.integers(0, n - w, nq)
        lo, hi = Ls[s], Ls[s + w - 1]
        truth = [truth_top10(Xs, order, Q[i], s[i], s[i] + w, ds.metric) for i in range(nq)]
        cell = {}
        for plan, code in PLANS.items():
            lib.knn_graph_force_window_plan(g._handle, code)
            best = None
            for ef in EFS:
                g.search(Q[0], 10, ef=ef, lo=lo[0], hi=hi[0])
                t0 = time.perf_counter()
                res = [g.search(Q[i], 10, ef=ef, lo=lo[i], hi=hi[i])[0][0] for i in range(nq)]
                qps = nq / (time.perf_counter() - t0)
                rec = float(np.mean([len(set(r.tolist()) & truth[i]) / 10 for i, r in enumerate(res)]))
                if rec >= 0.95:
                    best = {"ef": ef, "qps": qps, "recall": rec}
                    break
                if plan == "exact":
                    break
            cell[plan] = best
        lib.knn_graph_force_window_plan(g._handle, -1)
        out["fractions"][f"2^-{j}"] = cell
        print(f"  2^-{j} ({w} rows): " + "  ".join(
            f"{p} {c['qps']:,.0f} (ef {c['ef']})" if c else f"{p} <0.95" for p, c in cell.items()), flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="glove,fashion")
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--levels", type=int, default=0, help="force this many bucket levels (0: the cost model's)")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args()
    res = [run(d, a.rows, a.levels, a.queries, 7) for d in a.datasets.split(",")]
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
