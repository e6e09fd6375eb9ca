"""knn_search(..., filter := '...'): predicates over attribute columns held inside a graph index.

Every predicate is checked against DuckDB evaluating the same WHERE over the same rows: the results
must all match it, number min(k, matching rows), and hold recall >= 0.95 against the exact answer
(equal to it where the planner scans the matching rows, which small filters always get)."""
import duckdb
import numpy as np
import pytest

import knnsql

N, D, K = 4000, 8, 10

PREDICATES = [
    "i = 7", "i <> 7", "i < 20", "i <= 20", "i > 180", "i >= 180", "i BETWEEN 10 AND 30",
    "i NOT BETWEEN 10 AND 190", "i IN (1, 2, 3)", "i NOT IN (1, 2, 3)", "i IN (1, NULL)", "i IS NULL",
    "i IS NOT NULL", "x < -1.5", "x >= 2.0", "x BETWEEN -0.1 AND 0.1", "x > 0 AND i < 50",
    "b", "NOT b", "b = FALSE", "d >= DATE '2024-12-01'", "d = '2024-03-05'", "d < '2024-01-10'",
    "ts > TIMESTAMP '2024-06-30 12:00:00'", "ts BETWEEN '2024-01-01' AND '2024-01-03 00:00:00'",
    "s = 'cat3'", "s <> 'cat3'", "s IN ('cat1', 'cat4')", "s LIKE 'cat1%'", "s NOT LIKE 'cat1%'",
    "s LIKE '%7'", "s LIKE 'c_t2'", "s IS NULL", "s > 'cat5'", "s = 'absent'",
    "(s = 'cat1' OR i < 10) AND NOT b", "NOT (i > 5 AND i < 195)", "i = 3 OR x > 2.5 OR s = 'cat9'",
    "TRUE", "FALSE", "i = NULL", "NOT (i = NULL)",
]


@pytest.fixture(scope="module")
def con():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((N, D)).astype(np.float32)
    with knnsql.connect() as db:
        c = db.con
        c.register("src", knnsql.vectors_table(X))
        c.execute("""CREATE TABLE docs AS SELECT id, emb,
            CASE WHEN id % 17 = 0 THEN NULL ELSE (id * 7919) % 200 END::BIGINT AS i,
            CASE WHEN id % 23 = 0 THEN NULL ELSE emb[1] END::DOUBLE AS x,
            CASE WHEN id % 29 = 0 THEN NULL ELSE id % 3 = 0 END AS b,
            DATE '2024-01-01' + (id % 366)::INTEGER AS d,
            TIMESTAMP '2024-01-01 00:00:00' + to_microseconds(id::BIGINT * 3600 * 1000000 // 1) AS ts,
            CASE WHEN id % 13 = 0 THEN NULL ELSE 'cat' || (id % 10) END AS s
            FROM src""")
        c.execute("SELECT * FROM knn_index_create('g', dim := 8)")
        c.execute("SELECT knn_index_insert('g', id, emb, {'i': i, 'x': x, 'b': b, 'd': d, 'ts': ts, 's': s}) "
                  "FROM docs")
        yield c, X, rng


def lit(q):
    return "[" + ",".join(f"{v:.9g}" for v in q) + "]::FLOAT[8]"


def search(c, q, pred, k=K, extra=""):
    p = pred.replace("'", "''")
    return c.execute(f"SELECT id, distance FROM knn_search('g', {lit(q)}, k := {k}, filter := '{p}'{extra}) "
                     "ORDER BY rank").fetchall()


def truth(c, q, pred, k=K):
    return c.execute(f"SELECT id FROM docs WHERE {pred} ORDER BY array_distance(emb, {lit(q)}), id "
                     f"LIMIT {k}").fetchall()


def matching(c, pred):
    return {r[0] for r in c.execute(f"SELECT id FROM docs WHERE {pred}").fetchall()}


