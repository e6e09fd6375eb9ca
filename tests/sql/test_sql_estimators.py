"""kNN estimators: knn_entropy, knn_kde, knn_prototype and knn_interpolate against closed forms (entropy of
Gaussians and uniforms), independent implementations (scipy, scikit-learn, numpy), and every documented
bad input."""

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import cKDTree
from scipy.special import digamma, gammaln, logsumexp
from sklearn.neighbors import KernelDensity, KNeighborsRegressor, NearestCentroid

import knnsql
from knnsql import analytics as A


def load(db, table, X, **cols):
    db.con.register("_t", knnsql.vectors_table(np.asarray(X, np.float32), columns=cols or None))
    db.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _t")
    db.con.unregister("_t")


def kl_reference(X, k):
    """Kozachenko-Leonenko (Kraskov's form) and MEE with scipy's kd-tree, digamma and gamma."""
    X = np.asarray(X, np.float64)
    n, d = X.shape
    r = cKDTree(X).query(X, k + 1)[0][:, k]
    log_vd = d / 2 * np.log(np.pi) - gammaln(d / 2 + 1)
    return digamma(n) - digamma(k) + log_vd + d * np.mean(np.log(r)), np.log(np.mean(r ** 2) / d)


# ---- entropy ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("d, k, tol", [(1, 3, 0.03), (2, 3, 0.05), (5, 5, 0.12), (5, 1, 0.15)])
def test_entropy_of_gaussians(db, rng, d, k, tol):
    sigma = 2.0
    X = (rng.normal(size=(20000, d)) * sigma).astype(np.float32)
    load(db, "g", X)
    row = db.execute(f"SELECT knn_entropy(emb, {k}) FROM g").fetchone()[0]
    truth = 0.5 * d * np.log(2 * np.pi * np.e * sigma ** 2)
    assert row["entropy"] == pytest.approx(truth, abs=tol)
    ref, mee = kl_reference(X, k)
    assert row["entropy"] == pytest.approx(ref, abs=1e-6) and row["mee"] == pytest.approx(mee, abs=1e-6)
    assert row["n"] == 20000
    if d == 1:  # scipy's 1-D estimators (Vasicek's by default) agree within their own spread
        assert row["entropy"] == pytest.approx(stats.differential_entropy(X[:, 0].astype(np.float64)), abs=0.03)


@pytest.mark.parametrize("d, tol", [(1, 0.02), (2, 0.05)])
def test_entropy_of_uniforms(rng, d, tol):
    X = rng.random(size=(20000, d)).astype(np.float32) * 3.0  # [0, 3]^d: d log 3 nats
    assert A.entropy(X, 3)["entropy"] == pytest.approx(d * np.log(3.0), abs=tol)
    if d == 1:
        assert A.entropy(X, 3)["entropy"] == pytest.approx(stats.differential_entropy(X[:, 0].astype(np.float64)),
                                                           abs=0.02)


def test_mee_falls_under_mode_collapse(rng):
    spread = rng.normal(size=(2000, 16)).astype(np.float32)
    collapsed = (rng.normal(size=(2000, 16)) * 0.05 + rng.normal(size=(4, 16)).repeat(500, 0)).astype(np.float32)
    a, b = A.entropy(spread, 1), A.entropy(collapsed, 1)
    assert b["mee"] < a["mee"] - 3 and b["entropy"] < a["entropy"] - 20


def test_entropy_per_group_and_sql_wrapper(db, rng):
    X = np.concatenate([rng.normal(size=(3000, 3)), rng.normal(size=(3000, 3)) * 3]).astype(np.float32)
    load(db, "two", X, g=np.repeat([0, 1], 3000))
    got = A.sql_entropy(db, "two", by="g")
    assert list(got.g) == [0, 1]
    np.testing.assert_allclose(got.entropy, [kl_reference(X[:3000], 3)[0], kl_reference(X[3000:], 3)[0]], atol=1e-6)
    assert got.entropy[1] - got.entropy[0] == pytest.approx(3 * np.log(3), abs=0.1)
    assert A.sql_entropy(db, "two", k=2)["n"] == 6000


