"""Every bad input gets a clear error naming the problem and the fix; nothing crashes."""

import duckdb
import numpy as np
import pytest

import knnsql


@pytest.fixture
def t(db):
    db.execute("CREATE TABLE t AS SELECT i AS id, [i, i + 1, 2 * i]::FLOAT[3] AS vec FROM range(50) r(i)")
    return db


SQL_ERRORS = [
    ("SELECT knn_exact(id, vec, [1, 2]::FLOAT[2], 3) FROM t",
     "knn_exact: dimension mismatch: 'vec' of row id 0 has 3 elements but the query has 2"),
    ("SELECT knn_exact(id, vec, [1, 2, 3]::FLOAT[3], 0) FROM t", "knn_exact: k must be >= 1, got 0"),
    ("SELECT knn_exact(id, vec, [1, 2, 3]::FLOAT[3], -5) FROM t", "knn_exact: k must be >= 1, got -5"),
    ("SELECT knn_exact(id, vec, [1, 2, 3]::FLOAT[3], NULL) FROM t", "knn_exact: k must not be NULL"),
    ("SELECT knn_exact(id, vec, [1, 2, 3]::FLOAT[3], 3, 'manhattan') FROM t",
     "knn_exact: unknown metric 'manhattan'; use one of 'l2' (squared Euclidean, alias 'l2sq'), 'cosine', 'ip'"),
    ("SELECT knn_exact(id, vec, [1, 2, 3]::FLOAT[3], 3, NULL) FROM t", "knn_exact: metric must not be NULL"),
    ("SELECT knn_exact(id, 'abc', [1, 2, 3]::FLOAT[3], 3) FROM t",
     "knn_exact: 'vec' must be a vector: FLOAT[d] (best), FLOAT[], or DOUBLE / integer arrays and lists "
     "(converted); got VARCHAR; cast it, e.g. vec::FLOAT[d]"),
    ("SELECT knn_exact(id, vec, ['a', 'b', 'c'], 3) FROM t", "knn_exact: 'query' must be a vector"),
    ("SELECT knn_exact(id, vec::DECIMAL(9,2)[3], [1, 2, 3]::FLOAT[3], 3) FROM t",
     "got DECIMAL[3]; cast it, e.g. vec::FLOAT[d]"),
    ("SELECT knn_exact(id, vec, ['nan'::FLOAT, 1, 2]::FLOAT[3], 3) FROM t",
     "knn_exact: query has a NaN or Inf at position 0; queries must be finite"),
    ("SELECT knn_exact(id, vec, [0, 0, 0]::FLOAT[3], 3, 'cosine') FROM t",
     "knn_exact: query is the zero vector, which has no direction for metric 'cosine'"),
    ("SELECT knn_exact(id, (CASE WHEN id = 7 THEN ['inf'::FLOAT, 1, 1]::FLOAT[] ELSE vec::FLOAT[] END)::FLOAT[3], [1, 2, 3]::FLOAT[3], 3) FROM t",
     "knn_exact: vector of row id 7 has a NaN or Inf component"),
    ("SELECT knn_exact(id, (CASE WHEN id = 7 THEN ['nan'::FLOAT, 1, 1]::FLOAT[] ELSE vec::FLOAT[] END)::FLOAT[3], [1, 2, 3]::FLOAT[3], 3) FROM t",
     "knn_exact: vector of row id 7 has a NaN or Inf component"),
    ("SELECT knn_exact(id, (CASE WHEN id = 9 THEN [1, NULL, 1]::FLOAT[] ELSE vec::FLOAT[] END)::FLOAT[3], [1, 2, 3]::FLOAT[3], 3) FROM t",
     "knn_exact: 'vec' of row id 9 contains a NULL element"),
    ("SELECT knn_exact(id, CASE WHEN id = 9 THEN [1, 2]::FLOAT[] ELSE vec::FLOAT[] END, [1, 2, 3]::FLOAT[3], 3) FROM t",
     "knn_exact: dimension mismatch: 'vec' of row id 9 has 2 elements but the query has 3"),
    ("SELECT knn_exact(id, vec, vec, 3) FROM t",
     "knn_exact: k, metric and the query must be the same for every row of a group"),
    ("SELECT knn_exact(id, vec, [1, 2, 3]::FLOAT[3], CAST(id % 2 + 1 AS BIGINT)) FROM t",
     "knn_exact: k, metric and the query must be the same for every row of a group"),
    ("SELECT knn_exact(id, vec, []::FLOAT[], 3) FROM t", "knn_exact: query is an empty list"),
    ("SELECT knn_exact_join(id, vec, [1, 2, 3]::FLOAT[3], 3) FROM t",
     "knn_exact_join: 'queries' must be a LIST of query vectors"),
    ("SELECT knn_exact_join(id, vec, []::FLOAT[3][], 3) FROM t", "knn_exact_join: 'queries' is an empty list"),
    ("SELECT knn_exact_join(id, vec, [[1, 2, 3]::FLOAT[], [1, 2]::FLOAT[]], 3) FROM t",
     "knn_exact_join: dimension mismatch: query 2 has 2 elements but query 1 has 3"),
    ("SELECT knn_exact_join(id, vec, [[1, 2, 3]::FLOAT[3], NULL], 3) FROM t",
     "knn_exact_join: query 2 is NULL or contains a NULL element"),
    ("SELECT knn_exact_join(id, vec, [{'q': 'a', 'v': [1, 2, 3]::FLOAT[3]}], 3) FROM t",
     "the STRUCT must have two fields: an INTEGER or BIGINT query id, then the vector"),
    ("SELECT knn_exact_join(id, vec, [{'q': NULL::INTEGER, 'v': [1, 2, 3]::FLOAT[3]}], 3) FROM t",
     "knn_exact_join: the id of query 1 is NULL"),
    ("SELECT knn_exact_join(id, vec, [[1, 2, 3]::FLOAT[3]], 0) FROM t", "knn_exact_join: k must be >= 1, got 0"),
    ("SELECT knn_exact_join(id, vec, CASE WHEN id = 3 THEN [[1, 1, 1]::FLOAT[3]] ELSE [[1, 2, 3]::FLOAT[3]] END, 2) "
     "FROM t", "knn_exact_join: k, metric and the query must be the same for every row of a group"),
]


