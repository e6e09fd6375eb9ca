"""SQL indexes: lifecycle, results equal to the numpy API, persistence in the database file, errors,
concurrency across connections."""

import threading

import duckdb
import numpy as np
import pytest

import knnsql


@pytest.fixture
def vecs():
    rng = np.random.default_rng(11)
    return rng.standard_normal((3000, 16)).astype(np.float32), rng.standard_normal((40, 16)).astype(np.float32)


def load(db, X, name="t"):
    tbl = knnsql.vectors_table(X)
    db.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM tbl")


def build(db, name, kind="graph", metric="l2", dim=16, table="t", **opts):
    extra = "".join(f", {k} := {v}" for k, v in opts.items())
    db.execute(f"SELECT * FROM knn_index_create('{name}', dim := {dim}, metric := '{metric}', kind := '{kind}'{extra})").fetchall()
    return db.execute(f"SELECT knn_index_insert('{name}', id, emb) FROM {table}").fetchall()[0][0]


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_flat_index_equals_numpy_api(db, vecs, metric):
    X, Q = vecs
    load(db, X)
    assert build(db, "f", kind="flat", metric=metric) == len(X)
    ref = knnsql.Index(16, metric)
    ref.add(X)
    for q in Q[:5]:
        rows = db.execute("SELECT id, distance, rank FROM knn_search('f', $q::FLOAT[16], k := 7)", {"q": q.tolist()}).fetchall()
        ids, d = ref.search(q, 7)
        assert [r[0] for r in rows] == ids[0].tolist()
        np.testing.assert_allclose([r[1] for r in rows], d[0], rtol=1e-5, atol=1e-6)
        assert [r[2] for r in rows] == list(range(1, 8))


def test_graph_index_recall_through_sql(db, vecs):
    X, Q = vecs
    load(db, X)
    build(db, "g", m=12)
    exact = knnsql.Index(16)
    exact.add(X)
    truth, _ = exact.search(Q, 10)
    hits = 0
    for q, t in zip(Q, truth):
        rows = db.execute("SELECT id FROM knn_search('g', $q::FLOAT[16], k := 10, ef := 100)", {"q": q.tolist()}).fetchall()
        hits += len({r[0] for r in rows} & set(t.tolist()))
    assert hits / truth.size >= 0.95


def test_knn_scalar_batch_equals_knn_search(db, vecs):
    X, Q = vecs
    load(db, X)
    load(db, Q, name="queries")
    build(db, "g")
    batch = db.execute("SELECT id, knn('g', emb, 5, NULL, NULL, 64) FROM queries ORDER BY id").fetchall()
    assert len(batch) == len(Q)
    for qid, res in batch:
        rows = db.execute("SELECT id, distance FROM knn_search('g', $q::FLOAT[16], k := 5, ef := 64)",
                          {"q": Q[qid].tolist()}).fetchall()
        assert [(e["id"], e["distance"]) for e in res] == rows
    # unnest form: one row per (query, neighbour)
    n = db.execute("SELECT count(*) FROM queries q, unnest(knn('g', q.emb, 3)) t(r)").fetchall()[0][0]
    assert n == 3 * len(Q)


def test_knn_scalar_null_and_k_larger_than_index(db):
    db.execute("SELECT * FROM knn_index_create('s', dim := 2, kind := 'flat')").fetchall()
    db.execute("SELECT knn_index_insert('s', i, [i, 0]::FLOAT[2]) FROM range(3) r(i)").fetchall()
    rows = db.execute("SELECT knn('s', q, 10) FROM (VALUES ([0, 0]::FLOAT[2]), (NULL)) v(q)").fetchall()
    assert [e["id"] for e in rows[0][0]] == [0, 1, 2]
    assert rows[1][0] is None


def test_insert_delete_replace_and_ids(db, vecs):
    X, _ = vecs
    load(db, X)
    build(db, "g")
    assert db.execute("SELECT knn_index_delete('g', id) FROM t WHERE id % 2 = 0").fetchall()[0][0] == 1500
    got = db.execute("SELECT id FROM knn_search('g', $q::FLOAT[16], k := 20)", {"q": X[10].tolist()}).fetchall()
    assert all(r[0] % 2 == 1 for r in got)
    # re-insert replaces: id 1 now sits where id 10 was
    db.execute("SELECT knn_index_insert('g', 1, $v::FLOAT[16])", {"v": X[10].tolist()}).fetchall()
    top = db.execute("SELECT id, distance FROM knn_search('g', $q::FLOAT[16], k := 1)", {"q": X[10].tolist()}).fetchall()
    assert top == [(1, 0.0)]
    info = db.execute("SELECT rows, deleted FROM knn_indexes() WHERE name = 'g'").fetchall()[0]
    assert info == (1500, 1501)
    db.execute("SELECT * FROM knn_index_optimize('g')").fetchall()
    info = db.execute("SELECT rows, deleted, last_optimize IS NOT NULL FROM knn_indexes() WHERE name = 'g'").fetchall()[0]
    assert info == (1500, 0, True)
    ids = {r[0] for r in db.execute("SELECT id FROM knn_index_ids('g')").fetchall()}
    assert ids == set(range(1, 3000, 2))


