"""Quantized graph indexes in SQL: knn_index_create(kind := 'graph', quantization := 'sq8' | 'sq4'),
knn_search(..., rerank := ...), what knn_indexes() reports, and the messages that name the fix."""

import duckdb
import numpy as np
import pytest

import knnsql


def clustered(rng, n, dim, centers=30):
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    return (c[rng.integers(0, centers, n)] + 0.6 * rng.standard_normal((n, dim))).astype(np.float32)


@pytest.fixture
def vecs():
    rng = np.random.default_rng(3)
    return clustered(rng, 4000, 32), clustered(rng, 30, 32)


def load(db, X, name="t"):
    tbl = knnsql.vectors_table(X)
    db.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM tbl")


def build(db, name, table="t", dim=32, **opts):
    extra = "".join(f", {k} := {v}" for k, v in opts.items())
    db.execute(f"SELECT * FROM knn_index_create('{name}', dim := {dim}{extra})").fetchall()
    return db.execute(f"SELECT knn_index_insert('{name}', id, emb) FROM {table}").fetchall()[0][0]


def search(db, name, q, k=10, **opts):
    extra = "".join(f", {k_} := {v}" for k_, v in opts.items())
    return db.execute(f"SELECT id, distance FROM knn_search('{name}', $q::FLOAT[{len(q)}], k := {k}{extra})",
                      {"q": q.tolist()}).fetchall()


@pytest.mark.parametrize("bits", ["sq8", "sq4"])
@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_quantized_graph_answers_through_sql(db, vecs, tmp_path, metric, bits):
    X, Q = vecs
    load(db, X)
    build(db, "g", kind="'graph'", metric=f"'{metric}'", quantization=f"'{bits}'", vectors_dir=f"'{tmp_path}'")
    exact = knnsql.Index(32, metric)
    exact.add(X)
    truth, tdist = exact.search(Q, 10)
    hits = 0
    for q, t, td in zip(Q, truth, tdist):
        rows = search(db, "g", q, ef=128)
        hits += len({r[0] for r in rows} & set(t.tolist()))
        want = dict(zip(t.tolist(), td.tolist()))
        for i, dist in rows:  # re-ranked rows carry exact float distances
            if i in want:
                assert dist == pytest.approx(want[i], rel=1e-5, abs=1e-5)
        assert [(d, i) for i, d in rows] == sorted((d, i) for i, d in rows)
    assert hits / truth.size >= 0.95
    info = db.execute("SELECT kind, quantization, memory_bytes, disk_bytes FROM knn_indexes() WHERE name = 'g'"
                      ).fetchall()[0]
    assert info[:2] == ("graph", bits)
    assert info[3] >= X.nbytes  # the float rows: in the file


def test_rerank_knob(db, vecs, tmp_path):
    X, Q = vecs
    load(db, X)
    build(db, "g", kind="'graph'", quantization="'sq4'", vectors_dir=f"'{tmp_path}'")
    q = Q[0]
    assert search(db, "g", q, ef=40) == search(db, "g", q, ef=40, rerank=40)  # the default: the whole beam
    assert len(search(db, "g", q, k=5, rerank=1)) == 5                        # raised to k
    assert len(search(db, "g", q, k=5, ef=10, rerank=200)) == 5               # widens the beam
    with pytest.raises(duckdb.Error, match="knn_search: rerank must be >= 1, got 0"):
        search(db, "g", q, rerank=0)


def test_heap_and_file_bytes_are_reported_apart(db, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3000, 384)).astype(np.float32)
    load(db, X)
    build(db, "f", dim=384, metric="'cosine'")
    build(db, "c", dim=384, metric="'cosine'", quantization="'sq4'", vectors_dir=f"'{tmp_path}'")
    rows = dict((r[0], r[1:]) for r in db.execute(
        "SELECT name, quantization, memory_bytes, disk_bytes FROM knn_indexes()").fetchall())
    assert rows["f"][0] == "none" and rows["f"][2] == 0
    assert rows["c"][0] == "sq4" and rows["c"][2] >= X.nbytes
    assert rows["c"][1] * 3.5 < rows["f"][1]


def test_quantized_graph_errors(db, sql_error, tmp_path):
    assert "quantization 'pq' is not known" in sql_error(
        "SELECT * FROM knn_index_create('x', dim := 4, quantization := 'pq')")
    assert "cannot create the vectors directory" in sql_error(
        "SELECT * FROM knn_index_create('y', dim := 4, quantization := 'sq8', vectors_dir := '/proc/no/such')",
        "SELECT knn_index_insert('y', 1, [1, 2, 3, 4]::FLOAT[4])")


# ---- everything the graph does, through SQL, on a quantized graph ------------------------------------

