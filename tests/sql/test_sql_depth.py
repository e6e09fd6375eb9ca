"""Statistical (TTE) depth: knn_depth, knn_depth_test and method 'depth' of the samplers, against the
paper's O(n^2 d) definition (tte_depth computes it with scipy's cdist), scipy's rank tests on the same
depths, and every documented bad input."""

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import cdist

import knnsql
from knnsql import analytics as A
from knnsql import sampling as S


def definition(X, F=None, metric="cosine"):
    """TTE depth by the definition: 2 - mean distance to F (leave-one-out when F is X); L2 depth for l2."""
    X = np.asarray(X, np.float64)
    same = F is None
    F = X if same else np.asarray(F, np.float64)
    if metric == "l2":
        D = cdist(X, F)
    else:
        D = cdist(X, F, "cosine")
        if metric == "chord":
            D = np.sqrt(np.clip(2 * D, 0, None))
    if same:
        np.fill_diagonal(D, 0.0)
        mean = D.sum(1) / (len(F) - 1)
    else:
        mean = D.mean(1)
    return 1 / (1 + mean) if metric == "l2" else 2 - mean


def load(db, name, X, **cols):
    t = knnsql.vectors_table(np.asarray(X, np.float32), columns=cols or None)
    db.con.register("_t", t)
    db.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _t")
    db.con.unregister("_t")


def depths(db, sql):
    """Per-row depths of 'knn_depth(...) FROM rel', in id order."""
    agg, rel = sql.rsplit(" FROM ", 1)
    return db.execute(f"SELECT r.depth FROM (SELECT unnest({agg}) AS r FROM {rel}) ORDER BY r.id").fetchnumpy()["depth"]


@pytest.fixture
def data(db, rng):
    X = (rng.normal(size=(400, 12)) + rng.normal(size=12) * 0.5).astype(np.float32)
    g = np.arange(400) % 4
    load(db, "t", X, g=g, is_ref=g != 0)
    return X, g


def test_cosine_depth_is_the_definition_in_o_nd(db, data):
    X, g = data
    np.testing.assert_allclose(depths(db, "knn_depth(id, emb) FROM t"), definition(X), rtol=0, atol=1e-12)
    # the closed form ranks rows as the cosine to the mean of the normalised rows does
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    got = depths(db, "knn_depth(id, emb) FROM t")
    assert (np.argsort(-got, kind="stable") == np.argsort(-(Xn @ Xn.mean(0)), kind="stable")).all()


def test_depth_relative_to_reference_rows(db, data):
    X, g = data
    ref = g != 0
    got = depths(db, "knn_depth(id, emb, is_ref) FROM t")
    np.testing.assert_allclose(got[~ref], definition(X[~ref], X[ref]), atol=1e-12)
    np.testing.assert_allclose(got[ref], definition(X[ref]), atol=1e-12)  # reference rows leave themselves out
    # the Python form: depth of X's rows relative to ref, as tte_depth's depths_paired(F, G)[1]
    np.testing.assert_allclose(A.depth(X[~ref], X[ref]), definition(X[~ref], X[ref]), atol=1e-12)
    np.testing.assert_allclose(A.depth(X), definition(X), atol=1e-12)


@pytest.mark.parametrize("metric", ["chord", "l2"])
def test_exact_chord_and_l2_depth_every_isa(db, data, isa, metric):
    X, g = data
    got = depths(db, f"knn_depth(id, emb, 'metric={metric}') FROM t")
    np.testing.assert_allclose(got, definition(X, metric=metric), rtol=0, atol=2e-6)
    got = depths(db, f"knn_depth(id, emb, is_ref, 'metric={metric}') FROM t")
    ref = g != 0
    np.testing.assert_allclose(got[~ref], definition(X[~ref], X[ref], metric), atol=2e-6)
    np.testing.assert_allclose(got[ref], definition(X[ref], metric=metric), atol=2e-6)


