"""Each window plan on its own (forced through the core's benchmark knob) and the cost model's choice:
exact agreement with a numpy prefilter on small sets, k rows whenever k rows lie in the window, rows
inside the window only, and the plan each query reports."""

import numpy as np
import pytest

import knnsql
from knnsql import _ffi

EXACT, TWO_HOP, FALLBACK, POST = 0, 1, 2, 3


def prefilter(X, labels, q, k, lo, hi):
    """numpy reference: squared L2 over the in-window rows, top k ids (ties by id) and distances."""
    keep = np.nonzero((labels >= lo) & (labels <= hi))[0]
    d = ((X[keep].astype(np.float64) - q.astype(np.float64)) ** 2).sum(1)
    order = np.lexsort((keep, d))[:k]
    return keep[order], d[order]


def query(g, q, k, lo, hi, ef):
    """One window query through the core call; returns (ids, dists, plan)."""
    ffi, lib = _ffi.ffi, _ffi.lib()
    q = np.ascontiguousarray(q, dtype=np.float32).reshape(1, -1)
    ids = np.empty((1, k), dtype=np.int64)
    dists = np.empty((1, k), dtype=np.float32)
    found = np.empty(1, dtype=np.uintp)
    plans = np.full(1, -7, dtype=np.intc)
    buf = _ffi.errbuf()
    st = lib.knn_graph_query_window(g._handle, ffi.from_buffer("float[]", q), 1, k, ef, float(lo), float(hi), 1,
                                    ffi.from_buffer("int64_t[]", ids), ffi.from_buffer("float[]", dists),
                                    ffi.cast("size_t *", ffi.from_buffer("size_t[]", found)),
                                    ffi.cast("int *", ffi.from_buffer("int[]", plans)), buf, _ffi.ERRMSG_LEN)
    _ffi.check(st, buf)
    n = int(found[0])
    return ids[0, :n], dists[0, :n], int(plans[0])


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(21)
    X = rng.standard_normal((400, 8)).astype(np.float32)
    labels = rng.integers(0, 40, len(X)).astype(np.float64)  # ~10 rows per label: duplicates at every bound
    g = knnsql.Index(8, "l2", "graph", m=8)
    g.add(X, labels=labels)
    yield X, labels, g, rng
    _ffi.lib().knn_graph_force_window_plan(g._handle, -1)


@pytest.mark.parametrize("plan", [EXACT, POST])
def test_plan_agrees_exactly_with_prefilter_on_a_small_set(small, plan):
    """With ef >= n the in-search postfilter never stops early: it walks the whole graph, so it is exact."""
    X, labels, g, rng = small
    _ffi.lib().knn_graph_force_window_plan(g._handle, plan)
    for t in range(40):
        lo = int(rng.integers(0, 40))
        hi = lo + int(rng.integers(0, 20))
        q = rng.standard_normal(8).astype(np.float32)
        want, wd = prefilter(X, labels, q, 10, lo, hi)
        ids, d, used = query(g, q, 10, lo, hi, len(X))
        assert used in (plan, FALLBACK) if plan == POST else used == EXACT
        np.testing.assert_allclose(d, wd, rtol=1e-4, atol=1e-4)
        assert ids.tolist() == want.tolist()  # random float data: no ties


@pytest.mark.parametrize("plan", [EXACT, TWO_HOP, POST, -1])
def test_every_plan_returns_k_rows_inside_the_window(small, plan):
    X, labels, g, rng = small
    _ffi.lib().knn_graph_force_window_plan(g._handle, plan)
    windows = [(0, 39), (5, 5), (39, 39), (0, 0), (10.5, 10.9), (12, 13), (-5, 0), (39, 1e9), (20, 19)]
    windows += [(int(a), int(a) + int(b)) for a, b in zip(rng.integers(0, 40, 30), rng.integers(0, 8, 30))]
    hits = total = 0
    for lo, hi in windows:
        for ef in (10, 32):
            q = rng.standard_normal(8).astype(np.float32)
            want, wd = prefilter(X, labels, q, 10, lo, hi)
            ids, d, used = query(g, q, 10, lo, hi, ef)
            assert len(ids) == len(want), f"k rows whenever k exist (window {lo}..{hi}, plan {used})"
            assert np.all((labels[ids] >= lo) & (labels[ids] <= hi))
            assert len(set(ids.tolist())) == len(ids)
            assert np.all(np.diff(d) >= 0)
            np.testing.assert_allclose(d, ((X[ids] - q) ** 2).sum(1), rtol=1e-4, atol=1e-4)
            if plan in (TWO_HOP, POST):
                assert used in (plan, FALLBACK, EXACT), used
                assert used != EXACT or len(want) == 0
            hits += len(set(ids.tolist()) & set(want.tolist()))
            total += len(want)
    assert hits / total >= (1.0 if plan == EXACT else 0.9)