@pytest.mark.parametrize("sql,message", SQL_ERRORS, ids=[m[:40] for _, m in SQL_ERRORS])
def test_sql_error_messages(t, sql, message):
    with pytest.raises(duckdb.Error) as err:
        t.execute(sql).fetchall()
    assert message in str(err.value)


@pytest.mark.parametrize("sql", [s for s, _ in SQL_ERRORS])
def test_connection_survives_errors(t, sql):
    with pytest.raises(duckdb.Error):
        t.execute(sql).fetchall()
    assert t.execute("SELECT knn_exact(id, vec, [1, 2, 3]::FLOAT[3], 1) FROM t").fetchall()[0][0][0]["id"] == 1


NUMPY_ERRORS = [
    (lambda: knnsql.Index(0), knnsql.KnnError, "dim must be between 1 and 65536, got 0"),
    (lambda: knnsql.Index(4, "hamming"), knnsql.KnnError, "unknown metric 'hamming'; use one of"),
    (lambda: knnsql.Index(4, kind="hnsw9"), ValueError, "unknown index kind 'hnsw9'"),
    (lambda: knnsql.Index(4.5), TypeError, "dim must be an int"),
]


@pytest.mark.parametrize("make,exc,message", NUMPY_ERRORS, ids=[m for *_, m in NUMPY_ERRORS])
def test_index_constructor_errors(make, exc, message):
    with pytest.raises(exc, match=None) as err:
        make()
    assert message in str(err.value)


def test_index_add_and_search_errors():
    ix = knnsql.Index(3)
    good = np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match="dimension mismatch: X has 4 columns but the index has dim 3"):
        ix.add(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"ids must have shape \(2,\) to match X"):
        ix.add(good, ids=[1, 2, 3])
    with pytest.raises(TypeError, match="ids must be integers"):
        ix.add(good, ids=["a", "b"])
    with pytest.raises(TypeError, match="X must be numeric"):
        ix.add(np.array([["a", "b", "c"]]))
    bad = good.copy()
    bad[1, 2] = np.nan
    with pytest.raises(knnsql.KnnError, match=r"vector with id 1 \(row 1 of this batch\) has a NaN or Inf"):
        ix.add(bad)
    assert len(ix) == 0, "a rejected batch must add nothing"
    bad[1, 2] = np.inf
    with pytest.raises(knnsql.KnnError, match="NaN or Inf"):
        ix.add(bad)
    ix.add(good, ids=[5, 6])
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        ix.search(good, 0)
    with pytest.raises(TypeError, match="k must be an int"):
        ix.search(good, 2.5)
    with pytest.raises(ValueError, match="dimension mismatch: Q has 2 columns"):
        ix.search(np.ones(2, np.float32), 1)
    with pytest.raises(knnsql.KnnError, match="query has a NaN or Inf at position 1"):
        ix.search(np.array([1, np.nan, 1], np.float32), 1)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        ix.search(good, 1, threads=0)
    cos = knnsql.Index(3, "cosine")
    cos.add(good)
    with pytest.raises(knnsql.KnnError, match="zero vector, which has no direction for metric 'cosine'"):
        cos.search(np.zeros(3, np.float32), 1)