@pytest.mark.parametrize("pred", PREDICATES)
def test_filter_equals_duckdb_where(con, pred):
    c, X, rng = con
    match = matching(c, pred)
    hits = 0
    for _ in range(5):
        q = rng.standard_normal(D).astype(np.float32)
        got = [r[0] for r in search(c, q, pred)]
        want = [r[0] for r in truth(c, q, pred)]
        assert set(got) <= match, f"{pred}: returned rows the filter rejects"
        assert len(got) == min(K, len(match)), f"{pred}: {len(got)} rows for {len(match)} matching"
        hits += len(set(got) & set(want))
    if match:
        assert hits / (5 * min(K, len(match))) >= 0.95, pred


def test_small_filter_is_exact_with_distances(con):
    c, X, rng = con
    q = rng.standard_normal(D).astype(np.float32)
    got = search(c, q, "i < 5")
    ids = sorted(matching(c, "i < 5"))
    d = ((X[ids] - q) ** 2).sum(1)
    o = np.lexsort((ids, d))[:K]
    assert [r[0] for r in got] == [ids[j] for j in o]
    np.testing.assert_allclose([r[1] for r in got], d[o], rtol=1e-4, atol=1e-5)


def test_filter_with_window(con):
    c, X, rng = con
    c.execute("SELECT * FROM knn_index_create('gw', dim := 8)")
    c.execute("SELECT knn_index_insert('gw', id, emb, id::DOUBLE, {'s': s}) FROM docs")
    q = rng.standard_normal(D).astype(np.float32)
    got = c.execute(f"SELECT id FROM knn_search('gw', {lit(q)}, k := 10, lo := 100, hi := 1500, "
                    "filter := 's = ''cat2''')").fetchall()
    want = c.execute(f"SELECT id FROM docs WHERE s = 'cat2' AND id BETWEEN 100 AND 1500 "
                     f"ORDER BY array_distance(emb, {lit(q)}), id LIMIT 10").fetchall()
    assert got == want
    # the bounds are inclusive: rows labelled exactly lo or hi (ids 102 and 1502 hold 'cat2') come back
    for edge, (lo, hi) in ((102, (102, 1500)), (1502, (100, 1502))):
        got = c.execute(f"SELECT id FROM knn_search('gw', {lit(X[edge])}, k := 3, lo := {lo}, hi := {hi}, "
                        "filter := 's = ''cat2''')").fetchall()
        assert got[0][0] == edge


def test_scalar_batch_form(con):
    c, X, rng = con
    Q = rng.standard_normal((40, D)).astype(np.float32)
    c.register("qs", knnsql.vectors_table(Q))
    rows = c.execute("SELECT id, knn('g', emb, 5, 'i BETWEEN 50 AND 60') FROM qs ORDER BY id").fetchall()
    match = matching(c, "i BETWEEN 50 AND 60")
    for qid, res in rows:
        ids = [r["id"] for r in res]
        assert len(ids) == 5 and set(ids) <= match
        want = [r[0] for r in truth(c, Q[qid], "i BETWEEN 50 AND 60", 5)]
        assert ids == want  # ~5% of the rows: the exact plan


def test_fewer_matches_than_k_and_none(con):
    c, X, rng = con
    q = rng.standard_normal(D).astype(np.float32)
    assert len(search(c, q, "i = 7", k=1000)) == len(matching(c, "i = 7"))
    assert search(c, q, "s = 'nothing'") == []


def test_deletes_and_reinserts_keep_attributes(con):
    c, X, rng = con
    c.execute("SELECT * FROM knn_index_create('gd', dim := 8)")
    c.execute("SELECT knn_index_insert('gd', id, emb, {'s': s, 'i': i}) FROM docs")
    gone = [r[0] for r in c.execute("SELECT id FROM docs WHERE s = 'cat4' LIMIT 50").fetchall()]
    c.execute(f"SELECT knn_index_delete('gd', id) FROM docs WHERE id IN ({','.join(map(str, gone))})")
    q = rng.standard_normal(D).astype(np.float32)
    got = {r[0] for r in c.execute(f"SELECT id FROM knn_search('gd', {lit(q)}, k := 1000, "
                                   "filter := 's = ''cat4''')").fetchall()}
    assert got == matching(c, "s = 'cat4'") - set(gone)
    # a re-insert replaces the attributes too
    c.execute(f"SELECT knn_index_insert('gd', id, emb, {{'s': 'moved', 'i': i}}) FROM docs WHERE id = {gone[0]}")
    got = [r[0] for r in c.execute(f"SELECT id FROM knn_search('gd', {lit(q)}, filter := 's = ''moved''')").fetchall()]
    assert got == [gone[0]]
    # optimize renumbers the nodes: attributes follow
    c.execute("SELECT * FROM knn_index_optimize('gd')")
    got = {r[0] for r in c.execute(f"SELECT id FROM knn_search('gd', {lit(q)}, k := 1000, "
                                   "filter := 's = ''cat4''')").fetchall()}
    assert got == matching(c, "s = 'cat4'") - set(gone)


