"""Filters and rows served by the index itself: attribute columns, the direct (no statement) path,
and the freshness rules around it."""
import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

import knnsql

N, D = 6000, 8


def make(db, rng, name="docs"):
    X = rng.standard_normal((N, D)).astype(np.float32)
    t = db.create_table(name, dim=D, metric="l2", columns={
        "n": "INTEGER", "x": "DOUBLE", "flag": "BOOLEAN", "day": "DATE", "ts": "TIMESTAMP", "tag": "VARCHAR",
        "price": "DECIMAL(10,2)"})
    base = dt.datetime(2024, 1, 1)
    t.add({"id": np.arange(N), "emb": X, "n": np.arange(N) % 100, "x": rng.standard_normal(N),
           "flag": np.arange(N) % 3 == 0, "day": [dt.date(2024, 1, 1) + dt.timedelta(days=int(i % 365)) for i in range(N)],
           "ts": [base + dt.timedelta(hours=int(i)) for i in range(N)],
           "tag": [None if i % 11 == 0 else f"t{i % 7}" for i in range(N)], "price": [f"{i % 500}.25" for i in range(N)]})
    t.create_index(m=12, ef_construction=100)
    return t, X


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(5)
    db = knnsql.connect()
    t, X = make(db, rng)
    Q = rng.standard_normal((12, D)).astype(np.float32)
    yield db, t, X, Q
    db.close()


def exact(db, q, where, k=10):
    lit = "[" + ",".join(f"{v:.9g}" for v in q) + "]::FLOAT[8]"
    return [r[0] for r in db.execute(f"SELECT id FROM docs WHERE {where} ORDER BY array_distance(emb, {lit}), id "
                                     f"LIMIT {k}").fetchall()]


def test_index_holds_every_holdable_column(world):
    db, t, X, Q = world
    # DECIMAL is held as DOUBLE for filters but not returned from the index (not exact)
    assert set(t.index.attributes) == {"n", "x", "flag", "day", "ts", "tag", "price"}


@pytest.mark.parametrize("where", ["n < 3", "x > 1.5 AND flag", "tag = 't3'", "tag LIKE 't%' AND n IN (1, 2, 3)",
                                   "day >= DATE '2024-12-01'", "ts < '2024-01-05 00:00:00'", "tag IS NULL",
                                   "NOT flag AND n BETWEEN 10 AND 12", "price < 3"])
def test_filters_run_in_the_index_and_match_duckdb(world, where):
    db, t, X, Q = world
    for q in Q[:4]:
        s = t.search(q).where(where).select(["id", "n", "tag"]).limit(10)
        got = s.to_list()
        assert s.plan == "index+filter"
        want = exact(db, q, where)
        assert len(got) == len(want)
        assert len({r["id"] for r in got} & set(want)) >= len(want) - 1
        match = {r[0] for r in db.execute(f"SELECT id FROM docs WHERE {where}").fetchall()}
        assert {r["id"] for r in got} <= match


def test_direct_rows_equal_the_table_rows(world):
    db, t, X, Q = world
    cols = ["id", "n", "x", "flag", "day", "ts", "tag"]
    s = t.search(Q[0]).select(cols).limit(20)
    got = s.to_arrow()
    assert s.plan == "index+attributes" and "no statement" in s.sql()
    ids = got.column("id").to_pylist()
    rows = db.execute(f"SELECT {', '.join(cols)} FROM docs WHERE id IN ({', '.join(map(str, ids))})").fetchall()
    by_id = {r[0]: dict(zip(cols, r)) for r in rows}
    for r in got.to_pylist():
        assert {c: r[c] for c in cols} == by_id[r["id"]]
    # the column types are the table's
    assert got.schema.field("n").type == pa.int32() and got.schema.field("day").type == pa.date32()
    assert got.schema.field("ts").type == pa.timestamp("us") and got.schema.field("flag").type == pa.bool_()
    d = got.column("distance").to_numpy()
    assert np.all(np.diff(d) >= 0)


def test_a_column_the_index_does_not_return_takes_the_lookup(world):
    db, t, X, Q = world
    s = t.search(Q[0]).select(["id", "price"]).limit(5)
    rows = s.to_list()
    assert s.plan == "index" and len(rows) == 5
    s = t.search(Q[0]).where("n < 50").select(["id", "emb"]).limit(5)
    rows = s.to_list()
    assert s.plan == "index+filter" and len(rows[0]["emb"]) == D and all(r["id"] % 100 < 50 for r in rows)


def test_batch_direct_equals_single_queries(world):
    db, t, X, Q = world
    batch = t.search(Q).where("n < 20").limit(7).to_arrow()
    for i, q in enumerate(Q):
        one = t.search(q).where("n < 20").limit(7).to_arrow()
        part = batch.filter(pa.compute.equal(batch.column("query"), i))
        assert part.column("id").to_pylist() == one.column("id").to_pylist()
    ids, dist = t.search(Q).limit(5).to_numpy()
    assert ids.shape == (len(Q), 5) and np.all(ids >= 0)