def test_dump_restore_in_database_file(tmp_path, vecs):
    X, Q = vecs
    path = tmp_path / "app.duckdb"
    with knnsql.connect(path) as db:
        load(db, X)
        build(db, "docs_emb", metric="cosine")
        before = [db.execute("SELECT id, distance FROM knn_search('docs_emb', $q, k := 10)", {"q": q.tolist()}).fetchall()
                  for q in Q[:10]]
        db.execute("CREATE TABLE docs_emb_index AS SELECT * FROM knn_index_dump('docs_emb')")
    with knnsql.connect(path) as db:
        assert db.execute("SELECT count(*) FROM knn_indexes()").fetchall()[0][0] == 0  # registry is per open database
        assert db.execute("SELECT knn_index_restore('docs_emb', part, bytes) FROM docs_emb_index").fetchall()[0][0] == len(X)
        after = [db.execute("SELECT id, distance FROM knn_search('docs_emb', $q, k := 10)", {"q": q.tolist()}).fetchall()
                 for q in Q[:10]]
    assert before == after


def test_restore_rejects_damage(db, vecs):
    X, _ = vecs
    load(db, X[:300])
    build(db, "g")
    db.execute("CREATE TABLE d AS SELECT * FROM knn_index_dump('g')")
    db.execute("SELECT * FROM knn_index_drop('g')").fetchall()
    cases = {
        "SELECT knn_index_restore('g', part, bytes[1:100]) FROM d": "corrupt graph index bytes",
        "SELECT knn_index_restore('g', part + 1, bytes) FROM d": "parts of index 'g' must be numbered 0..0",
        "SELECT knn_index_restore('g', part, 'hello'::BLOB) FROM d": "knn_index_restore: corrupt graph index bytes",
        "SELECT knn_index_restore('g', part, NULL) FROM d": "part and bytes must not be NULL",
    }
    for sql, msg in cases.items():
        with pytest.raises(duckdb.Error, match=msg.replace("(", r"\(").replace(")", r"\)")):
            db.execute(sql).fetchall()
    assert db.execute("SELECT count(*) FROM knn_indexes()").fetchall()[0][0] == 0
    assert db.execute("SELECT knn_index_restore('g', part, bytes) FROM d").fetchall()[0][0] == 300
    with pytest.raises(duckdb.Error, match="index 'g' already exists"):
        db.execute("SELECT knn_index_restore('g', part, bytes) FROM d").fetchall()


