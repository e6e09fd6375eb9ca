"""Each filtered-search plan forced on its own, per share of matching rows: the measurements behind the
filter planner's threshold (ext/core/filter/filter_plan.c). For every share 2^-1 .. 2^-12 of the rows and
two predicate shapes (rows drawn at random: uncorrelated with the vectors; the rows farthest from the
queries: correlated, the adversarial case for a beam), the median latency of one query on one thread
with each plan (the planner's choice, the exact scan of the matching rows, the two-hop traversal of
ACORN-1, the postfilter beam without a budget) and its recall@10 against the exact top 10 of the matching rows. The rows are given as an
allow-list (``Index.search_among``): the same bitmap and planner as ``knn_search(..., filter := ...)``.

    python benchmarks/filter_plans_forced.py --datasets glove,fashion [--rows 100000] [--out f.json]
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

PLANS = {"auto": -1, "exact": 0, "two-hop": 1, "post": 3}


def exact_top10(X, keep, q, metric):
    if metric == "cosine":
        d = -(X[keep] @ (q / np.linalg.norm(q)))
    else:
        d = ((X[keep] - q) ** 2).sum(1)
    return set(keep[np.argsort(d, kind="stable")[:10]].tolist())


def run(name: str, rows, nq: int, seed: int) -> dict:
    import knnsql
    from knnsql import _ffi

    ds = datasets.load(name, rows)
    X = np.ascontiguousarray(ds.X, dtype=np.float32)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True) if ds.metric == "cosine" else X
    n = len(X)
    rng = np.random.default_rng(seed)
    g = knnsql.Index(X.shape[1], ds.metric, kind="graph", m=16, ef_construction=200, seed=42)
    t0 = time.perf_counter()
    g.add(X)
    build = time.perf_counter() - t0
    lib = _ffi.lib()
    Q = np.ascontiguousarray(ds.Q[:nq] if len(ds.Q) >= nq else X[rng.integers(0, n, nq)], dtype=np.float32)
    centre = Q.mean(0)
    dist_c = -(Xn @ (centre / np.linalg.norm(centre))) if ds.metric == "cosine" else ((X - centre) ** 2).sum(1)
    farthest = np.argsort(-dist_c, kind="stable")
    out = {"dataset": name, "rows": n, "dim": int(X.shape[1]), "build_s": build, "shares": {}}
    print(f"{name}: {n} rows, build {build:.1f} s", flush=True)
    for j in range(1, 13):
        m = n >> j
        for shape, keep in (("random", np.sort(rng.choice(n, m, replace=False))),
                            ("far", np.sort(farthest[:m]))):
            truth = [exact_top10(Xn, keep, Q[i], ds.metric) for i in range(nq)]
            ids = keep.astype(np.int64)
            cell = {}
            times = {p: [] for p in PLANS}
            found = {p: [] for p in PLANS}
            chosen = []
            names = list(PLANS)
            for i in range(nq):  # interleaved: every plan on the same query, in a rotating order
                for plan in names[i % len(names):] + names[:i % len(names)]:
                    code = PLANS[plan]
                    lib.knn_graph_force_window_plan(g._handle, code)
                    t0 = time.perf_counter()
                    got, _ = g.search_among(Q[i], ids, 10, threads=1)
                    times[plan].append(time.perf_counter() - t0)
                    found[plan].append(len(set(got[0].tolist()) & truth[i]) / 10)
                    if plan == "auto":
                        chosen.append(int(g.last_among_plans[0]))
            lib.knn_graph_force_window_plan(g._handle, -1)
            for plan in PLANS:
                cell[plan] = {"ms": float(np.median(times[plan]) * 1e3), "recall": float(np.mean(found[plan]))}
            cell["auto"]["plans"] = {str(c): chosen.count(c) for c in sorted(set(chosen))}
            out["shares"][f"2^-{j} {shape}"] = cell
            print(f"  2^-{j:<2} {shape:6} ({m:>7} rows): " + "  ".join(
                f"{p} {c['ms']:.3f} ms r{c['recall']:.2f}" for p, c in cell.items())
                + f"  auto plans {cell['auto']['plans']}", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="glove,fashion")
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args()
    res = [run(d, a.rows, a.queries, 7) for d in a.datasets.split(",")]
    if a.out:
        Path(a.out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