@pytest.fixture
def docs(db, tmp_path):
    rng = np.random.default_rng(9)
    X = clustered(rng, 3000, 32)
    n = len(X)
    db.con.register("src", knnsql.vectors_table(X, columns={"cat": np.arange(n) % 10,
                                                            "ts": np.arange(n).astype(np.float64)}))
    db.execute("CREATE TABLE docs AS SELECT * FROM src")
    db.execute(f"SELECT * FROM knn_index_create('q', dim := 32, quantization := 'sq4', vectors_dir := '{tmp_path}')"
               ).fetchall()
    db.execute("SELECT knn_index_insert('q', id, emb, ts, {'cat': cat}) FROM docs WHERE id < 2000").fetchall()
    db.execute("SELECT knn_index_insert('q', id, emb, ts, {'cat': cat}) FROM docs WHERE id >= 2000").fetchall()
    return X, rng


def truth(X, q, keep, k=10):
    ids = np.flatnonzero(keep)
    d = ((X[ids].astype(np.float64) - q) ** 2).sum(1)
    return ids[np.lexsort((ids, d))[:k]].tolist()


def test_filters_windows_attributes_and_allow_lists(db, docs):
    X, rng = docs
    idx = np.arange(len(X))
    for q in X[rng.choice(len(X), 8)] + 0.1:
        lit = f"$q::FLOAT[32]"
        p = {"q": q.tolist()}
        rows = db.execute(f"SELECT id, distance, cat FROM knn_search('q', {lit}, k := 10, ef := 64, "
                          "filter := 'cat = 3', attributes := true)", p).fetchall()
        assert all(r[2] == 3 and r[0] % 10 == 3 for r in rows)
        assert len(set(r[0] for r in rows) & set(truth(X, q, idx % 10 == 3))) >= 9
        rows = db.execute(f"SELECT id FROM knn_search('q', {lit}, k := 10, ef := 64, lo := 500, hi := 1500)",
                          p).fetchall()
        assert all(500 <= r[0] <= 1500 for r in rows)
        assert len(set(r[0] for r in rows) & set(truth(X, q, (idx >= 500) & (idx <= 1500)))) >= 9
        got = db.execute(f"SELECT knn_among('q', {lit}, 10, id) FROM docs WHERE cat IN (1, 2)", p).fetchone()[0]
        assert len(set(r["id"] for r in got) & set(truth(X, q, np.isin(idx % 10, [1, 2])))) >= 9
        listed = db.execute(f"SELECT knn('q', {lit}, 5)", p).fetchone()[0]
        assert [r["id"] for r in listed] == [r[0] for r in db.execute(
            f"SELECT id FROM knn_search('q', {lit}, k := 5)", p).fetchall()]


def test_deletes_and_optimize(db, docs):
    X, rng = docs
    db.execute("SELECT knn_index_delete('q', id) FROM docs WHERE id % 4 = 0").fetchall()
    live = np.arange(len(X)) % 4 != 0
    for q in X[:5]:
        ids = [r[0] for r in db.execute("SELECT id FROM knn_search('q', $q::FLOAT[32], k := 10, ef := 64)",
                                        {"q": q.tolist()}).fetchall()]
        assert all(i % 4 != 0 for i in ids) and len(set(ids) & set(truth(X, q, live))) >= 9
    assert db.execute("SELECT rows, deleted FROM knn_indexes() WHERE name = 'q'").fetchall() == [(2250, 750)]
    assert db.execute("SELECT rows FROM knn_index_optimize('q')").fetchall() == [(2250,)]
    assert db.execute("SELECT deleted, quantization FROM knn_indexes() WHERE name = 'q'").fetchall() == [(0, "sq4")]
    q = X[7]
    ids = [r[0] for r in db.execute("SELECT id FROM knn_search('q', $q::FLOAT[32], k := 10, ef := 64, "
                                    "filter := 'cat = 7')", {"q": q.tolist()}).fetchall()]
    assert ids[0] == 7 and all(i % 10 == 7 and i % 4 != 0 for i in ids)


# ---- persistence ------------------------------------------------------------------------------------