def test_entropy_duplicates_and_all_equal_are_errors(db, rng):
    X = rng.normal(size=(100, 4)).astype(np.float32)
    X[10:13] = X[10]  # three copies: fine for k = 3, not for k = 2
    load(db, "dup", X)
    assert np.isfinite(db.execute("SELECT knn_entropy(emb, 3) FROM dup").fetchone()[0]["entropy"])
    with pytest.raises(duckdb.Error, match=r"knn_entropy: 3 of the 100 rows have their k-th nearest neighbour at "
                                           r"distance 0 \(k = 2 or more copies of one vector\)"):
        db.execute("SELECT knn_entropy(emb, 2) FROM dup").fetchall()
    load(db, "same", np.ones((20, 3)))
    with pytest.raises(duckdb.Error, match="20 of the 20 rows .* raise k above the largest number of copies, or "
                                           r"remove duplicates \(SELECT DISTINCT\)"):
        db.execute("SELECT knn_entropy(emb, 5) FROM same").fetchall()


# ---- kernel density ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("h", [0.2, 0.7, 2.0])
def test_exact_kde_equals_scikit_learn_every_isa(db, rng, isa, h):
    X = (rng.normal(size=(1500, 3)) + [5, -2, 0]).astype(np.float32)
    load(db, "k3", X)
    got = db.execute(f"SELECT r.log_density, r.trunc_err FROM (SELECT unnest(knn_kde(id, emb, 100000, "
                     f"'bandwidth={h}')) r FROM k3) ORDER BY r.id").fetchnumpy()
    ref = KernelDensity(bandwidth=h).fit(X.astype(np.float64)).score_samples(X.astype(np.float64))
    np.testing.assert_allclose(got["log_density"], ref, rtol=0, atol=1e-4)
    assert (got["trunc_err"] == 0).all()


def test_kde_at_query_rows(rng):
    X = rng.normal(size=(2000, 2)).astype(np.float32)
    Q = (rng.normal(size=(300, 2)) * 2).astype(np.float32)
    got = A.kde(X, Q, k=5000, bandwidth=0.3)
    ref = KernelDensity(bandwidth=0.3).fit(X.astype(np.float64)).score_samples(Q.astype(np.float64))
    np.testing.assert_allclose(got.log_density, ref, atol=1e-4)
    assert got.bandwidth == 0.3


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_kde_bandwidth_rules_equal_gaussian_kde_in_one_dimension(rng, rule):
    x = rng.normal(size=3000).astype(np.float32) * 1.7
    got = A.kde(x[:, None], k=10 ** 6, bandwidth=rule)
    ref = stats.gaussian_kde(x.astype(np.float64), bw_method=rule)
    assert got.bandwidth == pytest.approx(np.sqrt(ref.covariance[0, 0]), rel=1e-9)
    np.testing.assert_allclose(got.log_density, ref.logpdf(x.astype(np.float64)), atol=1e-4)


def test_truncated_kde_is_bounded_by_its_stated_error(rng):
    # clusters in 32 dimensions, bandwidth near the nearest-neighbour scale: the extreme-value regime
    C = rng.normal(size=(20, 32)) * 4
    X = (C.repeat(150, 0) + rng.normal(size=(3000, 32))).astype(np.float32)
    for h, k in ((0.6, 10), (1.5, 50), (3.0, 200)):
        full = A.kde(X, k=10 ** 6, bandwidth=h).log_density
        cut = A.kde(X, k=k, bandwidth=h)
        gap = full - cut.log_density
        assert (gap >= -1e-4).all()                        # truncation only drops mass
        assert (gap <= cut.trunc_err + 1e-4).all()         # ... and never more than the bound
        assert ((cut.ess >= 1 - 1e-9) & (cut.ess <= k + 1e-9)).all()
    small = A.kde(X, k=10, bandwidth=0.6)
    assert np.median(small.ess) < 3 and small.trunc_err.max() < 1e-3  # a few neighbours carry the sum