def test_dump_restore_keeps_attributes(con):
    c, X, rng = con
    c.execute("CREATE TEMP TABLE parts AS SELECT * FROM knn_index_dump('g')")
    c.execute("SELECT knn_index_restore('g2', part, bytes) FROM parts")
    q = rng.standard_normal(D).astype(np.float32)
    for pred in ["s LIKE 'cat1%' AND i > 100", "d > '2024-11-01'", "b IS NULL"]:
        p = pred.replace("'", "''")
        a = c.execute(f"SELECT id FROM knn_search('g', {lit(q)}, filter := '{p}')").fetchall()
        b = c.execute(f"SELECT id FROM knn_search('g2', {lit(q)}, filter := '{p}')").fetchall()
        assert a == b and a


@pytest.mark.parametrize("pred,msg", [
    ("prise < 3", "unknown column 'prise'"),
    ("s = 3", "VARCHAR"),
    ("i = 'abc'", "BIGINT"),
    ("lower(s) = 'a'", "not supported"),
    ("i + 1 > 3", "not supported"),
    ("i > ", "byte"),
    ("(i > 3", "byte"),
    ("x LIKE 'a%'", "LIKE"),
    ("i", "BOOLEAN"),
    ("d = '2024-02-30'", "date"),
    ("i IN (SELECT 1)", "not supported"),
    ("i = j", "column"),
])
def test_bad_filters_are_clear_errors(con, pred, msg):
    c, X, rng = con
    p = pred.replace("'", "''")
    with pytest.raises(duckdb.Error) as err:
        c.execute(f"SELECT * FROM knn_search('g', {lit(np.ones(D))}, filter := '{p}')").fetchall()
    assert msg.lower() in str(err.value).lower(), str(err.value)


def test_hostile_filter_strings_do_not_crash(con):
    c, X, rng = con
    for text in ["(" * 5000 + "i = 1" + ")" * 5000, "NOT " * 10000 + "b", "'" * 999, "i IN (" + "1," * 50000 + "1)",
                 "\x00", "i = 1; DROP TABLE docs", "s = '\u00e9\u00e8'"]:
        p = text.replace("'", "''")
        try:
            c.execute(f"SELECT * FROM knn_search('g', {lit(np.ones(D))}, filter := '{p}')").fetchall()
        except duckdb.ParserException:
            pass  # DuckDB's own parser refused the statement (older versions, ~2,000 quotes): nothing ran
        except duckdb.Error as exc:
            assert "filter" in str(exc).lower()
    assert c.execute("SELECT count(*) FROM docs").fetchone()[0] == N


def test_insert_errors_write_nothing(con):
    c, X, rng = con
    c.execute("SELECT * FROM knn_index_create('ge', dim := 8)")
    c.execute("SELECT knn_index_insert('ge', id, emb, {'s': s}) FROM docs WHERE id < 10")
    with pytest.raises(duckdb.Error, match="VARCHAR"):
        c.execute("SELECT knn_index_insert('ge', id, emb, {'s': id}) FROM docs WHERE id >= 10 AND id < 20")
    assert c.execute("SELECT rows FROM knn_indexes() WHERE name = 'ge'").fetchone()[0] == 10
    with pytest.raises(duckdb.Error, match="cannot hold"):
        c.execute("SELECT knn_index_insert('ge', id, emb, {'v': emb}) FROM docs WHERE id < 5")
    c.execute("SELECT * FROM knn_index_create('fe', dim := 8, kind := 'flat')")
    with pytest.raises(duckdb.Error, match="graph"):
        c.execute("SELECT knn_index_insert('fe', id, emb, {'s': s}) FROM docs WHERE id < 5")
    c.execute("SELECT * FROM knn_index_create('gn', dim := 8)")
    c.execute("SELECT knn_index_insert('gn', id, emb) FROM docs WHERE id < 5")
    with pytest.raises(duckdb.Error, match="no attribute columns"):
        c.execute(f"SELECT * FROM knn_search('gn', {lit(np.ones(D))}, filter := 'i = 1')").fetchall()


