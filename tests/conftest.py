import os

import duckdb
import numpy as np
import pytest

import knnsql

ISA_ORDER = ["scalar", "avx2", "avx512"]


def available_isas():
    best = knnsql.debug()["simd_best"]
    return ISA_ORDER[: ISA_ORDER.index(best) + 1]


@pytest.fixture(params=available_isas())
def isa(request, monkeypatch):
    """Runs a test once per SIMD level this CPU supports (KNNSQL_SIMD caps the level)."""
    monkeypatch.setenv("KNNSQL_SIMD", request.param)
    assert knnsql.debug()["simd"] == request.param
    return request.param


@pytest.fixture
def db():
    with knnsql.connect() as database:
        yield database


@pytest.fixture
def sql_error(db):
    """fn(*statements): runs the statements on `db` (each fetched); the last one must fail with a
    duckdb.Error, whose message is returned."""
    def run(*statements):
        *setup, failing = statements
        for sql in setup:
            db.execute(sql).fetchall()
        with pytest.raises(duckdb.Error) as err:
            db.execute(failing).fetchall()
        return str(err.value)
    return run


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def reference_distances(X, Q, metric):
    """float64 distances, shape (nq, n), as the metric defines them."""
    X = np.asarray(X, dtype=np.float64)
    Q = np.asarray(Q, dtype=np.float64)
    dots = Q @ X.T
    if metric == "l2":
        d = (Q * Q).sum(1)[:, None] + (X * X).sum(1)[None, :] - 2 * dots
        # exact for small sets: recompute directly to avoid cancellation in the reference itself
        if X.shape[0] * Q.shape[0] * X.shape[1] <= 2e7:
            d = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1)
        return np.maximum(d, 0)
    if metric == "cosine":
        qn = np.linalg.norm(Q, axis=1)[:, None]
        xn = np.linalg.norm(X, axis=1)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            d = 1 - dots / (qn * xn)
        d[:, xn[0] == 0] = 1.0
        return np.maximum(d, 0)
    if metric == "ip":
        return -dots
    raise ValueError(metric)


def assert_exact(ids, dists, X, Q, k, metric, row_ids=None, rtol=1e-5, atol=1e-5):
    """ids/dists are a correct exact kNN answer: right length, right distances, nothing nearer missed.

    Ties at the k-th distance may be resolved either way, so ids are checked through their true
    distances rather than by position.
    """
    ref = reference_distances(X, Q, metric)
    n = ref.shape[1]
    row_ids = np.arange(n) if row_ids is None else np.asarray(row_ids)
    pos_of = {int(r): i for i, r in enumerate(row_ids)}
    kk = min(k, n)
    assert ids.shape == (len(Q), kk), (ids.shape, kk)
    for qi in range(len(Q)):
        order = np.sort(ref[qi])
        kth = order[kk - 1]
        tol = rtol * abs(kth) + atol
        got = [pos_of[int(i)] for i in ids[qi]]
        assert len(set(got)) == kk, "duplicate ids in one result"
        true_d = ref[qi, got]
        np.testing.assert_allclose(dists[qi], true_d, rtol=rtol, atol=atol)
        assert np.all(true_d <= kth + tol), f"query {qi}: returned a row farther than the k-th nearest"
        assert np.all(np.diff(dists[qi]) >= 0), "distances not ascending"
        # Every row strictly nearer than the k-th distance (beyond tolerance) must be present.
        must = set(np.nonzero(ref[qi] < kth - tol)[0].tolist())
        assert must <= set(got), f"query {qi}: missed rows {sorted(must - set(got))[:5]}"