def test_kde_edge_cases(db, rng):
    load(db, "flat", np.ones((30, 4)))
    got = db.execute("SELECT r.log_density FROM (SELECT unnest(knn_kde(id, emb, 30, 'bandwidth=0.5')) r FROM flat)"
                     ).fetchnumpy()["log_density"]
    np.testing.assert_allclose(got, -4 * np.log(0.5) - 2 * np.log(2 * np.pi), atol=1e-9)  # all rows at distance 0
    # k = 5 of 30 coinciding rows: the sum is 6x too small, exactly what the bound allows
    got = db.execute("SELECT r.log_density, r.trunc_err FROM (SELECT unnest(knn_kde(id, emb, 5, 'bandwidth=0.5')) r "
                     "FROM flat)").fetchnumpy()
    np.testing.assert_allclose(got["log_density"], -4 * np.log(0.5) - 2 * np.log(2 * np.pi) - np.log(6), atol=1e-9)
    np.testing.assert_allclose(got["trunc_err"], np.log(6), atol=1e-12)
    with pytest.raises(duckdb.Error, match="every reference row is the same vector, so the scott bandwidth is 0; give "
                                           "bandwidth=<number>"):
        db.execute("SELECT knn_kde(id, emb, 5) FROM flat").fetchall()
    X = rng.normal(size=(50, 3)).astype(np.float32)
    load(db, "kq", X, q=np.arange(50) >= 40)
    got = A.sql_kde(db, "kq", k=100, query="q", bandwidth=0.8)
    assert list(got.id) == list(range(40, 50))
    ref = KernelDensity(bandwidth=0.8).fit(X[:40].astype(np.float64)).score_samples(X[40:].astype(np.float64))
    np.testing.assert_allclose(got.log_density, ref, atol=1e-4)


# ---- prototypes --------------------------------------------------------------------------------------------

@pytest.fixture
def labelled(db, rng):
    C = rng.normal(size=(5, 8)) * 2
    y = rng.integers(0, 5, size=1200)
    X = (C[y] + rng.normal(size=(1200, 8)) * 1.5).astype(np.float32)
    test = rng.random(1200) < 0.25
    load(db, "lab", X, y=pd.array(np.where(test, None, y), dtype="Int64"),
         name=pd.array(np.where(test, None, np.array(["ant", "bee", "cat", "dog", "eel"])[y]), dtype=object))
    return X, y, test


def test_prototype_equals_nearest_centroid_and_the_softmax(db, labelled):
    X, y, test = labelled
    got = db.execute("SELECT r.* FROM (SELECT unnest(knn_prototype(id, emb, y)) r FROM lab) ORDER BY r.id").df()
    assert (got.id.to_numpy() == np.flatnonzero(test)).all()
    nc = NearestCentroid().fit(X[~test], y[~test])
    assert (got.label.to_numpy() == nc.predict(X[test])).all()
    means = np.stack([X[~test][y[~test] == c].astype(np.float64).mean(0) for c in range(5)])
    d2 = ((X[test][:, None, :].astype(np.float64) - means[None]) ** 2).sum(-1)
    np.testing.assert_allclose(got.distance, d2.min(1), rtol=1e-5)
    np.testing.assert_allclose(got.prob, np.exp(-d2.min(1) - logsumexp(-d2, axis=1)), rtol=1e-5, atol=1e-9)
    t = db.execute("SELECT r.prob FROM (SELECT unnest(knn_prototype(id, emb, y, 'temperature=10')) r FROM lab) "
                   "ORDER BY r.id").fetchnumpy()["prob"]
    np.testing.assert_allclose(t, np.exp(-d2.min(1) / 10 - logsumexp(-d2 / 10, axis=1)), rtol=1e-5)


def test_prototype_cosine_and_text_labels(db, labelled):
    X, y, test = labelled
    means = np.stack([X[~test][y[~test] == c].astype(np.float64).mean(0) for c in range(5)])
    mn = means / np.linalg.norm(means, axis=1, keepdims=True)
    Qn = X[test] / np.linalg.norm(X[test], axis=1, keepdims=True)
    dist = 1 - Qn @ mn.T
    got = A.prototype_predict(X[~test], np.array(["ant", "bee", "cat", "dog", "eel"])[y[~test]], X[test],
                              metric="cosine")
    assert (got.labels == np.array(["ant", "bee", "cat", "dog", "eel"])[dist.argmin(1)]).all()
    np.testing.assert_allclose(got.distance, dist.min(1), atol=1e-6)
    by_name = A.sql_prototype(db, "lab", label="name")
    by_code = A.sql_prototype(db, "lab", label="y")
    assert (by_name.label.to_numpy() == np.array(["ant", "bee", "cat", "dog", "eel"])[by_code.label.to_numpy()]).all()


