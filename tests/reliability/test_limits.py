"""Limits: memory caps on index builds, dimension 65,536, k in the millions, empty and single-row
inputs, across SQL and numpy."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

import knnsql

VEC64 = "list_transform(range(64), lambda j: cos(i * 0.01 * j + i))::FLOAT[64]"


def memory_of(db, name):
    return db.execute("SELECT rows, memory_bytes FROM knn_indexes() WHERE name = $n", {"n": name}).fetchone()


# ---- memory caps ----------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["graph", "flat"])
def test_build_over_the_cap_fails_before_building(db, kind):
    db.execute(f"SELECT * FROM knn_index_create('capped', dim := 64, kind := '{kind}', memory_limit := '2MB')")
    with pytest.raises(duckdb.Error, match=r"knn_index_insert: index 'capped' \(dim 64\) would grow to about .* with the "
                                           r"\d+ rows buffered so far .* over its memory_limit of 2\.0 MB; insert fewer rows per call, "
                                           r"raise the cap"):
        db.execute(f"SELECT knn_index_insert('capped', i, {VEC64}) FROM range(20000) r(i)")
    assert memory_of(db, "capped")[0] == 0  # nothing was added


@pytest.mark.parametrize("kind,labelled", [("graph", False), ("graph", True), ("flat", False), ("flat", True)])
def test_accepted_builds_stay_within_the_cap(db, kind, labelled):
    cap = 3_000_000
    db.execute(f"SELECT * FROM knn_index_create('c', dim := 64, kind := '{kind}', memory_limit := {cap})")
    label = ", i" if labelled else ""
    added, refused = 0, False
    for step in range(40):
        lo = added
        try:
            db.execute(f"SELECT knn_index_insert('c', i, {VEC64}{label}) FROM range({lo}, {lo + 500}) r(i)")
        except duckdb.Error as exc:
            assert "memory_limit" in str(exc)
            refused = True
            break
        added += 500
        rows, mem = memory_of(db, "c")
        assert rows == added and mem <= cap, (rows, mem, cap)
    assert refused, "the cap never applied"
    assert added >= 1000, "the estimate is far too pessimistic"
    # the refused call changed nothing; smaller calls still fit until the cap
    assert memory_of(db, "c")[0] == added


def test_default_cap_is_duckdbs_memory_limit_and_none_lifts_it():
    with knnsql.connect(memory_limit="4MB") as db:
        db.execute("SELECT * FROM knn_index_create('d', dim := 64)")
        with pytest.raises(duckdb.Error, match=r"over its memory_limit of 4\.0 MB"):
            db.execute(f"SELECT knn_index_insert('d', i, {VEC64}) FROM range(20000) r(i)")
        db.execute("SELECT * FROM knn_index_create('u', dim := 64, memory_limit := 'none')")
        assert db.execute(f"SELECT knn_index_insert('u', i, {VEC64}) FROM range(20000) r(i)").fetchone()[0] == 20000
        # the current setting, read through SQL, as an explicit cap
        db.execute("SELECT * FROM knn_index_create('s', dim := 64, memory_limit := current_setting('memory_limit'))")
        with pytest.raises(duckdb.Error, match="memory_limit"):
            db.execute(f"SELECT knn_index_insert('s', i, {VEC64}) FROM range(20000) r(i)")
        # a restore larger than the cap is refused before the bytes are parsed; the default cap is the
        # memory_limit at load time, so raising DuckDB's own limit afterwards (to hold the dump) keeps it
        db.execute("SET memory_limit = '1GB'")
        db.execute("CREATE TABLE dump AS SELECT * FROM knn_index_dump('u')")
        with pytest.raises(duckdb.Error, match=r"knn_index_restore: index 'u2' is \d+ bytes, over the memory_limit"):
            db.execute("SELECT knn_index_restore('u2', part, bytes) FROM dump")


@pytest.mark.parametrize("text,bytes_", [("1000", 1000), ("2KB", 2000), ("1.5 MiB", 1572864), ("3gb", 3 * 10**9),
                                         ("1 GiB", 2**30), (" 7 bytes", 7), ("none", None), ("unlimited", None)])
def test_memory_limit_sizes_parse_as_duckdb_writes_them(db, text, bytes_):
    db.execute(f"SELECT * FROM knn_index_create('p', dim := 4, kind := 'flat', memory_limit := '{text}')")
    assert db.execute("SELECT memory_limit FROM knn_indexes()").fetchone()[0] == bytes_
    db.execute("SELECT * FROM knn_index_create('q', dim := 4, memory_limit := 123456789)")  # a number: bytes
    assert db.execute("SELECT memory_limit FROM knn_indexes() WHERE name = 'q'").fetchone()[0] == 123456789


def test_default_cap_shows_duckdbs_memory_limit():
    with knnsql.connect(memory_limit="300MB") as db:
        db.execute("SELECT * FROM knn_index_create('x', dim := 4)")
        cap = db.execute("SELECT memory_limit FROM knn_indexes()").fetchone()[0]
        # DuckDB reports the setting rounded ("286.1 MiB"); the cap is what it reports
        assert abs(cap - 300_000_000) < 1e6, cap


def test_default_cap_never_exceeds_most_of_the_ram():
    """A memory_limit above the machine (DuckDB 1.3 reports its unlimited setting as 1638 PiB) must not switch
    the default cap off: it is 80% of the RAM then."""
    import os

    ram = 0.8 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    with knnsql.connect(memory_limit="900TB") as db:
        db.execute("SELECT * FROM knn_index_create('x', dim := 4)")
        cap = db.execute("SELECT memory_limit FROM knn_indexes()").fetchone()[0]
        assert cap is not None and abs(cap - ram) < 1e6, (cap, ram)


@pytest.mark.parametrize("text", ["lots", "-5GB", "5 parsecs", ""])
def test_bad_memory_limit_names_the_fix(db, text):
    with pytest.raises(duckdb.Error, match=r"knn_index_create: memory_limit '.*' is not a size; write e\.g\. '4GB'"):
        db.execute(f"SELECT * FROM knn_index_create('b', dim := 4, memory_limit := '{text}')")


# ---- dimensions, k, sizes -------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["graph", "flat"])
def test_dimension_65536(db, kind, rng):
    d = 65536
    X = rng.normal(size=(5, d)).astype(np.float32)
    tbl = knnsql.vectors_table(X)  # noqa: F841 - read by DuckDB
    db.execute("CREATE TABLE big AS SELECT * FROM tbl")
    db.execute(f"SELECT * FROM knn_index_create('big', dim := {d}, kind := '{kind}')")
    assert db.execute("SELECT knn_index_insert('big', id, emb) FROM big").fetchone()[0] == 5
    rows = db.execute("SELECT id, distance FROM knn_search('big', $q, k := 3)", {"q": X[2].tolist()}).fetchall()
    ref = ((X.astype(np.float64) - X[2]) ** 2).sum(1)
    assert [r[0] for r in rows] == np.argsort(ref)[:3].tolist()
    np.testing.assert_allclose([r[1] for r in rows], np.sort(ref)[:3], rtol=1e-4, atol=1e-3)
    exact = db.execute("SELECT knn_exact(id, emb, $q::FLOAT[65536], 2) FROM big", {"q": X[4].tolist()}).fetchone()[0]
    assert exact[0]["id"] == 4
    with pytest.raises(duckdb.Error, match="dim must be between 1 and 65536, got 65537"):
        db.execute("SELECT * FROM knn_index_create('bigger', dim := 65537)")
    index = knnsql.Index(d, kind=kind)
    index.add(X)
    ids, dists = index.search(X[1], k=2)
    assert ids[0][0] == 1 and abs(dists[0][0]) < 1e-3


@pytest.mark.parametrize("kind", ["graph", "flat"])
@pytest.mark.parametrize("k", [3_000_000, 2**62, 2**63 - 1])
def test_k_in_the_millions_returns_every_row(db, kind, k):
    db.execute("CREATE TABLE t AS SELECT i AS id, [i, 1, 2, 3]::FLOAT[4] AS emb FROM range(100) r(i)")
    db.execute(f"SELECT * FROM knn_index_create('i', dim := 4, kind := '{kind}')")
    db.execute("SELECT knn_index_insert('i', id, emb) FROM t")
    rows = db.execute(f"SELECT id, distance FROM knn_search('i', [7, 1, 2, 3], k := {k})").fetchall()
    assert len(rows) == 100 and rows[0][0] == 7
    assert sorted(r[0] for r in rows) == list(range(100))
    lens = db.execute(f"SELECT len(knn('i', emb, {k})) FROM t WHERE id < 3").fetchall()
    assert lens == [(100,)] * 3
    assert db.execute(f"SELECT len(knn_exact(id, emb, [7, 1, 2, 3]::FLOAT[4], {k})) FROM t").fetchone()[0] == 100
    if kind == "graph":
        assert len(db.execute(f"SELECT * FROM knn_search('i', [7, 1, 2, 3], k := 5, ef := {k})").fetchall()) == 5


@pytest.mark.parametrize("kind", ["graph", "flat"])
def test_numpy_k_in_the_millions(kind, rng):
    index = knnsql.Index(4, kind=kind)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    index.add(X)
    ids, dists = index.search(X[3], k=2_000_000)
    assert ids.shape == (1, 50) and ids[0][0] == 3 and sorted(ids[0].tolist()) == list(range(50))


@pytest.mark.parametrize("kind", ["graph", "flat"])
def test_empty_table_and_empty_index(db, kind):
    db.execute("CREATE TABLE e (id BIGINT, emb FLOAT[4])")
    db.execute(f"SELECT * FROM knn_index_create('e', dim := 4, kind := '{kind}')")
    assert db.execute("SELECT knn_index_insert('e', id, emb) FROM e").fetchone()[0] in (0, None)
    assert db.execute("SELECT knn_index_delete('e', id) FROM e").fetchone()[0] in (0, None)
    assert db.execute("SELECT * FROM knn_search('e', [1, 2, 3, 4], k := 5)").fetchall() == []
    assert db.execute("SELECT knn('e', [1, 2, 3, 4]::FLOAT[4], 3)").fetchone()[0] == []
    assert db.execute("SELECT knn_exact(id, emb, [1, 2, 3, 4]::FLOAT[4], 3) FROM e").fetchone()[0] is None
    assert db.execute("SELECT * FROM knn_index_optimize('e')").fetchall() == [("e", 0)]
    assert db.execute("SELECT * FROM knn_index_ids('e')").fetchall() == []
    if kind == "graph":
        db.execute("CREATE TABLE ed AS SELECT * FROM knn_index_dump('e')")
        assert db.execute("SELECT knn_index_restore('e2', part, bytes) FROM ed").fetchone()[0] == 0
        assert db.execute("SELECT * FROM knn_search('e2', [1, 2, 3, 4], k := 5)").fetchall() == []


@pytest.mark.parametrize("kind", ["graph", "flat"])
def test_single_row(db, kind):
    db.execute("CREATE TABLE s AS SELECT 42::BIGINT AS id, [1, 2, 3, 4]::FLOAT[4] AS emb, 7 AS lab")
    db.execute(f"SELECT * FROM knn_index_create('s', dim := 4, kind := '{kind}')")
    assert db.execute("SELECT knn_index_insert('s', id, emb, lab) FROM s").fetchone()[0] == 1
    assert db.execute("SELECT id, distance, rank FROM knn_search('s', [1, 2, 3, 5], k := 10)").fetchall() == \
        [(42, 1.0, 1)]
    assert db.execute("SELECT id FROM knn_search('s', [0, 0, 0, 0], k := 1, lo := 7, hi := 7)").fetchall() == [(42,)]
    assert db.execute("SELECT id FROM knn_search('s', [0, 0, 0, 0], k := 1, lo := 8, hi := 9)").fetchall() == []
    assert db.execute("SELECT * FROM knn_index_optimize('s')").fetchall() == [("s", 1)]
    if kind == "graph":
        db.execute("CREATE TABLE sd AS SELECT * FROM knn_index_dump('s')")
        assert db.execute("SELECT knn_index_restore('s2', part, bytes) FROM sd").fetchone()[0] == 1
        assert db.execute("SELECT id FROM knn_search('s2', [9, 9, 9, 9], k := 3)").fetchall() == [(42,)]
    assert db.execute("SELECT knn_index_delete('s', id) FROM s").fetchone()[0] == 1
    assert db.execute("SELECT * FROM knn_search('s', [1, 2, 3, 4], k := 3)").fetchall() == []