@pytest.mark.parametrize("share", [0.3, 0.08, 0.01])
def test_k_rows_when_the_matching_rows_are_far_from_the_query(con, share):
    """The adversarial case for a filtered beam: the matching rows are the ones farthest from the query,
    so the beam meets none near its start. The budget hands over to the exact scan: k rows, the true ones."""
    c, X, rng = con
    q = rng.standard_normal(D).astype(np.float32) * 3
    d = ((X - q) ** 2).sum(1)
    far = np.argsort(-d, kind="stable")  # farthest first
    rank = np.empty(N, dtype=np.int64)
    rank[far] = np.arange(N)
    name = f"gf{int(share * 100)}"
    c.execute(f"SELECT * FROM knn_index_create('{name}', dim := 8)").fetchall()
    c.register("far_src", knnsql.vectors_table(X, columns={"far": rank}))
    c.execute(f"SELECT knn_index_insert('{name}', id, emb, {{'far': far}}) FROM far_src").fetchall()
    c.unregister("far_src")
    cut = int(share * N)
    got = [r[0] for r in c.execute(f"SELECT id FROM knn_search('{name}', {lit(q)}, k := 10, "
                                   f"filter := 'far < {cut}')").fetchall()]
    keep = np.flatnonzero(rank < cut)
    want = keep[np.lexsort((keep, d[keep]))][:10].tolist()
    assert len(got) == 10 and set(got) <= set(keep.tolist())
    assert len(set(got) & set(want)) >= 9


def test_timestamp_precisions_and_infinity(con):
    c, X, rng = con
    c.execute("SELECT * FROM knn_index_create('gt', dim := 8)").fetchall()
    c.execute("""SELECT knn_index_insert('gt', id, emb, {'s': CASE WHEN id = 0 THEN 'infinity'::TIMESTAMP_S
                 ELSE (TIMESTAMP '2024-01-01' + to_seconds(id::BIGINT))::TIMESTAMP_S END,
                 'ms': (TIMESTAMP '2024-01-01' + to_seconds(id::BIGINT))::TIMESTAMP_MS,
                 'ts': CASE WHEN id = 1 THEN '-infinity'::TIMESTAMP ELSE TIMESTAMP '2024-01-01' END})
                 FROM docs WHERE id < 100""").fetchall()
    q = lit(X[5])
    got = {r[0] for r in c.execute(f"SELECT id FROM knn_search('gt', {q}, k := 100, "
                                   "filter := 's >= ''2024-01-01 00:00:50''')").fetchall()}
    assert got == set(range(50, 100)) | {0}  # 'infinity' is above every timestamp
    got = {r[0] for r in c.execute(f"SELECT id FROM knn_search('gt', {q}, k := 100, "
                                   "filter := 'ms < ''2024-01-01 00:00:03''')").fetchall()}
    assert got == {0, 1, 2}
    got = {r[0] for r in c.execute(f"SELECT id FROM knn_search('gt', {q}, k := 100, "
                                   "filter := 'ts < ''2000-01-01''')").fetchall()}
    assert got == {1}


SORTED_PREDICATES = [
    "v < 40", "v <= 40", "v > 5960", "v >= 5960", "v = 77", "v BETWEEN 100 AND 180", "v IN (3, 9, 5000, -1)",
    "v < 40.5", "v IN (7, 7.0, 8.5)", "f < -2.3", "f > 2.4", "f > 1e308", "f BETWEEN -0.0 AND 0.001",
    "f = 0", "t = 'w17'", "t IN ('w1', 'w2', 'absent')", "t LIKE 'w12%'", "dt < DATE '2000-01-20'",
    "v < 300 AND t = 'w3'", "t = 'w5' AND v < 900 AND f > 0", "v < 50 AND NOT (t = 'w1')",
    "v < 30 OR f > 2.5", "NOT (v >= 40)", "v <> 5",
]