def test_prototype_ties_go_to_the_smaller_label(db):
    load(db, "tie", [[0, 1], [0, -1], [0, 0], [5, 5]], y=pd.array([7, 3, None, None], dtype="Int64"))
    got = db.execute("SELECT r.id, r.label, r.prob FROM (SELECT unnest(knn_prototype(id, emb, y)) r FROM tie) "
                     "ORDER BY r.id").fetchall()
    assert got[0] == (2, 3, 0.5) and got[1][1] == 7


# ---- interpolation -----------------------------------------------------------------------------------------

@pytest.fixture
def valued(db, rng):
    X = rng.normal(size=(1500, 5)).astype(np.float32)
    v = np.sin(X[:, 0] * 2) + X[:, 1] ** 2
    test = rng.random(1500) < 0.2
    load(db, "val", X, v=pd.array(np.where(test, None, v), dtype="Float64"))
    return X, v, test


def idw(X, v, Q, k, power, metric="l2"):
    if metric == "cosine":
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        D = 1 - (Q / np.linalg.norm(Q, axis=1, keepdims=True)) @ Xn.T
    else:
        D = np.sqrt(((Q[:, None, :].astype(np.float64) - X[None].astype(np.float64)) ** 2).sum(-1))
    nb = np.argsort(D, axis=1, kind="stable")[:, :k]
    dk = np.take_along_axis(D, nb, 1)
    w = dk ** -power
    return (w * v[nb]).sum(1) / w.sum(1), dk[:, -1]


@pytest.mark.parametrize("power", [0, 1, 2, 3.5])
def test_interpolate_is_inverse_distance_weighting(db, valued, power):
    X, v, test = valued
    got = db.execute(f"SELECT r.* FROM (SELECT unnest(knn_interpolate(id, emb, v, 6, 'power={power}')) r FROM val) "
                     "ORDER BY r.id").df()
    want, reach = idw(X[~test], v[~test], X[test], 6, power)
    np.testing.assert_allclose(got.value, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.reach, reach, rtol=1e-5)
    if power in (0, 1):
        ref = KNeighborsRegressor(6, weights="distance" if power else "uniform").fit(X[~test], v[~test])
        np.testing.assert_allclose(got.value, ref.predict(X[test]), rtol=1e-5, atol=1e-6)


def test_interpolate_cosine_exact_matches_and_python(db, valued):
    X, v, test = valued
    got = A.sql_interpolate(db, "val", value="v", k=4, metric="cosine")
    np.testing.assert_allclose(got.value, idw(X[~test], v[~test], X[test], 4, 2, "cosine")[0], rtol=1e-4, atol=1e-5)
    vals, reach = A.interpolate(X[~test], v[~test], np.concatenate([X[~test][:3], X[test][:2]]), k=5)
    assert (vals[:3] == v[~test][:3]).all() and (reach[:3] > 0).all()  # an exact match returns its own value
    np.testing.assert_allclose(vals[3:], idw(X[~test], v[~test], X[test][:2], 5, 2)[0], rtol=1e-5, atol=1e-6)


