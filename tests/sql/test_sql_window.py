"""Window search from SQL: label types, bounds, k rows whenever k rows are in the window, agreement
with the exact answer (knn_exact over the same WHERE), inserts after build, deletes."""

import numpy as np
import pytest

import knnsql

LABELS = {
    "double": "(id * 0.37) % 100",
    "bigint": "CAST(id % 400 AS BIGINT)",
    "timestamp": "TIMESTAMP '2024-01-01' + to_seconds(CAST(id % 1000 AS BIGINT) * 3600)",
    "date": "DATE '2024-01-01' + CAST(id % 300 AS INTEGER)",
}
WINDOWS = {
    "double": [("1.5", "1.9"), ("0", "50"), ("99.9", "1000"), ("5", "4"), ("NULL", "3"), ("10", "NULL")],
    "bigint": [("7", "7"), ("0", "399"), ("100", "110"), ("500", "600")],
    "timestamp": [("TIMESTAMP '2024-01-02 00:00:00'", "TIMESTAMP '2024-01-02 05:00:00'"),
                  ("TIMESTAMP '2024-01-01'", "TIMESTAMP '2024-02-15'"), ("DATE '2024-01-03'", "DATE '2024-01-04'")],
    "date": [("DATE '2024-01-05'", "DATE '2024-01-05'"), ("DATE '2024-03-01'", "DATE '2024-06-01'"),
             ("TIMESTAMP '2024-01-05 12:00'", "TIMESTAMP '2024-01-07 00:00'")],
}


@pytest.fixture
def docs(db):
    rng = np.random.default_rng(21)
    X = rng.standard_normal((4000, 8)).astype(np.float32)
    tbl = knnsql.vectors_table(X)
    db.execute("CREATE TABLE docs AS SELECT * FROM tbl")
    return db, X


@pytest.mark.parametrize("kind", ["graph", "flat"])
@pytest.mark.parametrize("label_type", list(LABELS))
def test_window_matches_exact_where(docs, kind, label_type):
    db, X = docs
    expr = LABELS[label_type]
    db.execute(f"CREATE TABLE lab AS SELECT id, emb, {expr} AS label FROM docs")
    db.execute(f"SELECT * FROM knn_index_create('w', dim := 8, kind := '{kind}')").fetchall()
    db.execute("SELECT knn_index_insert('w', id, emb, label) FROM lab").fetchall()
    info = db.execute("SELECT label_type, label_min <= label_max FROM knn_indexes()").fetchall()[0]
    assert info[1] is True
    for lo, hi in WINDOWS[label_type]:
        for qi in (3, 1777):
            q = X[qi].tolist()
            got = db.execute(f"SELECT id, distance FROM knn_search('w', $q::FLOAT[8], k := 10, ef := 200, "
                             f"lo := {lo}, hi := {hi})", {"q": q}).fetchall()
            where = " AND ".join(c for c in [f"label >= {lo}" if lo != "NULL" else "",
                                             f"label <= {hi}" if hi != "NULL" else ""] if c) or "true"
            truth = db.execute(f"SELECT knn_exact(id, emb, $q::FLOAT[8], 10) FROM lab WHERE {where}",
                               {"q": q}).fetchall()[0][0] or []
            assert len(got) == len(truth), (lo, hi)
            got_ids = {r[0] for r in got}
            assert len(got_ids & {t["id"] for t in truth}) >= len(truth) - 1, (lo, hi)
            inside = db.execute(f"SELECT count(*) FROM lab WHERE id IN ({','.join(map(str, got_ids)) or 'NULL'}) "
                                f"AND {where}").fetchall()[0][0]
            assert inside == len(got_ids), "every row inside the window"


def test_knn_scalar_windows_per_row(docs):
    db, X = docs
    db.execute("SELECT * FROM knn_index_create('w', dim := 8)").fetchall()
    db.execute("SELECT knn_index_insert('w', id, emb, id) FROM docs").fetchall()
    rows = db.execute("""SELECT q.id, [r.id FOR r IN knn('w', q.emb, 3, q.id - 10, q.id + 10)]
                         FROM docs q WHERE q.id IN (5, 100, 3990) ORDER BY q.id""").fetchall()
    for qid, ids in rows:
        assert qid in ids and all(qid - 10 <= i <= qid + 10 for i in ids) and len(ids) == 3
    # NULL bounds: open sides; both NULL: no window
    n = db.execute("SELECT len(knn('w', emb, 5, NULL, 3)) FROM docs WHERE id = 0").fetchall()[0][0]
    assert n == 4
    n = db.execute("SELECT len(knn('w', emb, 5, NULL, NULL, 32)) FROM docs WHERE id = 0").fetchall()[0][0]
    assert n == 5


