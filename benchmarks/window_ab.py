"""Interleaved A/B at the whole label range (window fraction 2^0): knnsql's window search against the
doubling postfilter on the same graph at the same ef. Both run the same plain beam here (same ids), so
the window suite's sequential cells on a shared machine can swing their ratio either way; this alternates
the two over the same queries, round after round, and reports the median QPS of each.

    python benchmarks/window_ab.py [--workloads adversarial,glove-random,...] [--rows N] [--ef 32]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datasets  # noqa: E402
from suites import window  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default=",".join(window.WORKLOADS))
    p.add_argument("--rows", type=int, default=None, help="cap base rows per dataset")
    p.add_argument("--ef", type=int, default=32)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--rounds", type=int, default=10)
    a = p.parse_args(argv)
    import knnsql

    print("| workload | ef | window search QPS | postfilter QPS | ratio | same ids |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for w in a.workloads.split(","):
        base, kind = window.WORKLOADS[w]
        ds = datasets.load(base, max_rows=a.rows)
        labels, _ = window.workload_labels(kind, ds)
        g = knnsql.Index(ds.dim, ds.metric, kind="graph", m=window.M, ef_construction=window.EF_CONSTRUCTION,
                         ef=64, seed=42)
        g.add(ds.X, np.arange(ds.n), labels=labels)
        lab = labels[~np.isnan(labels)]
        lo, hi = float(lab.min()), float(lab.max())
        Q = np.ascontiguousarray(ds.Q[:a.queries], dtype=np.float32)
        if kind == "adversarial":
            Q = np.ascontiguousarray(datasets.adversarial_query(
                datasets.adversarial_parts(ds.info["per_cluster"])["means"],
                np.arange(a.queries) % ds.info["clusters"], np.random.default_rng(1)), dtype=np.float32)
        g.search(Q[0], 10, threads=1, lo=lo, hi=hi)  # calibration
        need = min(10, len(lab))

        def win(q):
            return g.search(q, 10, ef=a.ef, threads=1, lo=lo, hi=hi)[0][0]

        def post(q):  # as the suite's postfilter: doubling k until `need` in-window rows pass
            kk = 10
            while True:
                kq = min(kk, ds.n)
                ids = g.search(q, kq, ef=max(a.ef, kq), threads=1)[0][0]
                ids = ids[ids >= 0]
                sel = ids[(labels[ids] >= lo) & (labels[ids] <= hi)]
                if len(sel) >= need or kq >= ds.n:
                    return sel[:10]
                kk *= 2

        qps = {"win": [], "post": []}
        for r in range(a.rounds):
            order = (("win", win), ("post", post)) if r % 2 == 0 else (("post", post), ("win", win))
            for name, f in order:
                t0 = time.perf_counter()
                for q in Q:
                    f(q)
                qps[name].append(len(Q) / (time.perf_counter() - t0))
        same = all(np.array_equal(win(q), post(q)) for q in Q[:50])
        mw, mp = float(np.median(qps["win"])), float(np.median(qps["post"]))
        print(f"| {w} ({ds.n:,} rows) | {a.ef} | {mw:,.0f} | {mp:,.0f} | {mw / mp:.2f}x | {same} |", flush=True)
        del g
    return 0


if __name__ == "__main__":
    sys.exit(main())