@pytest.fixture(scope="module")
def sorted_index():
    """6,000 rows in one insert (the graph sorts each column once it holds 4,096 rows), then 300 appended,
    which the orders do not cover (the tail is scanned): filters answered through the orders must equal
    DuckDB's WHERE row for row."""
    rng = np.random.default_rng(5)
    n = 6300
    X = rng.standard_normal((n, D)).astype(np.float32)
    with knnsql.connect() as db:
        c = db.con
        c.register("src2", knnsql.vectors_table(X))
        c.execute("""CREATE TABLE big AS SELECT id, emb,
            CASE WHEN id % 31 = 0 THEN NULL ELSE (id * 7919) % 6000 - 1 END::BIGINT AS v,
            CASE WHEN id % 37 = 0 THEN 'NaN'::DOUBLE WHEN id % 41 = 0 THEN -0.0 WHEN id % 43 = 0 THEN NULL
                 ELSE emb[2] END::DOUBLE AS f,
            CASE WHEN id % 19 = 0 THEN NULL ELSE 'w' || (id % 50) END AS t,
            DATE '2000-01-01' + (id % 400)::INTEGER AS dt
            FROM src2""")
        c.execute("SELECT * FROM knn_index_create('gs', dim := 8)")
        c.execute("SELECT knn_index_insert('gs', id, emb, {'v': v, 'f': f, 't': t, 'dt': dt}) FROM big "
                  "WHERE id < 6000")
        c.execute("SELECT knn_index_insert('gs', id, emb, {'v': v, 'f': f, 't': t, 'dt': dt}) FROM big "
                  "WHERE id >= 6000")
        yield c, rng


def _all_matching(c, index, q, pred):
    p = pred.replace("'", "''")
    return {r[0] for r in c.execute(f"SELECT id FROM knn_search('{index}', {lit(q)}, k := 7000, "
                                    f"filter := '{p}')").fetchall()}


@pytest.mark.parametrize("pred", SORTED_PREDICATES)
def test_sorted_orders_equal_duckdb_where(sorted_index, pred):
    c, rng = sorted_index
    q = rng.standard_normal(D).astype(np.float32)
    want = {r[0] for r in c.execute(f"SELECT id FROM big WHERE {pred}").fetchall()}
    assert _all_matching(c, "gs", q, pred) == want
    p = pred.replace("'", "''")
    near = [r[0] for r in c.execute(f"SELECT id FROM knn_search('gs', {lit(q)}, k := 10, filter := '{p}') "
                                    "ORDER BY rank").fetchall()]
    truth_ids = [r[0] for r in c.execute(f"SELECT id FROM big WHERE {pred} ORDER BY array_distance(emb, {lit(q)}), id "
                                         "LIMIT 10").fetchall()]
    assert len(near) == min(10, len(want))
    if len(want) <= 300:  # a selective filter is answered by the exact scan of its rows
        assert near == truth_ids


def test_sorted_orders_after_delete_optimize_and_restore(sorted_index):
    c, rng = sorted_index
    c.execute("SELECT * FROM knn_index_create('gs2', dim := 8)")
    c.execute("SELECT knn_index_insert('gs2', id, emb, {'v': v, 't': t}) FROM big")
    c.execute("SELECT knn_index_delete('gs2', id) FROM big WHERE v < 20")
    q = rng.standard_normal(D).astype(np.float32)
    pred = "v < 60 AND t <> 'w3'"
    want = {r[0] for r in c.execute(f"SELECT id FROM big WHERE {pred} AND v >= 20").fetchall()}
    assert _all_matching(c, "gs2", q, pred) == want
    c.execute("SELECT * FROM knn_index_optimize('gs2')")  # renumbers the nodes: the orders are rebuilt
    assert _all_matching(c, "gs2", q, pred) == want
    c.execute("CREATE TEMP TABLE parts2 AS SELECT * FROM knn_index_dump('gs2')")
    c.execute("SELECT knn_index_restore('gs3', part, bytes) FROM parts2")  # restored: sorted again on load
    assert _all_matching(c, "gs3", q, pred) == want