def test_dump_restore_and_restore_vectors(db, docs, tmp_path):
    X, rng = docs
    q = X[11] + 0.05
    p = {"q": q.tolist()}
    before = db.execute("SELECT id, distance FROM knn_search('q', $q::FLOAT[32], k := 10)", p).fetchall()
    db.execute("CREATE TABLE saved AS SELECT * FROM knn_index_dump('q')")
    db.execute("SELECT * FROM knn_index_drop('q')").fetchall()
    (sub := tmp_path / "restored").mkdir()
    assert db.execute(f"SELECT knn_index_restore('q', part, bytes, 'docs', '{sub}') FROM saved").fetchall() == [(3000,)]
    info = db.execute("SELECT quantization, rows, source FROM knn_indexes() WHERE name = 'q'").fetchall()
    assert info == [("sq4", 3000, "docs")]
    with pytest.raises(duckdb.Error, match="restored without its float rows and 3000 live rows still lack theirs; "
                                           "give them .* knn_index_restore_vectors"):
        db.execute("SELECT * FROM knn_search('q', $q::FLOAT[32])", p).fetchall()
    db.execute("CREATE TABLE changed AS SELECT * FROM docs WHERE id < 100")
    db.execute("UPDATE changed SET emb = (SELECT emb FROM docs WHERE id = 8) WHERE id = 7")
    with pytest.raises(duckdb.Error, match="knn_index_restore_vectors: the row given for id 7 .* is not the row the "
                                           "index was saved with"):
        db.execute("SELECT knn_index_restore_vectors('q', id, emb) FROM changed").fetchall()
    assert db.execute("SELECT knn_index_restore_vectors('q', id, emb) FROM docs").fetchall() == [(3000,)]
    assert db.execute("SELECT knn_index_restore_vectors('q', id, emb) FROM docs").fetchall() == [(0,)]
    after = db.execute("SELECT id, distance FROM knn_search('q', $q::FLOAT[32], k := 10)", p).fetchall()
    assert after == before
    redump = db.execute("SELECT bytes FROM knn_index_dump('q') ORDER BY part").fetchall()
    assert [r[0] for r in redump] == [r[0] for r in db.execute("SELECT bytes FROM saved ORDER BY part").fetchall()]
    rows = db.execute("SELECT id, cat FROM knn_search('q', $q::FLOAT[32], k := 5, filter := 'cat = 1', "
                      "attributes := true)", p).fetchall()
    assert rows and all(c == 1 for _, c in rows)


def test_restore_vectors_errors(db, vecs, sql_error):
    X, _ = vecs
    load(db, X)
    build(db, "fl", kind="'flat'")
    build(db, "gf", kind="'graph'")
    assert "index 'fl' is flat: it keeps its float rows" in sql_error(
        "SELECT knn_index_restore_vectors('fl', id, emb) FROM t")
    assert "keeps its float rows itself (quantization 'none')" in sql_error(
        "SELECT knn_index_restore_vectors('gf', id, emb) FROM t")
    assert "unknown index 'nope'" in sql_error("SELECT knn_index_restore_vectors('nope', id, emb) FROM t")


def test_a_database_file_brings_a_quantized_index_back(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((2500, 24)).astype(np.float32)
    path = str(tmp_path / "q.duckdb")
    with knnsql.connect(path) as db:
        t = db.create_table("docs", dim=24, metric="cosine")
        t.add({"id": np.arange(len(X)), "emb": X})
        t.create_index(kind="graph", quantization="sq8", vectors_dir=str(tmp_path))
        want = t.search(X[3]).limit(5).to_list()
        db.checkpoint()
    with knnsql.connect(path) as db:
        assert db.open_report[0]["action"] == "restored"
        assert db.sql("SELECT quantization FROM knn_indexes()").fetchall() == [("sq8",)]
        assert db.table("docs").search(X[3]).limit(5).to_list() == want
        db.execute("UPDATE docs SET emb = (SELECT emb FROM docs WHERE id = 3) WHERE id = 4")
        db.execute("DELETE FROM docs WHERE id = 9")
        db.checkpoint()
    with knnsql.connect(path) as db:  # changed rows re-inserted, gone ones deleted: every row has its floats
        rep = db.open_report[0]
        assert (rep["action"], rep["updated"], rep["removed"]) == ("restored", 1, 1)
        got = db.table("docs").search(X[3]).limit(2).to_list()
        assert {r["id"] for r in got} == {3, 4} and all(r["distance"] == pytest.approx(0, abs=1e-6) for r in got)


# ---- memory: heap bytes against the cap, file bytes apart --------------------------------------------

VEC64 = "list_transform(range(64), lambda j: cos(i * 0.01 * j + i))::FLOAT[64]"


@pytest.mark.parametrize("labelled", [False, True])
def test_the_memory_cap_counts_the_heap_only(db, tmp_path, labelled):
    """memory_limit caps the heap bytes; a quantized graph's float rows are in its file, so more rows fit
    under the same cap, and its projection still never lets the heap pass the cap."""
    cap = 3_000_000
    label = ", i" if labelled else ""
    fitted = {}
    for name, opts in (("f", ""), ("c", f", quantization := 'sq4', vectors_dir := '{tmp_path}'")):
        db.execute(f"SELECT * FROM knn_index_create('{name}', dim := 64, memory_limit := {cap}{opts})").fetchall()
        added = 0
        for _ in range(60):
            try:
                db.execute(f"SELECT knn_index_insert('{name}', i, {VEC64}{label}) FROM range({added}, {added + 500}) "
                           "r(i)").fetchall()
            except duckdb.Error as exc:
                assert "memory_limit" in str(exc)
                break
            added += 500
            mem, disk = db.execute(f"SELECT memory_bytes, disk_bytes FROM knn_indexes() WHERE name = '{name}'"
                                   ).fetchone()
            assert mem <= cap, (name, added, mem)
            assert (disk >= added * 64 * 4) if name == "c" else disk == 0
        fitted[name] = added
    assert fitted["c"] >= 1.5 * fitted["f"], fitted
