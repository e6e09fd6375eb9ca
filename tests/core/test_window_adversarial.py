"""Window search on Engels et al.'s adversarial set, scaled down: tight Gaussian clusters whose label
ranges are disjoint (cluster i labelled in [i - 0.5, i + 0.5)), rows added cluster by cluster, each query
near a cluster *outside* its window. Recall@10 against numpy's exact in-window top-10 must stay >= 0.95
for the planner's choice and for the in-search postfilter beam, at wide windows too (2^0, 2^-1, 2^-2 of
the rows), where the graph plans answer. Rows linked in arrival order (cluster by cluster) left the
clusters weakly connected and these recalls at 0.5 - 0.8."""

import numpy as np
import pytest

import knnsql
from knnsql import _ffi

from test_window_plans import POST, query

CLUSTERS, PER, DIM = 40, 250, 32


@pytest.fixture(scope="module")
def adversarial():
    rng = np.random.default_rng(4)
    means = rng.standard_normal((CLUSTERS, DIM))
    X = (np.repeat(means, PER, 0) + rng.standard_normal((CLUSTERS * PER, DIM)) * 0.1).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    labels = np.repeat(np.arange(CLUSTERS), PER) + rng.random(CLUSTERS * PER) - 0.5
    g = knnsql.Index(DIM, "cosine", "graph")
    g.add(X, labels=labels)  # cluster by cluster, as the rows arrive
    yield means, X, labels, g
    _ffi.lib().knn_graph_force_window_plan(g._handle, -1)


def near(means, c, rng):
    q = means[c] + rng.standard_normal(means.shape[1]) * 0.1
    return (q / np.linalg.norm(q)).astype(np.float32)


def exact_top(X, labels, q, lo, hi, k=10):
    keep = np.nonzero((labels >= lo) & (labels <= hi))[0]
    return keep[np.argsort(-(X[keep].astype(np.float64) @ q))[:k]]


def test_plain_search_reaches_every_cluster(adversarial):
    means, X, labels, g = adversarial
    rng = np.random.default_rng(8)
    hits = 0
    for t in range(60):
        q = near(means, int(rng.integers(0, CLUSTERS)), rng)
        want = np.argsort(-(X.astype(np.float64) @ q))[:10]
        got = g.search(q, 10, ef=64, threads=1)[0][0]
        hits += len(set(got.tolist()) & set(want.tolist()))
    assert hits / 600 >= 0.95


def far_windows(means, X, labels, g, plan, exp, ef, seed):
    """Recall@10 over 40 random windows of 2^-exp of the rows, each query near a cluster outside its window."""
    _ffi.lib().knn_graph_force_window_plan(g._handle, plan)
    rng = np.random.default_rng(seed)
    order = np.argsort(labels, kind="stable")
    w = len(X) >> exp
    hits = total = 0
    for t in range(40):
        s = int(rng.integers(0, len(X) - w + 1))
        lo, hi = labels[order[s]], labels[order[s + w - 1]]
        first, last = int(np.floor(lo + 0.5)), int(np.floor(hi + 0.5))
        outside = np.r_[0:max(first, 0), min(last + 1, CLUSTERS):CLUSTERS]
        q = near(means, int(rng.choice(outside)) if len(outside) else int(rng.integers(0, CLUSTERS)), rng)
        want = exact_top(X, labels, q, lo, hi)
        ids, _, used = query(g, q, 10, lo, hi, ef)
        assert len(ids) == 10 and np.all((labels[ids] >= lo) & (labels[ids] <= hi))
        hits += len(set(ids.tolist()) & set(want.tolist()))
        total += len(want)
    _ffi.lib().knn_graph_force_window_plan(g._handle, -1)
    return hits / total


@pytest.mark.parametrize("plan", [-1, POST])
@pytest.mark.parametrize("exp", [0, 1, 2])
def test_recall_floor_with_the_query_outside_the_window(adversarial, plan, exp):
    r = far_windows(*adversarial, plan, exp, 64, 100 + exp)
    assert r >= 0.95, f"recall@10 {r:.3f} at window fraction 2^-{exp} (plan {plan})"


@pytest.mark.parametrize("exp", [1, 2, 3])
def test_planner_sees_a_window_away_from_the_query(adversarial, exp):
    """At a small ef both beams lose recall on far windows (forced, 0.78-0.89 here); the planner's local
    selectivity check (no in-window rows around the query) sends such queries to the exact scan."""
    r = far_windows(*adversarial, -1, exp, 10, 200 + exp)
    assert r >= 0.95, f"recall@10 {r:.3f} at window fraction 2^-{exp}, ef 10"
