"""SQL sampling: knn_sample_agg / knn_sample_weighted over any relation, knn_sample over an index, and
the Python sample() helper; results agree with the numpy API on the same rows."""

import duckdb
import numpy as np
import pandas as pd
import pytest

import knnsql
from knnsql import sampling as ks


@pytest.fixture
def docs(db, rng):
    X = rng.normal(size=(800, 6)).astype(np.float32)
    tbl = knnsql.vectors_table(X)  # noqa: F841  (read by DuckDB's replacement scan)
    db.execute("CREATE TABLE docs AS SELECT id, emb, (id % 5 + 1)::DOUBLE AS w, id % 3 AS grp FROM tbl")
    return X


def picks(db, sql):
    return db.execute(sql).fetchall()[0][0]


def test_agg_kcenter_matches_numpy(db, docs):
    got = picks(db, "SELECT knn_sample_agg(id, emb, 12, 'kcenter', 4) FROM docs")
    ref = ks.kcenter(docs, 12, seed=4)
    assert [p["id"] for p in got] == list(ref.index)  # ids are 0..n-1 here, in id order
    assert [p["pick_order"] for p in got] == list(range(1, 13))
    assert np.allclose([p["score"] for p in got], ref.score)
    assert [p["weight"] for p in got] == list(ref.weight)


@pytest.mark.parametrize("method,options", [("kmeans++", "variant=greedy"), ("kmeans", "iters=5"),
                                            ("sensitivity", "k=4"), ("balanced", "levels=8"),
                                            ("kernel_thinning", ""), ("dpp", "kernel=rbf")])
def test_agg_methods_match_numpy(db, docs, method, options):
    got = picks(db, f"SELECT knn_sample_agg(id, emb, 10, '{method}', 3, '{options}') FROM docs")
    opts = dict(kv.split("=") for kv in options.split(",") if kv)
    ref = ks.run(docs, 10, method, seed=3, **opts)
    assert [p["id"] for p in got] == list(ref.index)
    assert np.allclose([p["weight"] for p in got], ref.weight)


def test_agg_result_independent_of_row_order_and_threads(db, docs):
    db.execute("CREATE TABLE shuffled AS SELECT * FROM docs ORDER BY hash(id)")
    a = picks(db, "SELECT knn_sample_agg(id, emb, 20, 'kmeans', 1) FROM docs")
    db.execute("SET threads = 1")
    b = picks(db, "SELECT knn_sample_agg(id, emb, 20, 'kmeans', 1) FROM shuffled")
    assert a == b


def test_agg_where_and_group_by(db, docs):
    rows = db.execute("SELECT grp, knn_sample_agg(id, emb, 5, 'kcenter') AS s FROM docs WHERE id < 600 "
                      "GROUP BY grp ORDER BY grp").fetchall()
    assert [g for g, _ in rows] == [0, 1, 2]
    for g, s in rows:
        assert all(p["id"] % 3 == g and p["id"] < 600 for p in s)
    empty = db.execute("SELECT knn_sample_agg(id, emb, 5, 'kcenter') FROM docs WHERE id < 0").fetchone()[0]
    assert empty is None


def test_agg_skips_null_rows(db, docs):
    db.execute("UPDATE docs SET emb = NULL WHERE id < 400")
    got = picks(db, "SELECT knn_sample_agg(id, emb, 1000, 'kcenter') FROM docs")
    assert sorted(p["id"] for p in got) == list(range(400, 800))  # n > rows: every row


def test_agg_kcenter_start_ids(db, docs):
    got = picks(db, "SELECT knn_sample_agg(id, emb, 3, 'kcenter', 0, 'start=7/9') FROM docs")
    ref = ks.kcenter(docs, 3, start=[7, 9])
    assert [p["id"] for p in got] == list(ref.index)


def test_weighted_agg(db, docs):
    got = picks(db, "SELECT knn_sample_weighted(id, w, 50, 2) FROM docs")
    w = (np.arange(800) % 5 + 1).astype(float)
    assert [p["id"] for p in got] == list(ks.weighted(w, 50, seed=2).index)
    rep = picks(db, "SELECT knn_sample_weighted(id, w, 2000, 2, true) FROM docs")
    assert len(rep) == 2000
    assert sum(p["weight"] for p in rep) == pytest.approx(800, rel=0.05)


def test_index_table_function_window(db, docs):
    db.execute("SELECT * FROM knn_index_create('docs_ix', dim := 6)")
    db.execute("SELECT knn_index_insert('docs_ix', id, emb, id) FROM docs")
    got = db.execute("SELECT id, weight, pick_order FROM knn_sample('docs_ix', 8, method := 'kcenter', seed := 2, "
                     "lo := 100, hi := 299)").fetchall()
    ref = ks.kcenter(docs[100:300], 8, seed=2)
    assert [r[0] for r in got] == list(ref.index + 100)
    assert [r[2] for r in got] == list(range(1, 9))
    whole = db.execute("SELECT count(*) FROM knn_sample('docs_ix', 5, method := 'kmeans')").fetchone()[0]
    assert whole == 5
    none = db.execute("SELECT count(*) FROM knn_sample('docs_ix', 5, lo := 5000, hi := 6000)").fetchone()[0]
    assert none == 0


