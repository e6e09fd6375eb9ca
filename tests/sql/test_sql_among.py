"""knn_among: a graph index searched among the rows a SQL WHERE keeps (the allow-list path)."""
import duckdb
import numpy as np
import pytest

import knnsql


@pytest.fixture(scope="module")
def con():
    rng = np.random.default_rng(3)
    n, d = 3000, 8
    X = rng.standard_normal((n, d)).astype(np.float32)
    with knnsql.connect() as db:
        c = db.con
        c.register("src", knnsql.vectors_table(X, columns={"cat": np.arange(n) % 10}))
        c.execute("CREATE TABLE docs AS SELECT * FROM src")
        c.execute("SELECT * FROM knn_index_create('g', dim := 8)")
        c.execute("SELECT knn_index_insert('g', id, emb) FROM docs")
        c.execute("SELECT * FROM knn_index_create('f', dim := 8, kind := 'flat')")
        c.execute("SELECT knn_index_insert('f', id, emb) FROM docs")
        yield c, X, rng


def among(c, q, k, where, extra=""):
    lit = "[" + ",".join(f"{v:.9g}" for v in q) + "]::FLOAT[8]"
    rows = c.execute(f"SELECT knn_among('g', {lit}, {k}, id{extra}) FROM docs WHERE {where}").fetchone()[0]
    return rows


def exact(X, q, keep, k):
    ids = np.flatnonzero(keep)
    d = ((X[ids] - q) ** 2).sum(1)
    o = np.lexsort((ids, d))[:k]
    return ids[o].tolist(), d[o]


@pytest.mark.parametrize("where,keep", [("cat = 3", lambda i: i % 10 == 3),
                                        ("id % 97 = 1", lambda i: i % 97 == 1),
                                        ("id < 5", lambda i: i < 5)])
def test_equals_the_exact_answer_on_small_filters(con, where, keep):
    c, X, rng = con
    q = rng.standard_normal(8).astype(np.float32)
    got = among(c, q, 10, where)
    want_ids, want_d = exact(X, q, keep(np.arange(len(X))), 10)
    assert [r["id"] for r in got] == want_ids
    np.testing.assert_allclose([r["distance"] for r in got], want_d, rtol=1e-4, atol=1e-5)


def test_wide_filter_keeps_recall_and_returns_only_matching_rows(con):
    c, X, rng = con
    hits = 0
    for _ in range(20):
        q = rng.standard_normal(8).astype(np.float32)
        got = [r["id"] for r in among(c, q, 10, "cat <> 0")]
        assert len(got) == 10 and all(i % 10 != 0 for i in got)
        hits += len(set(got) & set(exact(X, q, np.arange(len(X)) % 10 != 0, 10)[0]))
    assert hits / 200 >= 0.95


def test_subqueries_and_group_by_queries(con):
    c, X, rng = con
    c.execute("CREATE OR REPLACE TABLE picks AS SELECT range * 7 AS doc FROM range(100)")
    c.execute("CREATE OR REPLACE TABLE qs AS SELECT * FROM (VALUES (1, 0), (2, 5)) v(qid, src)")
    rows = c.execute("""SELECT q.qid, knn_among('g', e.emb, 3, d.id) FROM qs q JOIN docs e ON e.id = q.src
                        CROSS JOIN docs d WHERE d.id IN (SELECT doc FROM picks) GROUP BY q.qid, e.emb ORDER BY q.qid""").fetchall()
    assert [r[0] for r in rows] == [1, 2]
    for (qid, lst), src in zip(rows, [0, 5]):
        want, _ = exact(X, X[src], np.isin(np.arange(len(X)), np.arange(100) * 7), 3)
        assert [r["id"] for r in lst] == want


def test_fewer_matches_than_k_empty_and_null(con):
    c, X, rng = con
    q = X[0]
    assert sorted(r["id"] for r in among(c, q, 10, "id IN (1, 2, 3)")) == [1, 2, 3]
    assert among(c, q, 10, "false") is None  # no rows: NULL
    lit = "[" + ",".join(map(str, q.tolist())) + "]::FLOAT[8]"
    got = c.execute(f"SELECT knn_among('g', {lit}, 5, id + 100000) FROM docs WHERE id < 10").fetchone()[0]
    assert got == []  # ids the index does not hold
    got = c.execute(f"SELECT knn_among('g', {lit}, 5, CASE WHEN id % 2 = 0 THEN NULL ELSE id END) "
                    f"FROM docs WHERE id < 10").fetchone()[0]
    assert sorted(r["id"] for r in got) == [1, 3, 5, 7, 9]