def test_inserts_after_build_and_deletes(docs):
    db, X = docs
    db.execute("SELECT * FROM knn_index_create('w', dim := 8)").fetchall()
    db.execute("SELECT knn_index_insert('w', id, emb, id) FROM docs WHERE id < 3000").fetchall()
    db.execute("SELECT knn_index_insert('w', id, emb, id) FROM docs WHERE id >= 3000").fetchall()
    got = db.execute("SELECT id FROM knn_search('w', $q::FLOAT[8], k := 1, lo := 3500, hi := 3500)",
                     {"q": X[0].tolist()}).fetchall()
    assert got == [(3500,)]
    db.execute("SELECT knn_index_delete('w', id) FROM range(3400, 3600) r(id)").fetchall()
    got = db.execute("SELECT id FROM knn_search('w', $q::FLOAT[8], k := 50, lo := 3300, hi := 3700)",
                     {"q": X[3500].tolist()}).fetchall()
    assert len(got) == 50 and not any(3400 <= r[0] < 3600 for r in got)


def test_window_survives_dump_restore(docs):
    db, X = docs
    db.execute("SELECT * FROM knn_index_create('w', dim := 8)").fetchall()
    db.execute("SELECT knn_index_insert('w', id, emb, DATE '2020-01-01' + CAST(id AS INTEGER)) FROM docs").fetchall()
    db.execute("CREATE TABLE d AS SELECT * FROM knn_index_dump('w')")
    db.execute("SELECT * FROM knn_index_drop('w')").fetchall()
    db.execute("SELECT knn_index_restore('w', part, bytes) FROM d").fetchall()
    assert db.execute("SELECT label_type FROM knn_indexes()").fetchall() == [("DATE",)]
    got = db.execute("SELECT id FROM knn_search('w', $q::FLOAT[8], k := 3, lo := DATE '2020-01-11', "
                     "hi := DATE '2020-01-11')", {"q": X[0].tolist()}).fetchall()
    assert got == [(10,)]


WINDOW_ERRORS = [
    ("SELECT * FROM knn_search('plain', [1, 2], lo := 1)", "knn_search: the index has no labels, so 'lo' cannot apply"),
    ("SELECT * FROM knn_search('num', [1, 2], lo := TIMESTAMP '2020-01-01')",
     "knn_search: 'lo' is a TIMESTAMP but the index's labels are DOUBLE; give a DOUBLE bound"),
    ("SELECT * FROM knn_search('num', [1, 2], hi := 'abc')", "knn_search: 'hi' must be DOUBLE, FLOAT, an integer type"),
    ("SELECT * FROM knn_search('num', [1, 2], lo := 'nan'::DOUBLE)", "knn_search: 'lo' must not be NaN"),
    ("SELECT knn_index_insert('num', 9, [1, 2]::FLOAT[2], TIMESTAMP '2020-01-01')",
     "index 'num' has DOUBLE labels; this insert gives TIMESTAMP ones"),
    ("SELECT knn_index_insert('num', 9, [1, 2]::FLOAT[2], 'x')", "knn_index_insert: 'label' must be DOUBLE, FLOAT"),
    ("SELECT knn('num', [1, 2]::FLOAT[2], 3, DATE '2020-01-01', NULL)", "knn: 'lo' is a DATE but the index's labels are DOUBLE"),
]


@pytest.mark.parametrize("sql,message", WINDOW_ERRORS, ids=[m[:40] for _, m in WINDOW_ERRORS])
def test_window_errors(sql_error, sql, message):
    assert message in sql_error("SELECT * FROM knn_index_create('plain', dim := 2)",
                                "SELECT knn_index_insert('plain', 1, [1, 2]::FLOAT[2])",
                                "SELECT * FROM knn_index_create('num', dim := 2)",
                                "SELECT knn_index_insert('num', 1, [1, 2]::FLOAT[2], 5.0)", sql)