def test_sampled_depth_is_within_its_stated_error(db, rng):
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    load(db, "s", X)
    exact = definition(X, metric="chord")
    m = 300
    first = depths(db, f"knn_depth(id, emb, 'metric=chord, sample={m}, seed=5') FROM s")
    err = first - exact
    # Hoeffding without replacement, distances in [0, 2]: P(|err| >= t) <= 2 exp(-m t^2 / 2)
    t = np.sqrt(2 * np.log(2 / 1e-4) / m)
    assert np.abs(err).max() < t
    assert np.sqrt(np.mean(err ** 2)) < 1 / np.sqrt(m)
    again = depths(db, f"knn_depth(id, emb, 'metric=chord, sample={m}, seed=5') FROM s")
    other = depths(db, f"knn_depth(id, emb, 'metric=chord, sample={m}, seed=6') FROM s")
    assert (again == first).all() and not (other == again).all()
    # sample >= the reference rows is the exact depth
    np.testing.assert_allclose(depths(db, "knn_depth(id, emb, 'metric=chord, sample=5000') FROM s"), exact, atol=2e-6)


def test_per_group_depth_is_depth_within_the_group(db, data):
    X, g = data
    got = db.execute("SELECT g, r.id, r.depth FROM (SELECT g, unnest(knn_depth(id, emb, 'metric=chord')) AS r "
                     "FROM t GROUP BY g) ORDER BY g, r.id").fetchnumpy()
    for c in range(4):
        sel = got["g"] == c
        assert (got["id"][sel] == np.flatnonzero(g == c)).all()
        np.testing.assert_allclose(got["depth"][sel], definition(X[g == c], metric="chord"), atol=2e-6)
    by = A.sql_depth(db, "t", by="g")
    assert list(by.columns) == ["g", "id", "depth"] and len(by) == 400
    np.testing.assert_allclose(by.depth[by.g == 1], definition(X[g == 1]), atol=1e-12)


@pytest.mark.parametrize("metric", ["cosine", "chord", "l2"])
def test_rank_test_equals_scipy_on_the_same_depths(db, rng, metric):
    F = rng.normal(size=(300, 10)).astype(np.float32) + 1.0
    G = (rng.normal(size=(120, 10)) * 1.6 + 1.0).astype(np.float32)  # wider: more outlying
    load(db, "ft", np.concatenate([F, G]), in_g=np.arange(420) >= 300)
    dF, dG = definition(F, metric=metric), definition(G, F, metric)
    for alt in ("greater", "less", "two-sided"):
        row = db.execute(f"SELECT knn_depth_test(emb, in_g, 'metric={metric}, alternative={alt}') FROM ft").fetchone()[0]
        rs = stats.ranksums(dF, dG, alternative=alt)
        mw = stats.mannwhitneyu(dF, dG, alternative=alt, method="asymptotic", use_continuity=False)
        assert row["w"] == pytest.approx(rs.statistic, rel=1e-9)
        assert row["p_value"] == pytest.approx(rs.pvalue, rel=1e-6, abs=1e-300)
        assert row["p_value"] == pytest.approx(mw.pvalue, rel=1e-6, abs=1e-300)  # no ties: the same test
        assert row["u"] == mw.statistic
        # Liu & Singh's Q: share of (x in F, y in G) with D(x) <= D(y)
        assert row["q"] == pytest.approx(np.mean(dF[:, None] <= dG[None, :]), abs=1e-12)
        assert (row["n_ref"], row["n_cand"]) == (300, 120)
    res = A.depth_test(F, G, metric=metric)
    assert res.p_value < 1e-6 and res.q < 0.35
    assert A.sql_depth_test(db, "ft", "in_g", metric=metric) == res


def test_rank_test_same_distribution_is_not_significant(rng):
    X = rng.normal(size=(600, 8)).astype(np.float32)
    res = A.depth_test(X[:400], X[400:])
    assert res.p_value > 0.05 and abs(res.q - 0.5) < 0.06