def test_deleted_rows_never_come_back(con):
    c, X, rng = con
    c.execute("SELECT knn_index_delete('g', id) FROM docs WHERE id IN (11, 12)")
    got = among(c, X[11], 3, "id BETWEEN 10 AND 13")
    assert sorted(r["id"] for r in got) == [10, 13]


@pytest.mark.parametrize("sql,message", [
    ("SELECT knn_among('nope', [1,2,3,4,5,6,7,8], 3, id) FROM docs", "unknown index 'nope'"),
    ("SELECT knn_among('f', [1,2,3,4,5,6,7,8], 3, id) FROM docs", "is a flat index"),
    ("SELECT knn_among('g', [1,2,3], 3, id) FROM docs", "dimension mismatch"),
    ("SELECT knn_among('g', [1,2,3,4,5,6,7,8], 0, id) FROM docs", "k must be between 1 and 100000"),
    ("SELECT knn_among('g', [1,2,3,4,5,6,7,8], 3, id, -1) FROM docs", "ef must be between"),
    ("SELECT knn_among(NULL, [1,2,3,4,5,6,7,8], 3, id) FROM docs", "index name must not be NULL"),
    ("SELECT knn_among('g', emb, 3, id) FROM docs", "must be the same for every row of a group"),
    ("SELECT knn_among('g', [1,2,3,4,5,6,7,8], id % 5 + 1, id) FROM docs", "must be the same for every row"),
    ("SELECT knn_among('g', [1,2,NULL,4,5,6,7,8], 3, id) FROM docs", "NULL element"),
])
def test_errors_name_the_problem(con, sql, message):
    assert_fails(con[0], sql, "knn_among", message)


def assert_fails(c, sql, fn, message):
    with pytest.raises(duckdb.Error, match=fn) as err:
        c.execute(sql).fetchall()
    assert message in str(err.value)


def test_join_answers_every_query_of_the_batch(con):
    c, X, rng = con
    Q = X[[3, 50, 900]] + 0.01
    c.execute("CREATE OR REPLACE TABLE qs AS SELECT * FROM (VALUES (7, ?::FLOAT[8]), (8, ?::FLOAT[8]), (9, ?::FLOAT[8])) "
              "v(qid, emb)", [Q[0].tolist(), Q[1].tolist(), Q[2].tolist()])
    for queries, qids in [("(SELECT list({'qid': qid, 'emb': emb} ORDER BY qid) FROM qs)", [7, 8, 9]),
                          ("(SELECT list(emb ORDER BY qid) FROM qs)", [1, 2, 3])]:
        rows = c.execute(f"SELECT unnest(knn_among_join('g', {queries}, 5, id), recursive := true) "
                         f"FROM docs WHERE cat IN (1, 2)").fetchall()
        keep = np.isin(np.arange(len(X)) % 10, [1, 2])
        for qid, q in zip(qids, Q):
            got = [r[1] for r in rows if r[0] == qid]
            assert [r[3] for r in rows if r[0] == qid] == [1, 2, 3, 4, 5]
            assert got == exact(X, q, keep, 5)[0]


@pytest.mark.parametrize("queries,message", [
    ("[]::FLOAT[8][]", "empty list"),
    ("[[1,2,3,4,5,6,7,8], NULL]::FLOAT[8][]", "query 2 is NULL"),
    ("[[1,2,3,4,5,6,7,8], [1,2]]::FLOAT[][]", "query 2"),
    ("42", "must be a LIST of query vectors"),
])
def test_join_errors(con, queries, message):
    assert_fails(con[0], f"SELECT knn_among_join('g', {queries}, 3, id) FROM docs", "knn_among_join", message)


def test_bad_queries_are_errors(con):
    c, X, rng = con
    c.execute("SELECT * FROM knn_index_create('gc', dim := 8, metric := 'cosine')").fetchall()
    c.execute("SELECT knn_index_insert('gc', id, emb) FROM docs WHERE id < 300").fetchall()
    assert_fails(c, "SELECT knn_among('gc', [0,0,0,0,0,0,0,0], 3, id) FROM docs", "knn_among", "zero vector")
    assert_fails(c, "SELECT knn_among('g', [1.0,2,'nan'::FLOAT,4,5,6,7,8]::FLOAT[], 3, id) FROM docs", "knn_among", "NaN")
    assert_fails(c, "SELECT knn_among_join('gc', [[1,2,3,4,5,6,7,8], [0,0,0,0,0,0,0,0]]::FLOAT[8][], 3, id) FROM docs",
                 "knn_among_join", "zero vector")
