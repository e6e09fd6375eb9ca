"""Bucket graphs for mid-size windows (window/window_buckets.c): forced levels and the bucket plan forced,
checked against a numpy prefilter; deletes never come back, rows added after the build are found,
optimize and save/load rebuild them, and the cost model's own choice stays correct."""

import numpy as np
import pytest

import knnsql
from knnsql import _ffi

from test_window_plans import FALLBACK, query

BUCKET = 4


def force_buckets(g, levels):
    return int(_ffi.lib().knn_graph_force_buckets(g._handle, levels))


def bucket_rows(g):
    rows = _ffi.ffi.new("size_t[8]")
    n = int(_ffi.lib().knn_graph_bucket_info(g._handle, rows, _ffi.ffi.NULL, 8))
    return [int(rows[i]) for i in range(n)]


def truth(X, live, labels, q, k, lo, hi, metric):
    keep = np.nonzero(live & (labels >= lo) & (labels <= hi))[0]
    R, qq = X[keep].astype(np.float64), q.astype(np.float64)
    if metric == "cosine":
        d = 1 - (R / np.linalg.norm(R, axis=1, keepdims=True)) @ (qq / np.linalg.norm(qq))
    else:
        d = ((R - qq) ** 2).sum(1)
    return keep[np.lexsort((keep, d))[:k]]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    centers = rng.standard_normal((40, 24)).astype(np.float32) * 3
    X = (centers[rng.integers(0, 40, 24000)] + rng.standard_normal((24000, 24))).astype(np.float32)
    labels = np.floor(rng.uniform(0, 4000, len(X)))  # about six rows per label: ties at the bounds
    return X, labels


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_bucket_plan_recall_deletes_and_late_rows(data, metric):
    X, labels = data
    n = 20000
    g = knnsql.Index(24, metric, "graph", m=12, ef_construction=80)
    g.add(X[:n], labels=labels[:n])
    assert force_buckets(g, 3) == 3
    assert bucket_rows(g) == [5000, 2500, 1250]
    bytes_with = g.memory_bytes
    live = np.zeros(len(X), bool)
    live[:n] = True
    rng = np.random.default_rng(3)
    gone = rng.choice(n, 1500, replace=False)
    g.delete(gone)
    live[gone] = False
    g.add(X[n:], ids=np.arange(n, len(X)), labels=labels[n:])  # late rows: not in any bucket graph
    live[n:] = True
    _ffi.lib().knn_graph_force_window_plan(g._handle, BUCKET)
    try:
        hits = total = 0
        for t in range(120):
            width = (50, 150, 400, 900)[t % 4]  # 1-22% of the rows: one or two buckets of some level
            lo = float(rng.integers(0, 4000 - width))
            hi = lo + width
            src = rng.integers(n, len(X)) if t % 3 == 0 else rng.integers(0, n)
            q = (X[src] + 0.05 * rng.standard_normal(24)).astype(np.float32)
            ids, dist, plan = query(g, q, 10, lo, hi, 48)
            assert plan in (BUCKET, FALLBACK)
            assert len(ids) == 10 and len(set(ids.tolist())) == 10
            assert live[ids].all(), "a deleted row came back"
            assert ((labels[ids] >= lo) & (labels[ids] <= hi)).all()
            assert (np.diff(dist) >= 0).all()
            want = truth(X, live, labels, q, 10, lo, hi, metric)
            if lo <= labels[src] <= hi and live[src]:
                assert src in ids.tolist(), "the query's own row (a late row or a bucket row) was missed"
            hits += len(set(ids.tolist()) & set(want.tolist()))
            total += 10
        assert hits / total >= 0.95
    finally:
        _ffi.lib().knn_graph_force_window_plan(g._handle, -1)
    assert bytes_with > 0 and g.memory_bytes > bytes_with - 10_000  # the buckets are counted