def test_fewer_matches_than_k(world):
    db, t, X, Q = world
    rows = t.search(Q[0]).where("n = 7 AND flag").limit(1000).to_list()
    assert len(rows) == db.execute("SELECT count(*) FROM docs WHERE n = 7 AND flag").fetchall()[0][0]
    assert t.search(Q[0]).where("tag = 'nothing'").to_list() == []


def test_writes_keep_attributes_in_step():
    rng = np.random.default_rng(9)
    with knnsql.connect() as db:
        t, X = make(db, rng)
        q = X[17]
        assert t.search(q).limit(1).to_list()[0]["id"] == 17
        t.update({"id": [17], "emb": X[17:18], "n": [4242], "x": [0.0], "flag": [True], "day": [dt.date(2020, 1, 1)],
                  "ts": [dt.datetime(2020, 1, 1)], "tag": ["moved"], "price": ["1.00"]})
        got = t.search(q).where("tag = 'moved'").to_list()
        assert [r["id"] for r in got] == [17] and got[0]["n"] == 4242
        t.delete([17])
        assert t.search(q).where("tag = 'moved'").to_list() == []
        # plain SQL writes through db.execute are seen by the next search
        db.execute("DELETE FROM docs WHERE id = 18")
        assert 18 not in [r["id"] for r in t.search(X[18]).limit(3).to_list()]
        # writes through the raw connection bypass the tracking: seen after db.refresh()
        db.con.execute("DELETE FROM docs WHERE id = 19")
        db.refresh()
        assert 19 not in [r["id"] for r in t.search(X[19]).limit(3).to_list()]
        t.optimize_index()
        assert t.search(X[20]).where("n = 20").limit(1).to_list()[0]["id"] == 20
        # an UPDATE in place keeps the row count: the next search compares row hashes instead
        db.execute("UPDATE docs SET tag = 'renamed' WHERE id = 40")
        assert [r["id"] for r in t.search(X[40]).where("tag = 'renamed'").to_list()] == [40]
        sql = "SELECT id FROM docs WHERE tag = 'renamed' ORDER BY array_distance(emb, $q::FLOAT[8]) LIMIT 3"
        assert [r[0] for r in db.sql(sql, q=X[40].tolist()).fetchall()] == [40]
        assert "filter :=" in db.explain(sql, q=X[40].tolist()).reason


def test_read_consistency_interval_zero_checks_before_every_search():
    rng = np.random.default_rng(11)
    with knnsql.connect(read_consistency_interval=0) as db:
        t, X = make(db, rng)
        db.con.execute("DELETE FROM docs WHERE id = 19")  # bypasses the tracking; the count still sees it
        assert 19 not in [r["id"] for r in t.search(X[19]).select(["id", "n"]).limit(3).to_list()]


def test_default_trusts_tracked_writes():
    rng = np.random.default_rng(10)
    with knnsql.connect() as db:
        t, X = make(db, rng)
        db.execute("DELETE FROM docs WHERE id = 30")  # seen: through db.execute
        assert 30 not in [r["id"] for r in t.search(X[30]).limit(3).to_list()]
        db.con.execute("DELETE FROM docs WHERE id = 31")  # not seen until a refresh: documented
        held = ["id", "n", "tag"]  # columns the index returns itself (no lookup in the table)
        assert t.search(X[31]).select(held).limit(1).to_list()[0]["id"] == 31
        db.refresh()
        assert 31 not in [r["id"] for r in t.search(X[31]).select(held).limit(3).to_list()]


def test_attributes_survive_reopen(tmp_path):
    rng = np.random.default_rng(12)
    path = tmp_path / "a.duckdb"
    with knnsql.connect(path) as db:
        t, X = make(db, rng)
        want = [r["id"] for r in t.search(X[5]).where("tag = 't5' AND n < 50").to_list()]
    with knnsql.connect(path) as db:
        assert db.open_report[0]["action"] == "restored"
        t = db.table("docs")
        s = t.search(X[5]).where("tag = 't5' AND n < 50")
        assert [r["id"] for r in s.to_list()] == want and s.plan == "index+filter"


def test_attribute_options():
    rng = np.random.default_rng(13)
    with knnsql.connect() as db:
        X = rng.standard_normal((500, D)).astype(np.float32)
        t = db.create_table("a", dim=D, columns={"n": "INTEGER", "tags": "VARCHAR[]"})
        t.add({"id": np.arange(500), "emb": X, "n": np.arange(500), "tags": [["a"]] * 500})
        t.create_index(attributes=[])
        s = t.search(X[0]).where("n < 10")
        s.to_list()
        assert s.plan == "index+among"
        with pytest.raises(ValueError, match="cannot hold"):
            t.create_index(attributes=["tags"], replace=True)
        with pytest.raises(ValueError, match="not in"):
            t.create_index(attributes=["nope"], replace=True)
        t.create_index(attributes=["n"], replace=True)
        s = t.search(X[0]).where("n < 10")
        assert all(r["n"] < 10 for r in s.to_list()) and s.plan == "index+filter"
        s = t.search(X[0]).where("n < 10 AND list_contains(tags, 'a')")  # a function: DuckDB evaluates it
        assert len(s.to_list()) == 10 and s.plan == "index+among"