def test_depth_selection_deepest_and_shallowest(db, data, rng):
    X, g = data
    d = definition(X)
    deep = np.lexsort((np.arange(400), -d))[:7]
    shallow = np.lexsort((np.arange(400), d))[:7]
    for order, want in (("deepest", deep), ("shallowest", shallow)):
        got = db.execute(f"SELECT r.id, r.score, r.pick_order, r.weight FROM (SELECT unnest(knn_sample_agg(id, emb, 7, "
                         f"'depth', 0, 'order={order}')) AS r FROM t) ORDER BY r.pick_order").fetchnumpy()
        assert (got["id"] == want).all()
        np.testing.assert_allclose(got["score"], d[want], atol=1e-12)
        assert (got["weight"] == 400 / 7).all()
        assert (S.depth(X, 7, order=order).index == want).all()
    # per group: the deepest row of each group relative to that group
    got = db.execute("SELECT g, unnest(knn_sample_agg(id, emb, 1, 'depth')).id AS id FROM t GROUP BY g ORDER BY g").fetchall()
    assert [r[1] for r in got] == [int(np.flatnonzero(g == c)[np.argmax(definition(X[g == c]))]) for c in range(4)]
    # chord depth through the sampler, and more picks than rows returns every row
    res = S.depth(X, 1000, metric="chord")
    assert len(res.index) == 400
    np.testing.assert_allclose(res.score, np.sort(definition(X, metric="chord"))[::-1], atol=2e-6)


def test_depth_selection_over_an_index(db, data):
    X, g = data
    db.execute("SELECT * FROM knn_index_create('dix', dim := 12, kind := 'flat')").fetchall()
    db.execute("SELECT knn_index_insert('dix', id, emb) FROM t").fetchall()
    got = db.execute("SELECT id FROM knn_sample('dix', 5, method := 'depth') ORDER BY pick_order").fetchnumpy()["id"]
    assert (got == np.argsort(-definition(X), kind="stable")[:5]).all()


def test_all_equal_vectors_have_documented_depths(db):
    X = np.tile(np.array([[1.0, 2.0, 3.0]], np.float32), (50, 1))
    load(db, "e", X, in_g=np.arange(50) >= 30)
    assert (depths(db, "knn_depth(id, emb) FROM e") == pytest.approx(2.0))
    assert (depths(db, "knn_depth(id, emb, 'metric=chord') FROM e") == pytest.approx(2.0, abs=1e-3))
    assert (depths(db, "knn_depth(id, emb, 'metric=l2') FROM e") == pytest.approx(1.0, abs=1e-3))
    row = db.execute("SELECT knn_depth_test(emb, in_g) FROM e").fetchone()[0]
    assert (row["q"], row["w"], row["p_value"]) == (0.5, 0.0, 0.5)


def test_nulls_are_skipped_and_empty_groups_are_null(db, data):
    X, g = data
    n = db.execute("SELECT len(knn_depth(CASE WHEN id < 10 THEN NULL ELSE id END, emb)) FROM t").fetchone()[0]
    assert n == 390
    a = depths(db, "knn_depth(id, (CASE WHEN id < 10 THEN NULL ELSE emb::FLOAT[] END)::FLOAT[12]) FROM t")
    np.testing.assert_allclose(a, definition(X[10:]), atol=1e-12)
    a = depths(db, "knn_depth(id, emb, CASE WHEN id < 10 THEN NULL ELSE is_ref END) FROM t")
    assert len(a) == 390
    b = db.execute("SELECT knn_depth_test(emb, CASE WHEN id < 10 THEN NULL ELSE g = 0 END) FROM t").fetchone()[0]
    assert b["n_ref"] + b["n_cand"] == 390
    assert db.execute("SELECT knn_depth(id, emb) FROM t WHERE false").fetchone()[0] is None
    assert db.execute("SELECT knn_depth_test(emb, g = 0) FROM t WHERE false").fetchone()[0] is None


