"""Allow-list search (Index.search_among, core filter/filter_among.c): exact plans equal numpy, beams
keep their recall floor, and k rows come back whenever k live rows match, adversarial filters included."""
import numpy as np
import pytest

import knnsql

from conftest import reference_distances


def exact_among(X, ids, Q, allow, k, metric):
    keep = np.isin(ids, allow)
    D = reference_distances(X[keep], Q, metric)
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    return ids[keep][order], np.take_along_axis(D, order, axis=1)


@pytest.fixture(scope="module")
def clustered():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((20, 24)) * 6
    label = rng.integers(0, 20, 6000)
    X = (centers[label] + rng.standard_normal((6000, 24))).astype(np.float32)
    return X, label, rng


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_small_allow_lists_are_exact(clustered, metric):
    X, label, rng = clustered
    ids = np.arange(len(X)) * 3 + 11  # ids that are not node numbers: the id map path
    ix = knnsql.Index(24, metric=metric, kind="graph")
    ix.add(X, ids=ids)
    Q = rng.standard_normal((12, 24)).astype(np.float32) * 6
    for size in (1, 7, 60, 400):
        allow = rng.choice(ids, size, replace=False)
        got_ids, got_d = ix.search_among(Q, allow, k=10)
        want_ids, want_d = exact_among(X, ids, Q, allow, min(10, size), metric)
        kk = min(10, size)
        np.testing.assert_array_equal(got_ids[:, :kk], want_ids)
        np.testing.assert_allclose(got_d[:, :kk], want_d, rtol=1e-4, atol=1e-4)
        assert (got_ids[:, kk:] == -1).all() and np.isinf(got_d[:, kk:]).all()
        assert set(ix.last_among_plans) <= {0, 2, 3}


def test_wide_allow_lists_keep_recall(clustered):
    X, label, rng = clustered
    ix = knnsql.Index(24, kind="graph")
    ix.add(X)
    Q = X[rng.choice(len(X), 50, replace=False)] + 0.1
    allow = np.flatnonzero(label != 0)  # most rows: the postfilter beam
    got, _ = ix.search_among(Q, allow, k=10)
    want, _ = exact_among(X, np.arange(len(X)), Q, allow, 10, "l2")
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall >= 0.95
    assert (ix.last_among_plans == 3).mean() > 0.5
    assert np.isin(got, allow).all()


def test_adversarial_filter_far_from_the_query_still_gives_k_rows(clustered):
    X, label, rng = clustered
    ix = knnsql.Index(24, kind="graph")
    ix.add(X)
    far = np.flatnonzero(label == 3)
    # queries sitting inside other clusters: every allowed row is far away
    Q = X[np.flatnonzero(label != 3)[:20]]
    got, d = ix.search_among(Q, far, k=10)
    want, wd = exact_among(X, np.arange(len(X)), Q, far, 10, "l2")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(d, wd, rtol=1e-4, atol=1e-4)


def test_every_row_allowed_is_the_plain_search(clustered):
    X, label, rng = clustered
    ix = knnsql.Index(24, kind="graph")
    ix.add(X)
    Q = X[:5]
    a = ix.search_among(Q, np.arange(len(X)), k=10)
    b = ix.search(Q, k=10)
    np.testing.assert_array_equal(a[0], b[0])
    assert (ix.last_among_plans == 5).all()


def test_deleted_unknown_and_repeated_ids(clustered):
    X, label, rng = clustered
    ix = knnsql.Index(24, kind="graph")
    ix.add(X)
    allow = np.array([5, 5, 6, 7, 10**9, -4, 8])
    ix.delete([6])
    got, d = ix.search_among(X[5], allow, k=10)
    assert sorted(got[0][got[0] >= 0].tolist()) == [5, 7, 8]
    assert got[0][0] == 5 and d[0][0] == pytest.approx(0, abs=1e-5)
    none, _ = ix.search_among(X[5], [6, 10**9], k=3)
    assert (none == -1).all()


def test_errors():
    ix = knnsql.Index(4, kind="flat")
    with pytest.raises(ValueError, match="kind='graph'"):
        ix.search_among(np.ones(4), [1], k=1)
    g = knnsql.Index(4, kind="graph")
    g.add(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="k"):
        g.search_among(np.ones(4), [1], k=0)
    with pytest.raises(ValueError):
        g.search_among(np.ones(3), [1], k=1)


def test_bad_ids_and_queries_are_errors(clustered):
    X, label, rng = clustered
    g = knnsql.Index(24, metric="cosine", kind="graph")
    g.add(X[:200])
    with pytest.raises(ValueError, match="ids must be integers"):
        g.search_among(X[0], [1.5, 2.0], k=3)
    with pytest.raises(ValueError, match="ids must be integers"):
        g.search_among(X[0], ["1"], k=3)
    bad = X[0].copy()
    bad[3] = np.nan
    with pytest.raises(knnsql.KnnError, match="NaN"):
        g.search_among(bad, [1, 2], k=3)
    with pytest.raises(knnsql.KnnError, match="zero vector"):
        g.search_among(np.zeros(24, np.float32), [1, 2], k=3)
    ids, _ = g.search_among(X[0], np.array([], dtype=np.int64), k=3)  # nothing allowed: no rows
    assert (ids == -1).all()
