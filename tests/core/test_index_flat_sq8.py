"""The 8-bit flat index (quantization='sq8'): codes in memory, float rows in a file, results equal to the
float flat index's, on real data (scikit-learn's digits: 1,797 images of 64 pixels, as integers and
PCA-rotated to floats), through deletes, replaced rows and rows outside the trained ranges, on every
SIMD level."""

from __future__ import annotations

import numpy as np
import pytest

import knnsql


def digits(rotated: bool) -> np.ndarray:
    from sklearn.datasets import load_digits

    X = load_digits().data.astype(np.float64)
    if rotated:  # real-valued coordinates: the codes are no longer exact, the bound does the work
        X = X - X.mean(0)
        _, _, vt = np.linalg.svd(X, full_matrices=False)
        X = X @ vt.T / 3.0
    return np.ascontiguousarray(X, dtype=np.float32)


def pair(X, metric, tmp_path, labels=None):
    flat = knnsql.Index(X.shape[1], metric, "flat")
    sq8 = knnsql.Index(X.shape[1], metric, "flat", quantization="sq8", vectors_dir=str(tmp_path))
    ids = np.arange(len(X), dtype=np.int64)
    for ix in (flat, sq8):
        ix.add(X, ids, labels=labels) if labels is not None else ix.add(X, ids)
    return flat, sq8


def assert_same_single(flat, sq8, Q, k, **kw):
    for q in Q:
        a_ids, a_d = flat.search(q, k, **kw)
        b_ids, b_d = sq8.search(q, k, **kw)
        np.testing.assert_array_equal(a_ids, b_ids)
        np.testing.assert_array_equal(a_d, b_d)


@pytest.fixture(params=["best", "scalar"])
def simd(request, monkeypatch):
    if request.param == "scalar":
        monkeypatch.setenv("KNNSQL_SIMD", "scalar")
    return request.param


@pytest.mark.parametrize("rotated", [False, True])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_sq8_equals_the_float_flat_index(tmp_path, simd, rotated, metric, k):
    X = digits(rotated)
    flat, sq8 = pair(X, metric, tmp_path)
    assert_same_single(flat, sq8, X[::7], k)  # rows of the index as queries: ties and duplicates included
    # a batch answers each query as the single search does
    b_ids, b_d = sq8.search(X[:40], k)
    for i, q in enumerate(X[:40]):
        ids, d = sq8.search(q, k)
        np.testing.assert_array_equal(b_ids[i], np.ravel(ids))
        np.testing.assert_array_equal(b_d[i], np.ravel(d))


def test_sq8_matches_numpy_exact_search(tmp_path):
    X = digits(True)
    _, sq8 = pair(X, "l2", tmp_path)
    Q = X[:50] + np.float32(0.25)
    ids, dist = sq8.search(Q, 10)
    full = ((Q[:, None, :].astype(np.float64) - X[None].astype(np.float64)) ** 2).sum(-1)
    want = np.sort(full, 1)[:, :10]
    np.testing.assert_allclose(dist, want, rtol=1e-4, atol=1e-3)
    kth = want[:, -1:]
    assert (full[np.arange(50)[:, None], ids] <= kth * (1 + 1e-5) + 1e-3).all()  # every id is a true top-10 row


def test_sq8_window_search_equals_the_float_index(tmp_path):
    X = digits(True)
    labels = np.arange(len(X), dtype=np.float64)
    flat, sq8 = pair(X, "l2", tmp_path, labels=labels)
    for lo, hi in [(0, 1796), (100, 100), (500, 900), (1796, 5000)]:
        assert_same_single(flat, sq8, X[::50], 10, lo=lo, hi=hi)


def test_sq8_stays_exact_after_deletes_replacements_and_out_of_range_rows(tmp_path):
    X = digits(True)
    X = np.concatenate([X, X[::-1] * np.float32(0.9) + np.float32(0.1)])  # enough rows left for the code screen
    flat, sq8 = pair(X[:2000], "l2", tmp_path)
    far = X[2000:] * 3.0  # beyond the ranges the first batch trained: clamped codes, larger errors
    ids = np.arange(2000, len(X), dtype=np.int64)
    for ix in (flat, sq8):
        ix.add(far, ids)
        ix.delete(np.arange(0, len(X), 5, dtype=np.int64))  # the last rows move into the holes
        ix.add(X[:100] * -2.0, np.arange(1, 200, 2, dtype=np.int64))  # replaced in place
    assert len(flat) == len(sq8) and len(sq8) * X.shape[1] >= 100_000
    assert_same_single(flat, sq8, np.concatenate([X[::9], far[::9]]), 10)


def test_sq8_holds_a_fraction_of_the_heap_and_reports_its_file(tmp_path):
    X = digits(False)
    flat, sq8 = pair(X, "l2", tmp_path)
    assert flat.disk_bytes == 0
    assert sq8.disk_bytes >= X.nbytes
    assert sq8.memory_bytes * 2.5 < flat.memory_bytes
    assert list(tmp_path.iterdir()) == []  # the file is unlinked: it goes away with the index


@pytest.mark.parametrize("kwargs, message", [
    (dict(metric="ip", quantization="sq8"), "serves metric 'l2' or 'cosine', not 'ip'"),
    (dict(quantization="pq"), "quantization 'pq' is not known for a flat index"),
    (dict(kind="graph", quantization="pq"), "unknown quantization 'pq'"),
    (dict(quantization="sq8", vectors_dir="/proc/no/such/dir"), "cannot create the vectors directory"),
])
def test_sq8_errors_name_the_fix(kwargs, message):
    kind = kwargs.pop("kind", "flat")
    metric = kwargs.pop("metric", "l2")
    with pytest.raises((ValueError, knnsql.KnnError, Exception), match=message):
        ix = knnsql.Index(4, metric, kind, **kwargs)
        ix.add(np.ones((3, 4), np.float32), np.arange(3, dtype=np.int64))


def test_sq8_refuses_zero_vectors_under_cosine_and_adds_nothing(tmp_path):
    ix = knnsql.Index(4, "cosine", "flat", quantization="sq8", vectors_dir=str(tmp_path))
    X = np.ones((3, 4), np.float32)
    X[1] = 0
    with pytest.raises(Exception, match="is the zero vector"):
        ix.add(X, np.arange(3, dtype=np.int64))
    assert len(ix) == 0


def test_the_querys_own_rounding_error_is_part_of_the_bound(tmp_path):
    """Rows on an integer grid are coded exactly (error 0); a query of half-integers is not: 3.5 rounds to
    4 (half to even) in every coordinate. The nearest row x0 (all 3s, distance 4) then has a code distance
    of 8, while y (4s, one 5; distance 4.24) has a code distance of 1 and an upper bound of 1 + 4 = 5. A
    bound without the query's error (4) would rule x0 out and answer y."""
    rng = np.random.default_rng(3)
    d = 64
    far = rng.integers(10, 17, size=(2000, d)).astype(np.float32)
    x0 = np.full(d, 3, np.float32)
    y = np.full(d, 4, np.float32)
    y[0] = 5
    # x0 first, y far down: the float pass scores rows in groups of 8, so they must not share one
    X = np.vstack([x0, far[:1000], y, far[1000:], np.zeros(d, np.float32), np.full(d, 16, np.float32)])
    flat, sq8 = pair(X, "l2", tmp_path)
    q = np.full(d, 3.5, np.float32)
    for k in (1, 2):
        np.testing.assert_array_equal(sq8.search(q, k)[0], flat.search(q, k)[0])
    assert int(np.ravel(sq8.search(q, 1)[0])[0]) == 0  # x0