@pytest.mark.parametrize("sql, message", [
    ("SELECT knn_depth(id, emb) FROM t WHERE id = 3", "knn_depth: depth needs at least 2 reference rows"),
    ("SELECT knn_depth(id, emb, id = 3) FROM t", "depth needs at least 2 reference rows"),
    ("SELECT knn_depth(id + 100, CASE WHEN id = 5 THEN [0,0,0,0,0,0,0,0,0,0,0,0]::FLOAT[] ELSE emb::FLOAT[] END) "
     "FROM t", "the vector of row 105 is the zero vector, which has no direction for cosine depth; drop it or use "
     "metric=l2"),
    ("SELECT knn_depth_test(CASE WHEN id = 5 THEN [0,0,0,0,0,0,0,0,0,0,0,0]::FLOAT[] ELSE emb::FLOAT[] END, g = 0, "
     "'metric=chord') FROM t", "a row's vector is the zero vector, which has no direction for chord depth"),
    ("SELECT knn_depth(id, emb, 'metric=ip') FROM t", "metric must be cosine (default), chord or l2 for depth"),
    ("SELECT knn_depth(id, emb, 'metric=manhattan') FROM t", "unknown metric 'manhattan'"),
    ("SELECT knn_depth(id, emb, 'sample=100') FROM t", "sample applies to metric=chord or l2"),
    ("SELECT knn_depth(id, emb, 'metric=chord, sample=1') FROM t", "option 'sample' must be a number in [2,"),
    ("SELECT knn_depth(id, emb, 'k=3') FROM t", "knn_depth: unknown option 'k'; accepted keys: metric,sample,seed"),
    ("SELECT knn_depth(id, [1, 'nan'::FLOAT]::FLOAT[2]) FROM t", "NaN or Inf"),
    ("SELECT knn_depth(id, CASE WHEN id = 7 THEN [1, 2]::FLOAT[] ELSE emb::FLOAT[] END) FROM t", "dimension mismatch"),
    ("SELECT knn_depth_test(emb, false) FROM t", "knn_depth_test: no candidate rows"),
    ("SELECT knn_depth_test(emb, true) FROM t", "depth needs at least 2 reference rows"),
    ("SELECT knn_depth_test(emb, g = 0, 'alternative=bigger') FROM t", "alternative must be greater, less or two-sided"),
    ("SELECT knn_predict(id, emb, g::BIGINT, 3, 'metric=chord') FROM t", "unknown metric 'chord'"),
    ("SELECT knn_sample_agg(id, emb, 3, 'depth', 0, 'order=middle') FROM t", "option 'order' must be 'deepest'"),
    ("SELECT knn_sample_agg(id, emb, 3, 'depth', 0, 'metric=ip') FROM t", "depth metric must be 'cosine', 'chord' or"),
    ("SELECT knn_sample_agg(id, emb, 3, 'depth', 0, 'iters=3') FROM t", "method 'depth' has no option 'iters'"),
])
def test_errors(db, data, sql, message):
    with pytest.raises(duckdb.Error) as err:
        db.execute(sql).fetchall()
    assert message in str(err.value)


def test_python_errors(data):
    X, g = data
    with pytest.raises(ValueError, match="unknown depth metric 'ip'"):
        A.depth(X, metric="ip")
    with pytest.raises(ValueError, match="sample applies to metric 'chord' or 'l2'"):
        A.depth(X, sample=10)
    with pytest.raises(ValueError, match="has a NaN or Inf"):
        A.depth(np.where(np.arange(12) == 3, np.nan, X))
    with pytest.raises(ValueError, match="dimension mismatch"):
        A.depth(X, X[:, :5])
    with pytest.raises(ValueError, match="unknown alternative"):
        A.depth_test(X, X, alternative="up")
    with pytest.raises(duckdb.Error, match="at least 2 reference rows"):
        A.depth(X[:1])