def test_cost_model_plans():
    """A one-row window is always scanned exactly; the whole range of a large index goes to a beam, and
    the in-search postfilter over the whole range returns what a plain search does."""
    rng = np.random.default_rng(22)
    X = rng.standard_normal((20000, 16)).astype(np.float32)
    labels = np.arange(len(X), dtype=np.float64)
    g = knnsql.Index(16, "l2", "graph", m=12)
    g.add(X, labels=labels)
    q = rng.standard_normal(16).astype(np.float32)
    ids, _, used = query(g, q, 1, 777, 777, 0)
    assert ids.tolist() == [777] and used == EXACT
    ids, d, used = query(g, q, 10, -np.inf, np.inf, 64)
    assert used in (POST, TWO_HOP), "scoring 20,000 rows costs more than a beam"
    _ffi.lib().knn_graph_force_window_plan(g._handle, POST)
    ids, d, used = query(g, q, 10, -np.inf, np.inf, 64)
    _ffi.lib().knn_graph_force_window_plan(g._handle, -1)
    plain, pd = g.search(q, 10, ef=64)
    assert used == POST and ids.tolist() == plain[0].tolist()


def test_queries_far_from_a_wide_window_stay_exact_when_the_beam_gives_up():
    """Clusters with disjoint label ranges, a window over half of them and queries near a cluster outside
    it: the postfilter beam must walk far, may stop at its budget (the exact scan's cost) and hand over
    to the exact scan. Whatever the plan, k in-window rows come back; after a hand-over they are exact."""
    rng = np.random.default_rng(23)
    centers = rng.standard_normal((20, 16)).astype(np.float32) * 8
    X = np.concatenate([c + rng.standard_normal((500, 16)).astype(np.float32) for c in centers])
    labels = np.repeat(np.arange(20), 500).astype(np.float64)
    g = knnsql.Index(16, "l2", "graph", m=8)
    g.add(X, labels=labels)
    seen = set()
    for t in range(20):
        q = centers[10 + t % 10] + rng.standard_normal(16).astype(np.float32)
        want, wd = prefilter(X, labels, q, 10, 0, 9)
        ids, d, used = query(g, q, 10, 0, 9, 16)
        seen.add(used)
        assert len(ids) == 10 and np.all(labels[ids] <= 9)
        np.testing.assert_allclose(d, ((X[ids] - q) ** 2).sum(1), rtol=1e-4, atol=1e-4)
        if used in (EXACT, FALLBACK):
            np.testing.assert_allclose(d, wd, rtol=1e-4, atol=1e-4)
    assert seen <= {EXACT, TWO_HOP, FALLBACK, POST}