def test_dropping_an_attribute_column_rebuilds_without_it():
    rng = np.random.default_rng(14)
    with knnsql.connect() as db:
        X = rng.standard_normal((300, D)).astype(np.float32)
        t = db.create_table("a", dim=D, columns={"n": "INTEGER", "tag": "VARCHAR"})
        t.add({"id": np.arange(300), "emb": X, "n": np.arange(300), "tag": ["x"] * 300})
        t.create_index()
        db.execute("ALTER TABLE a DROP COLUMN tag")
        assert t.search(X[3]).limit(1).to_list() == [{"id": 3, "n": 3, "distance": 0.0}]
        assert t.index.attributes == ["n"]
        with pytest.raises(knnsql.FilterError if hasattr(knnsql, "FilterError") else ValueError, match="lacks"):
            db.table("a").search(X[3]).where("tag = 'x'").to_list()
        assert db.table("a").search(X[3]).where("n < 10").limit(1).to_list()[0]["id"] == 3


# -- db.sql answered by the index alone (_result.IndexResult) -------------------------------------------
@pytest.mark.parametrize("select", [
    "id", "id, n, tag", "tag AS label, id, array_distance(emb, $q::FLOAT[8]) AS dist",
    "ID, day, ts, flag, x", "docs.id AS k, array_distance(emb, $q::FLOAT[8]) AS d"])
@pytest.mark.parametrize("where", ["", "WHERE n < 3", "WHERE tag = 't3' AND x > 0", "WHERE tag IS NULL AND flag"])
def test_db_sql_answered_by_the_index_equals_its_statement(world, select, where):
    db, t, X, Q = world
    sql = f"SELECT {select} FROM docs {where} ORDER BY array_distance(emb, $q::FLOAT[8]) LIMIT 10"
    for q in Q[:3]:
        res = db.sql(sql, q=q)
        assert type(res).__name__ == "IndexResult", db.explain(sql, q=q)
        rel = res.relation  # the DuckDB relation of the same rewritten statement
        got, want = res.fetchall(), rel.fetchall()
        has_dist = "AS dist" in select or "AS d" in select
        if has_dist:  # the distance last: equal to float32 rounding
            assert [r[:-1] for r in got] == [r[:-1] for r in want]
            assert np.allclose([r[-1] for r in got], [r[-1] for r in want], rtol=1e-6)
        else:
            assert got == want
        assert res.columns == rel.columns
        assert res.to_arrow_table().schema == rel.to_arrow_table().schema
        assert res.arrow().read_all().num_rows == len(want)
        assert list(res.df().columns) == rel.columns  # everything else goes through the relation
        plain = db.con.execute(sql, {"q": q.tolist()}).fetchall()  # DuckDB's own exact answer, not rewritten
        assert len(got) == len(plain)
        rows = (lambda rs: {r[:-1] for r in rs}) if has_dist else set
        assert len(rows(got) & rows(plain)) >= len(plain) - 1


def test_db_sql_index_result_sees_writes_made_after_it(world):
    db, t, X, Q = world
    sql = "SELECT id, n FROM docs WHERE n = 77 AND x > 100 ORDER BY array_distance(emb, $q::FLOAT[8]) LIMIT 5"
    res = db.sql(sql, q=Q[0])
    assert type(res).__name__ == "IndexResult" and res.fetchall() == []
    t.add({"id": [N + 1], "emb": Q[0][None, :], "n": [77], "x": [101.0]})
    try:
        assert res.fetchall() == [(N + 1, 77)]  # a relation runs again on every call; so does this
    finally:
        t.delete([N + 1])
    assert res.fetchall() == []


def test_db_sql_keeps_the_statement_path_when_the_index_cannot_answer_alone(world):
    db, t, X, Q = world
    for sql in ["SELECT id, n + 1 FROM docs ORDER BY array_distance(emb, $q::FLOAT[8]) LIMIT 5",  # an expression
                "SELECT id, array_distance(emb, $q::FLOAT[8]) FROM docs ORDER BY array_distance(emb, $q::FLOAT[8]) "
                "LIMIT 5",  # an unaliased distance: DuckDB names it after its text
                "SELECT id, price FROM docs ORDER BY array_distance(emb, $q::FLOAT[8]) LIMIT 5",  # DECIMAL
                "SELECT id, id FROM docs ORDER BY array_distance(emb, $q::FLOAT[8]) LIMIT 5"]:
        res = db.sql(sql, q=Q[1])
        assert type(res).__name__ != "IndexResult", sql
        assert len(res.fetchall()) == 5