def test_index_table_function_flat_index(db, docs):
    db.execute("SELECT * FROM knn_index_create('flat_ix', dim := 6, kind := 'flat')")
    db.execute("SELECT knn_index_insert('flat_ix', id, emb) FROM docs")
    got = db.execute("SELECT id FROM knn_sample('flat_ix', 6, method := 'kcenter', seed := 1)").fetchall()
    assert [r[0] for r in got] == list(ks.kcenter(docs, 6, seed=1).index)


def test_python_sample_helper(db, docs):
    df = ks.sample(db, "docs", 6, "kcenter", seed=1, where="id >= 400")
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns) == ["id", "weight", "pick_order", "score", "cluster"]
    assert list(df.id) == list(ks.kcenter(docs[400:], 6, seed=1).index + 400)
    df = ks.sample(db, "SELECT * FROM docs WHERE grp = 1", 4, "kmeans", iters=3)
    assert len(df) == 4 and (df.id % 3 == 1).all()
    df = ks.sample(db, db.sql("SELECT * FROM docs"), 5, "weighted", weight="w", seed=2)
    assert list(df.id) == list(ks.weighted((np.arange(800) % 5 + 1).astype(float), 5, seed=2).index)
    assert "knn_sample_agg" in ks.sample_sql("docs", 3, "kmeans", iters=4)


@pytest.mark.parametrize("sql,match", [
    ("SELECT knn_sample_agg(id, emb, 0, 'kcenter') FROM docs", "n must be >= 1, got 0"),
    ("SELECT knn_sample_agg(id, emb, NULL, 'kcenter') FROM docs", "n must not be NULL"),
    ("SELECT knn_sample_agg(id, emb, 3, 'nope') FROM docs", "unknown sampling method 'nope'"),
    ("SELECT knn_sample_agg(id, emb, 3, 'weighted') FROM docs", "needs a weight per row"),
    ("SELECT knn_sample_agg(id, emb, 3, 'kmeans', 1, 'iters=-2') FROM docs", "option 'iters' must be an integer"),
    ("SELECT knn_sample_agg(id, emb, 3, 'kmeans', 1, 'bogus=1') FROM docs", "has no option 'bogus'"),
    ("SELECT knn_sample_agg(id, emb, 3, 'kcenter', 0, 'start=99999') FROM docs", "starting id 99999 is not among"),
    ("SELECT knn_sample_agg(id % 10, emb, 3, 'kcenter') FROM docs", "appears more than once"),
    ("SELECT knn_sample_agg(id, CASE WHEN id = 5 THEN [1, 2]::FLOAT[] ELSE emb::FLOAT[] END, 3, 'kcenter') FROM docs",
     "dimension mismatch: the vector of row id 5 has 2 elements"),
    ("SELECT knn_sample_agg(id, CASE WHEN id = 5 THEN ['nan'::FLOAT, 0, 0, 0, 0, 0] ELSE emb::FLOAT[] END, 3, "
     "'kcenter') FROM docs", "row id 5 has a NaN or Inf"),
    ("SELECT knn_sample_agg(id, emb, id + 1, 'kcenter') FROM docs", "must be the same for every row"),
    ("SELECT knn_sample_weighted(id, -w, 3) FROM docs", "the weight of row id 0 is -1"),
    ("SELECT knn_sample_weighted(id, CASE WHEN id = 3 THEN NULL ELSE w END, 3) FROM docs",
     "the weight of row id 3 is NULL"),
    ("SELECT knn_sample_weighted(id, 'nan'::DOUBLE, 3) FROM docs", "weights must be finite"),
    ("SELECT knn_sample_weighted(id, 0.0, 3) FROM docs", "every weight is 0"),
    ("SELECT * FROM knn_sample('missing_ix', 3)", "missing_ix"),
    ("SELECT * FROM knn_sample('docs_ix', 0)", "n must be >= 1"),
    ("SELECT * FROM knn_sample('docs_ix', 3, method := 'weighted')", "use the aggregate knn_sample_weighted"),
    ("SELECT * FROM knn_sample('docs_ix', 3, method := 'nope')", "unknown sampling method 'nope'"),
])
def test_sql_bad_input(db, docs, sql, match):
    db.execute("SELECT * FROM knn_index_create('docs_ix', dim := 6)")
    db.execute("SELECT knn_index_insert('docs_ix', id, emb) FROM docs")
    with pytest.raises(duckdb.Error, match=match):
        db.execute(sql).fetchall()


def test_python_sample_bad_input(db, docs):
    with pytest.raises(knnsql.KnnError, match="unknown sampling method"):
        ks.sample(db, "docs", 3, "nope")
    with pytest.raises(knnsql.KnnError, match="needs a weight column"):
        ks.sample(db, "docs", 3, "weighted")
    with pytest.raises(TypeError):
        ks.sample(db, "docs", 2.5)


def test_draws_with_replacement_beyond_the_memory_limit_are_refused(db):
    db.execute("CREATE TABLE wts AS SELECT i AS id, 1.0 + i AS w FROM range(100) r(i)")
    with pytest.raises(duckdb.Error, match=r"1000000000 picks need about .* GB this process may use"):
        db.execute("SELECT knn_sample_weighted(id, w, 1000000000, 0, true) FROM wts").fetchall()
    # without replacement the picks are bounded by the rows: fine
    assert len(db.execute("SELECT knn_sample_weighted(id, w, 1000000000) FROM wts").fetchone()[0]) == 100