INDEX_ERRORS = [
    ("SELECT * FROM knn_index_create('x')", "knn_index_create: dim is required, e.g. knn_index_create('x', dim := 384)"),
    ("SELECT * FROM knn_index_create('x', dim := 0)", "knn_index_create: dim must be between 1 and 65536, got 0"),
    ("SELECT * FROM knn_index_create('x', dim := 4, metric := 'hamming')", "knn_index_create: unknown metric 'hamming'"),
    ("SELECT * FROM knn_index_create('x', dim := 4, kind := 'ivf')", "knn_index_create: unknown kind 'ivf'"),
    ("SELECT * FROM knn_index_create('x', dim := 4, m := 1)", "'m' must be between 2 and 256, got 1"),
    ("SELECT * FROM knn_index_create('x', dim := 4, ef := 0)", "'ef' must be between 1 and 100000, got 0"),
    ("SELECT * FROM knn_index_create('x', dim := 4, kind := 'flat', ef := 10)", "'ef' applies to kind 'graph' only"),
    ("SELECT * FROM knn_index_create('', dim := 4)", "knn_index_create: index name must not be empty"),
    ("SELECT * FROM knn_index_create(NULL, dim := 4)", "knn_index_create: index name must not be NULL"),
    ("SELECT * FROM knn_index_create('x', dim := 4, bogus := 1)", 'Invalid named parameter "bogus"'),
    ("SELECT * FROM knn_index_create('g', dim := 4)", "index 'g' already exists; drop it first with knn_index_drop('g')"),
    ("SELECT * FROM knn_search('nope', [1, 2, 3, 4])", "knn_search: unknown index 'nope'; create it with knn_index_create"),
    ("SELECT * FROM knn_search('g', [1, 2, 3])", "knn_search: dimension mismatch: the query has 3 elements but index 'g' has dim 4"),
    ("SELECT * FROM knn_search('g', [1, 2, 3, 4], k := 0)", "knn_search: k must be >= 1, got 0"),
    ("SELECT * FROM knn_search('g', [1, 2, 3, 4], ef := 0)", "knn_search: ef must be >= 1, got 0"),
    ("SELECT * FROM knn_search('g', NULL)", "knn_search: query must not be NULL"),
    ("SELECT * FROM knn_search('g', 'abc')", "knn_search: query must be a vector"),
    ("SELECT * FROM knn_search('g', [1, NULL, 3, 4])", "knn_search: query contains a NULL element at position 1"),
    ("SELECT * FROM knn_search('g', ['nan'::FLOAT, 1, 2, 3])", "knn_search: query has a NaN or Inf at position 0"),
    ("SELECT knn('nope', [1, 2]::FLOAT[2], 3)", "knn: unknown index 'nope'"),
    ("SELECT knn('g', [1, 2]::FLOAT[2], 3)", "knn: dimension mismatch: the query has 2 elements but index 'g' has dim 4"),
    ("SELECT knn('g', [1, 2, 3, 4]::FLOAT[4], 0)", "knn: k must be >= 1"),
    ("SELECT knn(n, [1, 2, 3, 4]::FLOAT[4], 1) FROM (VALUES ('g'), ('f')) v(n)", "every row of one knn(...) call must name the same index"),
    ("SELECT knn_index_insert('nope', 1, [1, 2]::FLOAT[2])", "knn_index_insert: unknown index 'nope'"),
    ("SELECT knn_index_insert('g', 1, [1, 2]::FLOAT[2])", "knn_index_insert: dimension mismatch: the vector of id 1 has 2 elements but index 'g' has dim 4"),
    ("SELECT knn_index_insert('g', 1, ['nan'::FLOAT, 1, 1, 1]::FLOAT[4])", "knn_index_insert: vector with id 1 (row 0 of this batch) has a NaN or Inf"),
    ("SELECT knn_index_insert('g', 7, [1, 2, 3, 4]::FLOAT[4]) FROM range(2)", "knn_index_insert: id 7 appears more than once in this call"),
    ("SELECT knn_index_insert('g', 1, 'abc')", "knn_index_insert: 'vec' must be a vector"),
    ("SELECT knn_index_insert('g', 1, [1, NULL, 3, 4]::FLOAT[4])", "knn_index_insert: the vector of id 1 contains a NULL element"),
    ("SELECT knn_index_delete('nope', 1)", "knn_index_delete: unknown index 'nope'"),
    ("SELECT * FROM knn_index_optimize('nope')", "knn_index_optimize: unknown index 'nope'"),
    ("SELECT * FROM knn_index_ids('nope')", "knn_index_ids: unknown index 'nope'"),
    ("SELECT * FROM knn_index_dump('nope')", "knn_index_dump: unknown index 'nope'"),
    ("SELECT * FROM knn_index_dump('f')", "knn_index_dump: index 'f' is flat; only graph indexes are dumped"),
]


@pytest.mark.parametrize("sql,message", INDEX_ERRORS, ids=[m[:50] for _, m in INDEX_ERRORS])
def test_index_error_messages(db, sql_error, sql, message):
    assert message in sql_error("SELECT * FROM knn_index_create('g', dim := 4)",
                                "SELECT * FROM knn_index_create('f', dim := 4, kind := 'flat')",
                                "SELECT knn_index_insert('g', i, [i, 1, 2, 3]::FLOAT[4]) FROM range(10) r(i)", sql)
    # the index is unharmed
    assert db.execute("SELECT rows FROM knn_indexes() WHERE name = 'g'").fetchall()[0][0] == 10


def test_drop_unknown_is_not_an_error(db):
    assert db.execute("SELECT * FROM knn_index_drop('nope')").fetchall() == [("nope", False)]


def test_registry_is_shared_by_connections_of_one_database_and_safe_under_concurrency(tmp_path, vecs):
    X, Q = vecs
    db = knnsql.connect(tmp_path / "c.duckdb")
    load(db, X)
    build(db, "g", m=8, ef_construction=50)
    other = db.con.cursor()  # a second connection to the same database
    errors = []

    def search():
        try:
            cur = db.con.cursor()
            for i in range(100):
                rows = cur.execute("SELECT id FROM knn_search('g', $q::FLOAT[16], k := 5)",
                                   {"q": Q[i % len(Q)].tolist()}).fetchall()
                assert len(rows) == 5 and all(0 <= r[0] < 6000 for r in rows)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    for start in range(3000, 6000, 1000):
        load(other, X[:1000] + 1, name="more")
        other.execute(f"SELECT knn_index_insert('g', id + {start}, emb) FROM more").fetchall()
        other.execute(f"SELECT knn_index_delete('g', id) FROM range({start - 1000}, {start - 990}) r(id)").fetchall()
    for t in threads:
        t.join()
    assert not errors, errors
    assert db.execute("SELECT rows FROM knn_indexes()").fetchall()[0][0] == 6000 - 30
    db.close()


