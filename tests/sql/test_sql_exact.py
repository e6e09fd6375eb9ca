"""knn_exact and knn_exact_join in SQL: results equal numpy's, on every metric, kernel and input shape."""

import numpy as np
import pytest

from conftest import assert_exact

METRICS = ["l2", "cosine", "ip"]


def load_table(db, X, name="t", ids=None, list_type=False):
    n, d = X.shape
    ids = np.arange(n) if ids is None else np.asarray(ids)
    db.execute(f"DROP TABLE IF EXISTS {name}")
    cast = "FLOAT[]" if list_type else f"FLOAT[{d}]"
    # numpy -> DuckDB without per-row Python objects: unnest a flat array, then regroup by row.
    flat = X.reshape(-1).astype(np.float32)
    db.con.register("flat_src", {"v": flat})
    db.con.register("id_src", {"id": ids.astype(np.int64), "r": np.arange(n, dtype=np.int64)})
    db.execute(
        f"""CREATE TABLE {name} AS
            WITH f AS (SELECT v, (row_number() OVER () - 1) // {d} AS r,
                              (row_number() OVER () - 1) % {d} AS j FROM flat_src)
            SELECT i.id, list(f.v ORDER BY f.j)::{cast} AS vec
            FROM f JOIN id_src i USING (r) GROUP BY i.id, i.r ORDER BY i.r""")
    db.con.unregister("flat_src")
    db.con.unregister("id_src")


def results(rows):
    ids = np.array([[e["id"] for e in r] for r in rows], dtype=np.int64)
    d = np.array([[e["distance"] for e in r] for r in rows], dtype=np.float32)
    return ids, d


def qlit(q):
    return "[" + ",".join(repr(float(x)) for x in q) + f"]::FLOAT[{len(q)}]"


@pytest.mark.parametrize("metric", METRICS)
def test_knn_exact_matches_numpy(db, isa, metric, rng):
    X = rng.standard_normal((5000, 24)).astype(np.float32)
    load_table(db, X)
    Q = rng.standard_normal((4, 24)).astype(np.float32)
    rows = [db.execute(f"SELECT knn_exact(id, vec, {qlit(q)}, 10, '{metric}') FROM t").fetchall()[0][0] for q in Q]
    ids, d = results(rows)
    assert_exact(ids, d, X, Q, 10, metric)


@pytest.mark.parametrize("metric", METRICS)
def test_knn_exact_join_matches_numpy(db, isa, metric, rng):
    X = rng.standard_normal((4000, 33)).astype(np.float32)
    Q = rng.standard_normal((25, 33)).astype(np.float32)
    load_table(db, X)
    load_table(db, Q, name="queries", ids=np.arange(100, 125))
    rows = db.execute(f"""
        SELECT query_id, list(id ORDER BY rank), list(distance ORDER BY rank) FROM (
          SELECT unnest(knn_exact_join(id, vec, (SELECT list({{'qid': id, 'vec': vec}}) FROM queries), 7, '{metric}'),
                        recursive := true) FROM t)
        GROUP BY query_id ORDER BY query_id""").fetchall()
    assert [r[0] for r in rows] == list(range(100, 125))
    ids = np.array([r[1] for r in rows])
    d = np.array([r[2] for r in rows], dtype=np.float32)
    assert_exact(ids, d, X, Q, 7, metric)


def test_join_plain_list_uses_positions(db, rng):
    X = rng.standard_normal((300, 8)).astype(np.float32)
    load_table(db, X)
    rows = db.execute(f"""SELECT unnest(knn_exact_join(id, vec, [{qlit(X[5])}, {qlit(X[9])}], 1), recursive := true)
                      FROM t""").fetchall()
    assert [(r[0], r[1], r[3]) for r in rows] == [(1, 5, 1), (2, 9, 1)]


def test_where_and_group_by(db, rng):
    X = rng.standard_normal((2000, 10)).astype(np.float32)
    load_table(db, X)
    q = rng.standard_normal(10).astype(np.float32)
    rows = db.execute(f"""SELECT id % 3 AS g, knn_exact(id, vec, {qlit(q)}, 5) FROM t WHERE id < 1500
                      GROUP BY g ORDER BY g""").fetchall()
    for g, res in rows:
        keep = np.array([i for i in range(1500) if i % 3 == g])
        ids, d = results([res])
        assert_exact(ids, d, X[keep], q[None], 5, "l2", row_ids=keep)


@pytest.mark.parametrize("cast", ["FLOAT[]", "DOUBLE[16]", "DOUBLE[]"])
def test_list_and_double_inputs(db, rng, cast):
    X = rng.standard_normal((500, 16)).astype(np.float32)
    load_table(db, X)
    q = rng.standard_normal(16).astype(np.float32)
    res = db.execute(f"SELECT knn_exact(id, vec::{cast}, {qlit(q)}::{cast}, 4) FROM t").fetchall()[0][0]
    ids, d = results([res])
    assert_exact(ids, d, X, q[None], 4, "l2")


