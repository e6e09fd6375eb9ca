"""knnsql.Index(kind="flat"): exact results equal numpy's on every metric and kernel path."""

import numpy as np
import pytest

import knnsql
from conftest import assert_exact, available_isas

METRICS = ["l2", "cosine", "ip"]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dim", [1, 3, 16, 17, 50, 128, 300])
def test_single_and_batch_queries_match_numpy(isa, metric, dim, rng):
    X = rng.standard_normal((3000, dim)).astype(np.float32)
    Q = rng.standard_normal((37, dim)).astype(np.float32)
    ix = knnsql.Index(dim, metric)
    assert ix.simd == isa
    ix.add(X)
    for threads in (1, 2):
        ids, d = ix.search(Q[:1], 10, threads=threads)  # one query: streaming kernel
        assert_exact(ids, d, X, Q[:1], 10, metric)
        ids, d = ix.search(Q, 10, threads=threads)  # many queries: packed-panel kernel
        assert_exact(ids, d, X, Q, 10, metric)


def test_kernel_paths_return_the_same_neighbours(rng):
    """Every SIMD level returns the same neighbours on well-separated data."""
    import os

    X = rng.standard_normal((5000, 64)).astype(np.float32)
    Q = rng.standard_normal((20, 64)).astype(np.float32)
    results = {}
    for isa in available_isas():
        os.environ["KNNSQL_SIMD"] = isa
        try:
            ix = knnsql.Index(64, "l2")
            ix.add(X)
            results[isa] = ix.search(Q, 5)
        finally:
            del os.environ["KNNSQL_SIMD"]
    base_ids, base_d = results["scalar"]
    for isa, (ids, d) in results.items():
        np.testing.assert_array_equal(ids, base_ids, err_msg=isa)
        np.testing.assert_allclose(d, base_d, rtol=1e-5, err_msg=isa)


def test_near_duplicates_have_accurate_l2(rng):
    """The many-query path must not report cancellation noise for near-identical vectors."""
    X = (rng.standard_normal((2000, 128)) * 100).astype(np.float32)
    Q = X[:16] + np.float32(1e-3)
    ix = knnsql.Index(128, "l2")
    ix.add(X)
    ids, d = ix.search(Q, 3)
    np.testing.assert_array_equal(ids[:, 0], np.arange(16))
    expected = ((Q.astype(np.float64) - X[:16]) ** 2).sum(1)
    np.testing.assert_allclose(d[:, 0], expected, rtol=1e-3)


def test_k_larger_than_rows_returns_all(rng):
    X = rng.standard_normal((7, 4)).astype(np.float32)
    ix = knnsql.Index(4)
    ix.add(X, ids=np.arange(100, 107))
    ids, d = ix.search(X[:2], 50)
    assert ids.shape == (2, 7)
    assert sorted(ids[0]) == list(range(100, 107))
    assert_exact(ids, d, X, X[:2], 50, "l2", row_ids=np.arange(100, 107))


def test_empty_index_returns_no_columns():
    ix = knnsql.Index(4)
    ids, d = ix.search(np.ones(4, np.float32), 3)
    assert ids.shape == (1, 0) and d.shape == (1, 0)


def test_readding_an_id_replaces_it(rng):
    ix = knnsql.Index(2)
    ix.add(np.array([[0, 0], [5, 5]], np.float32), ids=[1, 2])
    ix.add(np.array([[9, 9]], np.float32), ids=[1])
    assert len(ix) == 2
    ids, d = ix.search(np.array([9, 9], np.float32), 1)
    assert ids[0, 0] == 1 and d[0, 0] == 0
    # within one call the last occurrence wins
    ix.add(np.array([[1, 1], [3, 3]], np.float32), ids=[7, 7])
    ids, d = ix.search(np.array([3, 3], np.float32), 1)
    assert ids[0, 0] == 7 and d[0, 0] == 0
    assert len(ix) == 3


def test_ties_break_by_id():
    ix = knnsql.Index(2)
    X = np.array([[1, 0]] * 5, np.float32)
    ix.add(X, ids=[40, 10, 30, 20, 50])
    ids, _ = ix.search(np.array([0, 0], np.float32), 3, threads=1)
    assert ids.tolist() == [[10, 20, 30]]
    ids, _ = ix.search(np.tile(np.array([0, 0], np.float32), (10, 1)), 3)
    assert ids.tolist() == [[10, 20, 30]] * 10


def test_cosine_zero_data_vector_has_distance_one():
    ix = knnsql.Index(2, "cosine")
    ix.add(np.array([[0, 0], [1, 0], [-1, 0]], np.float32))
    ids, d = ix.search(np.array([1, 0], np.float32), 3)
    assert ids.tolist() == [[1, 0, 2]]
    np.testing.assert_allclose(d, [[0, 1, 2]], atol=1e-6)


def test_metric_alias_and_repr():
    ix = knnsql.Index(3, "L2SQ")
    assert ix.metric == "l2"
    assert "dim=3" in repr(ix)
