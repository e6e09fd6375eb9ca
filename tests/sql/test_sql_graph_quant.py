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