def test_a_window_over_every_row_is_the_unfiltered_search():
    """A window holding every row (open bounds, or exactly the label range) runs the plain search under the
    cost model: same ids and distances at every ef. With an unlabelled row the window no longer holds
    every row, and that row never comes back."""
    rng = np.random.default_rng(24)
    X = rng.standard_normal((3000, 12)).astype(np.float32)
    labels = rng.random(len(X))
    g = knnsql.Index(12, "l2", "graph", m=8)
    g.add(X, labels=labels)
    for t in range(10):
        q = rng.standard_normal(12).astype(np.float32)
        for ef in (10, 40):
            plain, pd = g.search(q, 10, ef=ef, threads=1)
            for lo, hi in ((-np.inf, np.inf), (labels.min(), labels.max())):
                ids, d, used = query(g, q, 10, lo, hi, ef)
                assert used == POST
                assert ids.tolist() == plain[0].tolist()
                np.testing.assert_array_equal(d, pd[0])
    g.add(X[:1] * 0.999, np.array([len(X)]), labels=np.array([np.nan]))  # unlabelled copy of row 0
    ids, d, used = query(g, X[0], 10, -np.inf, np.inf, 40)
    assert len(X) not in ids.tolist() and 0 in ids.tolist()


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_screened_exact_scan_matches_numpy_on_wide_windows(metric, isa):
    """Window structures of >= 4096 rows keep 8-bit codes; exact scans of >= 100,000 values skip the rows
    whose code bound rules them out. The result must still be the exact top k: same ids (ties by id,
    here from duplicated rows), same distances, deleted rows never."""
    rng = np.random.default_rng(5)
    base = rng.standard_normal((9000, 48)).astype(np.float32)  # 48 dims: windows hold >= 100,000 values
    base[:, 0] *= 30  # one wide dimension: coarse codes for the others, many rows left to score
    X = np.concatenate([base, base[:3000]])  # 3000 exact duplicates: ties at equal distance
    labels = rng.uniform(0, 1000, len(X))
    g = knnsql.Index(48, metric, "graph", m=8, ef_construction=40)
    g.add(X, labels=labels)
    gone = rng.choice(len(X), 500, replace=False)
    g.delete(gone)
    g.optimize()
    live = np.ones(len(X), bool)
    live[gone] = False
    R = X.astype(np.float64)
    if metric == "cosine":
        R = R / np.linalg.norm(R, axis=1, keepdims=True)
    _ffi.lib().knn_graph_force_window_plan(g._handle, EXACT)
    try:
        for t in range(45):
            lo = float(rng.uniform(0, 250))
            # 2,400-9,600 rows in the window: one or several 4,096-row spans of the two-pass scan
            hi = lo + float(rng.uniform(200, 400) if t % 2 else rng.uniform(400, 800))
            k = (10, 1, 10, 300, 37)[t % 5]  # k > 256 leaves the codes' upper bounds out
            q = (X[int(rng.integers(len(X)))] + 0.3 * rng.standard_normal(48)).astype(np.float32)
            if t % 3 == 2:
                q *= 4  # far outside the coded range: the query's codes clamp, its bound must still hold
            keep = np.nonzero((labels >= lo) & (labels <= hi) & live)[0]
            qq = q.astype(np.float64)
            if metric == "cosine":
                qq = qq / np.linalg.norm(qq)
                d = 1 - R[keep] @ qq
            else:
                d = ((R[keep] - qq) ** 2).sum(1)
            order = np.lexsort((keep, d))[:k]
            ids, dist, used = query(g, q, k, lo, hi, max(64, k))
            assert used == EXACT
            np.testing.assert_allclose(dist, d[order], rtol=1e-4, atol=1e-4)
            if k <= 10:
                assert ids.tolist() == keep[order].tolist()
            else:  # float32 against float64 may swap near-ties deep in a long list: a top k up to 1e-5
                kth = d[order[-1]]
                by_id = dict(zip(keep.tolist(), d.tolist()))
                assert len(set(ids.tolist())) == k and all(by_id[i] <= kth + 1e-5 for i in ids.tolist())
                assert set(keep[d < kth - 1e-5].tolist()) <= set(ids.tolist())
    finally:
        _ffi.lib().knn_graph_force_window_plan(g._handle, -1)


def test_near_whole_windows_filter_a_plain_search():
    """A window holding >= 80% of the rows takes a plain search for a few more than k / f rows, filtered:
    every answer in the window, k of them, close to the exact in-window top k; unlabelled rows never."""
    rng = np.random.default_rng(21)
    X = rng.standard_normal((6000, 16)).astype(np.float32)
    labels = rng.uniform(0, 100, len(X))
    labels[rng.choice(len(X), 600, replace=False)] = np.nan  # unlabelled: in no window
    g = knnsql.Index(16, "l2", "graph", m=12, ef_construction=80)
    g.add(X, labels=labels)
    hits = 0
    for t in range(60):
        # every labelled row (90% of the rows), or 85-90% of them
        lo, hi = (-np.inf, np.inf) if t % 3 == 0 else (float(rng.uniform(0, 5)), float(rng.uniform(95, 100)))
        q = X[int(rng.integers(len(X)))] + 0.1
        ids, dist = g.search(q, 10, ef=48, lo=lo, hi=hi)
        ids = ids[0]
        lab = labels[ids]
        assert len(ids) == 10 and not np.isnan(lab).any()
        assert ((lab >= lo) & (lab <= hi)).all()
        want, _ = prefilter(X, np.nan_to_num(labels, nan=-1e9), q, 10, max(lo, -1e8), hi)
        hits += len(set(ids.tolist()) & set(want.tolist()))
    assert hits / 600 >= 0.95