def test_replaced_rows_and_optimize_rebuild(data):
    X, labels = data
    n = 12000
    g = knnsql.Index(24, "l2", "graph", m=12, ef_construction=80)
    g.add(X[:n], labels=labels[:n])
    assert force_buckets(g, 2) == 2
    # replace 300 rows: the old vectors must never be returned, the new ones are late rows
    rng = np.random.default_rng(5)
    swap = rng.choice(n, 300, replace=False)
    newX = X[n:n + 300]
    g.add(newX, ids=swap, labels=labels[swap])
    cur = X[:n].copy()
    cur[swap] = newX
    live = np.ones(n, bool)
    _ffi.lib().knn_graph_force_window_plan(g._handle, BUCKET)
    try:
        for t in range(40):
            i = int(swap[t])
            lo, hi = labels[i] - 100, labels[i] + 100
            ids, dist, plan = query(g, newX[t], 10, lo, hi, 48)
            assert ids[0] == i and dist[0] == pytest.approx(0, abs=1e-4)
            # the replaced vector's neighbourhood no longer holds row i at distance 0
            ids2, dist2, _ = query(g, X[i], 10, lo, hi, 48)
            d_true = ((cur[ids2] - X[i]) ** 2).sum(1)
            np.testing.assert_allclose(dist2, d_true, rtol=1e-4, atol=1e-4)
        g.optimize()  # renumbers the nodes: the buckets are dropped, the cost model builds its own
        for t in range(20):
            lo = float(rng.integers(0, 3500))
            q = X[int(rng.integers(n))]
            ids, dist, plan = query(g, q, 10, lo, lo + 300, 48)
            assert len(ids) == 10 and ((labels[ids] >= lo) & (labels[ids] <= lo + 300)).all()
            want = truth(cur, live, labels[:n], q, 10, lo, lo + 300, "l2")
            assert len(set(ids.tolist()) & set(want.tolist())) >= 8
    finally:
        _ffi.lib().knn_graph_force_window_plan(g._handle, -1)


def test_cost_model_with_buckets_keeps_k_rows_and_exact_small_windows(data, tmp_path):
    """With buckets available the planner may pick them; every answer still has k rows inside the
    window when k exist, and one-row and empty windows are exact. A loaded index rebuilds its buckets."""
    X, labels = data
    g = knnsql.Index(24, "l2", "graph", m=12, ef_construction=80)
    g.add(X, labels=labels)
    assert force_buckets(g, 3) == 3
    path = tmp_path / "g.knn"
    g.save(path)
    h = knnsql.Index.load(path)
    live = np.ones(len(X), bool)
    rng = np.random.default_rng(8)
    for index in (g, h):
        for t in range(60):
            width = (0, 1, 30, 300, 1500)[t % 5]
            lo = float(rng.integers(0, 4000 - width))
            q = X[int(rng.integers(len(X)))]
            ids, dist = index.search(q, 10, lo=lo, hi=lo + width)
            ids = ids[0][ids[0] >= 0]
            want = truth(X, live, labels, q, 10, lo, lo + width, "l2")
            assert len(ids) == len(want)
            assert ((labels[ids] >= lo) & (labels[ids] <= lo + width)).all()
            if width <= 1:
                assert sorted(ids.tolist()) == sorted(want.tolist())
    assert h.search(X[0], 5, lo=9.0, hi=1.0)[0].shape == (1, 5)  # lo > hi: no rows, padded


@pytest.mark.parametrize("edge", ["lo", "hi"])
def test_bucket_plan_keeps_rows_labelled_exactly_lo_or_hi(data, edge):
    """The bounds are inclusive on every path: a query equal to a row whose label is exactly the window's
    lo (or hi) finds that row first, with the bucket plan forced both ways: every part a beam (4), and
    each part planned by its cost (5: small parts scanned exactly over the part's label range)."""
    X, labels = data
    n = 16000
    g = knnsql.Index(24, "l2", "graph", m=12, ef_construction=80)
    g.add(X[:n], labels=labels[:n])
    assert force_buckets(g, 3) == 3
    rng = np.random.default_rng(17 if edge == "lo" else 18)
    try:
        for force in (BUCKET, 5):
            _ffi.lib().knn_graph_force_window_plan(g._handle, force)
            bucketed = 0
            for t in range(60):
                src = int(rng.integers(0, n))
                width = float((50, 150, 400, 900)[t % 4])
                lo = labels[src] if edge == "lo" else labels[src] - width
                hi = lo + width
                ids, dist, plan = query(g, X[src], 10, lo, hi, 48)
                bucketed += plan == BUCKET
                assert ids[0] == src, f"the row labelled exactly {edge} = {labels[src]} was lost (force {force})"
                assert ((labels[ids] >= lo) & (labels[ids] <= hi)).all()
            assert bucketed >= 30  # the bucket plan answered most of them (not its fallback)
            # bounds falling exactly on a bucket's first label: every row with that label is found
            ordered = np.sort(labels[:n])
            for rows in bucket_rows(g):
                for start in range(rows, n, rows):
                    bound = ordered[start]
                    lo, hi = (bound, bound + 300) if edge == "lo" else (bound - 300, bound)
                    for src in np.flatnonzero(labels[:n] == bound)[:4]:
                        ids, dist, plan = query(g, X[src], 10, lo, hi, 48)
                        assert ids[0] == src, f"row {src} labelled {bound}, a bucket's first label, was lost"
    finally:
        _ffi.lib().knn_graph_force_window_plan(g._handle, -1)