# ---- bad inputs --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sql, message", [
    ("SELECT knn_entropy(emb, 500) FROM g5", "knn_entropy: k = 500 needs at least k + 1 = 501 rows"),
    ("SELECT knn_entropy(emb, 0) FROM g5", "knn_entropy: k must be >= 1, got 0"),
    ("SELECT knn_entropy(emb, NULL) FROM g5", "k must not be NULL"),
    ("SELECT knn_entropy([1, 'nan'::FLOAT]::FLOAT[2], 3) FROM g5", "NaN or Inf"),
    ("SELECT knn_kde(id, emb, 5, 'bandwidth=0') FROM g5", "bandwidth must be a positive number, 'scott' or 'silverman'"),
    ("SELECT knn_kde(id, emb, 5, 'bandwidth=wide') FROM g5", "bandwidth must be a positive number"),
    ("SELECT knn_kde(id, emb, 5, 'metric=cosine') FROM g5", "knn_kde: unknown option 'metric'; accepted keys: bandwidth"),
    ("SELECT knn_kde(id, emb, true, 5) FROM g5", "knn_kde: no reference rows"),
    ("SELECT knn_kde(id, emb, 5) FROM g5 WHERE id = 1", "the scott bandwidth needs at least 2 reference rows"),
    ("SELECT knn_prototype(id, emb, NULL::BIGINT) FROM g5", "knn_prototype: no row has a label"),
    ("SELECT knn_prototype(id, emb, (id % 2)::BIGINT, 'temperature=0') FROM g5", "option 'temperature' must be a number"),
    ("SELECT knn_prototype(id, CASE WHEN id < 3 THEN [0,0,0,0,0]::FLOAT[] ELSE emb::FLOAT[] END, "
     "CASE WHEN id < 3 THEN 9 WHEN id < 20 THEN NULL ELSE id % 2 END, 'metric=cosine') FROM g5",
     "the mean of class code 2 is the zero vector, which has no direction for metric=cosine"),
    ("SELECT knn_interpolate(id, emb, CASE WHEN id < 4 THEN id END::DOUBLE, 5) FROM g5",
     "knn_interpolate: k = 5 is larger than the 4 rows with a value"),
    ("SELECT knn_interpolate(id, emb, NULL::DOUBLE, 3) FROM g5", "knn_interpolate: no row has a value"),
    ("SELECT knn_interpolate(id, emb, id::DOUBLE, 3, 'power=-1') FROM g5", "option 'power' must be a number in [0,"),
    ("SELECT knn_interpolate(id, emb, CASE WHEN id > 5 THEN id END::DOUBLE, 3, 'metric=ip') FROM g5",
     "metric=ip gives negative distances"),
    ("SELECT knn_interpolate(id, emb, 'nan'::DOUBLE, 3) FROM g5", "is NaN or Inf; use NULL for a missing value"),
])
def test_errors(db, rng, sql, message):
    load(db, "g5", rng.normal(size=(200, 5)))
    with pytest.raises(duckdb.Error) as err:
        db.execute(sql).fetchall()
    assert message in str(err.value)


def test_nulls_skipped_and_empty_groups_null(db, rng):
    X = rng.normal(size=(200, 5)).astype(np.float32)
    load(db, "g5", X)
    a = db.execute("SELECT knn_entropy(CASE WHEN id < 20 THEN NULL ELSE emb::FLOAT[] END, 3) FROM g5").fetchone()[0]
    b = db.execute("SELECT knn_entropy(emb, 3) FROM g5 WHERE id >= 20").fetchone()[0]
    assert a == b and a["n"] == 180
    for sql in ("knn_entropy(emb, 3)", "knn_kde(id, emb, 3)", "knn_prototype(id, emb, id % 2)",
                "knn_interpolate(id, emb, id::DOUBLE, 3)"):
        assert db.execute(f"SELECT {sql} FROM g5 WHERE false").fetchone()[0] is None
    # a query row with nothing to predict: empty lists
    assert db.execute("SELECT len(knn_prototype(id, emb, id % 2)) FROM g5").fetchone()[0] == 0


def test_python_errors(rng):
    X = rng.normal(size=(50, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="unknown bandwidth rule 'wide'"):
        A.kde(X, bandwidth="wide")
    with pytest.raises(ValueError, match="bandwidth must be a positive number"):
        A.kde(X, bandwidth=-1)
    with pytest.raises(ValueError, match="k = 60 is larger than the 50 rows"):
        A.interpolate(X, X[:, 0], X, k=60)
    with pytest.raises(ValueError, match="y has NaN or Inf"):
        A.interpolate(X, np.where(np.arange(50) == 3, np.nan, 1.0), X)
    with pytest.raises(ValueError, match="one label per row"):
        A.prototype_predict(X, np.arange(3), X)
    with pytest.raises(duckdb.Error, match="k = 50 needs at least k \\+ 1 = 51 rows"):
        A.entropy(X, 50)