def test_integer_vectors(db):
    db.execute("CREATE TABLE px AS SELECT i AS id, [i, 2*i]::UTINYINT[2] AS vec FROM range(100) r(i)")
    res = db.execute("SELECT knn_exact(id, vec, [10, 20], 2) FROM px").fetchall()[0][0]
    assert [e["id"] for e in res] == [10, 9]
    assert [e["distance"] for e in res] == [0.0, 5.0]


def test_null_policy(db):
    db.execute("""CREATE TABLE n AS SELECT i AS id,
                  (CASE WHEN i = 3 THEN NULL ELSE [i, 0]::FLOAT[] END)::FLOAT[2] AS vec FROM range(6) r(i)""")
    # NULL vector rows are skipped
    res = db.execute("SELECT knn_exact(id, vec, [3, 0]::FLOAT[2], 3) FROM n").fetchall()[0][0]
    assert [e["id"] for e in res] == [2, 4, 1]
    # NULL ids are skipped
    res = db.execute("SELECT knn_exact(CASE WHEN id = 2 THEN NULL ELSE id END, vec, [3, 0]::FLOAT[2], 2) FROM n").fetchall()[0][0]
    assert [e["id"] for e in res] == [4, 1]
    # a NULL query, or no rows at all, gives NULL
    assert db.execute("SELECT knn_exact(id, vec, NULL::FLOAT[2], 3) FROM n").fetchall()[0][0] is None
    assert db.execute("SELECT knn_exact(id, vec, [3, 0]::FLOAT[2], 3) FROM n WHERE false").fetchall()[0][0] is None
    # only NULL vectors: an empty list
    assert db.execute("SELECT knn_exact(id, vec, [3, 0]::FLOAT[2], 3) FROM n WHERE id = 3").fetchall()[0][0] == []


def test_k_larger_than_rows_returns_all(db):
    db.execute("CREATE TABLE s AS SELECT i AS id, [i]::FLOAT[1] AS vec FROM range(5) r(i)")
    res = db.execute("SELECT knn_exact(id, vec, [0]::FLOAT[1], 1000000000) FROM s").fetchall()[0][0]
    assert [e["id"] for e in res] == [0, 1, 2, 3, 4]


def test_parallel_scan_matches_single_thread(db, rng):
    X = rng.standard_normal((200_000, 8)).astype(np.float32)
    load_table(db, X)
    q = rng.standard_normal(8).astype(np.float32)
    db.execute("SET threads = 2")
    a = db.execute(f"SELECT knn_exact(id, vec, {qlit(q)}, 20) FROM t").fetchall()[0][0]
    db.execute("SET threads = 1")
    b = db.execute(f"SELECT knn_exact(id, vec, {qlit(q)}, 20) FROM t").fetchall()[0][0]
    assert a == b
    ids, d = results([a])
    assert_exact(ids, d, X, q[None], 20, "l2")


def test_window_aggregate(db):
    db.execute("CREATE TABLE w AS SELECT i AS id, [i]::FLOAT[1] AS vec FROM range(10) r(i)")
    rows = db.execute("""SELECT id, knn_exact(id, vec, [0]::FLOAT[1], 2) OVER (ORDER BY id ROWS BETWEEN 3 PRECEDING
                     AND CURRENT ROW) FROM w ORDER BY id""").fetchall()
    assert [[e["id"] for e in r[1]] for r in rows] == [[0], [0, 1], [0, 1], [0, 1], [1, 2], [2, 3], [3, 4], [4, 5],
                                                        [5, 6], [6, 7]]


def test_prepared_parameter_query(db, rng):
    X = rng.standard_normal((100, 4)).astype(np.float32)
    load_table(db, X)
    res = db.execute("SELECT knn_exact(id, vec, $1::FLOAT[4], 1) FROM t", [X[42].tolist()]).fetchall()[0][0]
    assert res[0]["id"] == 42


def test_query_per_group_and_correlated_subquery(db):
    db.execute("CREATE TABLE d AS SELECT i AS id, [i, 0]::FLOAT[2] AS emb FROM range(100) r(i)")
    db.execute("CREATE TABLE q AS SELECT i AS id, [i * 10 + 0.1, 0]::FLOAT[2] AS emb FROM range(3) r(i)")
    grouped = db.execute("""SELECT q.id, [r.id FOR r IN knn_exact(d.id, d.emb, q.emb, 2)]
                            FROM q, d GROUP BY q.id ORDER BY q.id""").fetchall()
    correlated = db.execute("""SELECT q.id, (SELECT [r.id FOR r IN knn_exact(d.id, d.emb, q.emb, 2)] FROM d)
                               FROM q ORDER BY q.id""").fetchall()
    assert grouped == correlated == [(0, [0, 1]), (1, [10, 11]), (2, [20, 21])]