def test_knn_scalar_over_flat_index_batches_and_keeps_row_order(db, vecs):
    """knn() over a flat index answers a chunk in one blocked pass; NULL queries stay NULL in place."""
    X, Q = vecs
    load(db, X)
    build(db, "f", kind="flat")
    load(db, Q, name="queries")
    rows = db.execute("""SELECT id, knn('f', (CASE WHEN id % 5 = 3 THEN NULL ELSE emb::FLOAT[] END)::FLOAT[16], 4) FROM queries
                         ORDER BY id""").fetchall()
    ref = knnsql.Index(16)
    ref.add(X)
    ids, _ = ref.search(Q, 4)
    for qid, res in rows:
        if qid % 5 == 3:
            assert res is None
        else:
            assert [e["id"] for e in res] == ids[qid].tolist()


def test_restore_sets_the_source_table_given_as_fourth_argument(db, vecs):
    """The bytes do not hold the source: knn_index_restore's optional fourth argument sets it, so the stale-index
    query of the README still finds the index after a restore."""
    X, _ = vecs
    load(db, X[:200])
    build(db, "g")
    db.execute("CREATE TABLE d AS SELECT * FROM knn_index_dump('g')")
    db.execute("SELECT * FROM knn_index_drop('g')").fetchall()
    for sql, msg in {
        "SELECT knn_index_restore('g', part, bytes, '') FROM d": "source must name the table",
        "SELECT knn_index_restore('g', part, bytes, repeat('t', 300)) FROM d": "1 to 255 bytes",
        "SELECT knn_index_restore('g', part, bytes, t) FROM (SELECT *, 'a' AS t FROM d UNION ALL "
        "SELECT part + 1, bytes, 'b' FROM d)": "same source",
    }.items():
        with pytest.raises(duckdb.Error, match=msg):
            db.execute(sql).fetchall()
    assert db.execute("SELECT knn_index_restore('g', part, bytes, 'docs') FROM d").fetchall()[0][0] == 200
    assert db.execute("SELECT source FROM knn_indexes() WHERE name = 'g'").fetchall() == [("docs",)]


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_sq8_flat_index_answers_as_the_float_one(db, vecs, metric, tmp_path):
    """quantization := 'sq8' keeps codes in memory and floats in a file under vectors_dir; knn_search gives the
    float flat index's rows and distances, windowed too, and knn_indexes() reports the heap and the file."""
    X, Q = vecs
    X = np.concatenate([X, X[:4000] * 0.5])  # 6,000 x 16 rows: enough for the code screen
    load(db, X)
    build(db, "f", kind="flat", metric=metric)
    build(db, "c", kind="flat", metric=metric, quantization="'sq8'", vectors_dir=f"'{tmp_path}'")
    for q in Q[:10]:
        got = [db.execute(f"SELECT id, distance FROM knn_search('{n}', $q, k := 10)", {"q": q.tolist()}).fetchall()
               for n in ("f", "c")]
        assert got[0] == got[1]
    info = dict(db.execute("SELECT name, [quantization, memory_bytes::VARCHAR, disk_bytes::VARCHAR] FROM knn_indexes()"
                           ).fetchall())
    assert info["f"][0] == "none" and info["c"][0] == "sq8"
    assert int(info["c"][2]) >= X.nbytes and int(info["f"][2]) == 0
    assert int(info["c"][1]) < int(info["f"][1])


def test_sq8_options_are_checked(db):
    for opts, message in {"quantization := 'pq'": "quantization 'pq' is not known",
                          "kind := 'flat', quantization := 'sq4'": "'sq4' is built for kind := 'graph'",
                          "kind := 'flat', quantization := 'sq8', metric := 'ip'": "bounds Euclidean distances",
                          "kind := 'flat', vectors_dir := '/tmp'": "vectors_dir applies to quantization := 'sq8' or "
                                                                   "'sq4' only",
                          "vectors_dir := '/tmp'": "vectors_dir applies to quantization",
                          }.items():
        with pytest.raises(duckdb.Error, match=message):
            db.execute(f"SELECT * FROM knn_index_create('x', dim := 4, {opts})").fetchall()
    assert db.execute("SELECT count(*) FROM knn_indexes()").fetchall()[0][0] == 0
