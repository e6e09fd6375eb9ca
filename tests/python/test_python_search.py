"""Fluent search, the filter planner, db.sql rewriting, and filter injection."""

import numpy as np
import pytest

import knnsql
from knnsql._sql import FilterError

N, D = 20_000, 16


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((40, D)) * 4
    X = (centers[rng.integers(0, 40, N)] + rng.standard_normal((N, D))).astype(np.float32)
    db = knnsql.connect()
    t = db.create_table("items", dim=D, metric="l2", columns={"bucket": "INTEGER", "price": "DOUBLE"})
    ids = np.arange(N)
    # bucket % 10 == 0 selects 10%, bucket % 100 == 0 1%, bucket % 1000 == 0 0.1%
    bucket = rng.permutation(N)
    t.add({"id": ids, "emb": X, "bucket": bucket, "price": rng.uniform(0, 100, N)})
    t.create_index(label="price", m=12, ef_construction=100)
    Q = (X[rng.choice(N, 20, replace=False)] + 0.1 * rng.standard_normal((20, D))).astype(np.float32)
    yield db, t, X, Q, bucket
    db.close()


def exact_ids(X, q, mask, k):
    d = ((X.astype(np.float64) - q) ** 2).sum(1)
    d[~mask] = np.inf
    order = np.argsort(d, kind="stable")[:k]
    return order[np.isfinite(d[order])]


@pytest.mark.parametrize("cond,modulus", [(None, 1), ("bucket % 10 = 0", 10), ("bucket % 100 = 0", 100),
                                          ("bucket % 1000 = 0", 1000), ("bucket < 4", None)])
def test_filtered_search_matches_exact_across_selectivities(world, cond, modulus):
    db, t, X, Q, bucket = world
    mask = np.ones(N, bool) if cond is None else (bucket % modulus == 0 if modulus else bucket < 4)
    k = 10
    hits = 0
    for q in Q:
        s = t.search(q).limit(k)
        if cond:
            s = s.where(cond)
        rows = s.to_list()
        want = exact_ids(X, q, mask, k)
        assert len(rows) == min(k, mask.sum())                      # k rows whenever k exist
        got = [r["id"] for r in rows]
        assert all(mask[i] for i in got)                            # every row passes the filter
        dists = np.array([r["distance"] for r in rows])
        np.testing.assert_allclose(dists, ((X[got] - q) ** 2).sum(1), rtol=1e-4, atol=1e-4)
        assert np.all(np.diff(dists) >= 0)
        hits += len(set(got) & set(want.tolist()))
        if s.plan == "exact":
            assert got == want.tolist()
    recall = hits / (len(Q) * min(k, mask.sum()))
    assert recall >= 0.95, recall


def test_planner_picks_index_for_wide_and_exact_for_narrow_filters(world):
    _, t, _, Q, _ = world
    # a filter the index cannot evaluate (arithmetic): the matching ids go to the index in the same
    # statement (no count, no over-fetch); the index plans exact or beam by their share
    wide = t.search(Q[0]).where("bucket % 2 = 0")
    wide.to_arrow()
    assert wide.plan == "index+among" and "knn_among" in wide.sql()
    assert "count(" not in wide.sql().lower()
    narrow = t.search(Q[0]).where("bucket % 1000 = 0")
    narrow.to_arrow()
    assert narrow.plan == "index+among"
    # a batch with a filter: one knn_among_join statement for every query
    batch = t.search(Q[:3]).where("bucket % 2 = 0")
    batch.to_arrow()
    assert batch.plan == "index+among" and "knn_among_join" in batch.sql()
    # a filter over attribute columns runs inside the index, one call for the whole batch and no
    # statement: the rows come from the index's attribute columns
    inside = t.search(Q[0]).where("bucket < 100 AND price >= 10")
    inside.to_arrow()
    assert inside.plan == "index+filter" and "filter :=" in inside.sql() and "no statement" in inside.sql()
    batch = t.search(Q[:3]).where("bucket < 100")
    batch.to_arrow()
    assert batch.plan == "index+filter" and "knn_registry_query" in batch.sql()
    # with a window: one knn_search statement
    win = t.search(Q[0]).where("bucket < 5000").window(10, 60)
    win.to_arrow()
    assert win.plan == "index+filter" and "filter :=" in win.sql() and "lo :=" in win.sql()
    # no filter, every selected column held by the index
    plain = t.search(Q[0])
    plain.to_arrow()
    assert plain.plan == "index+attributes"
    batch = t.search(Q[:3])
    batch.to_arrow()
    assert batch.plan == "index+attributes"
    # a column the index does not hold (the vector): the index search, then one row lookup
    vec = t.search(Q[0]).select(["id", "emb"])
    vec.to_arrow()
    assert vec.plan == "index" and "knn_search" in vec.sql()


def test_window_and_filter_together(world):
    _, t, X, Q, bucket = world
    prices = t.db.execute("SELECT price FROM items ORDER BY id").fetchnumpy()["price"]
    for q in Q[:5]:
        rows = t.search(q).window(20, 30).where("bucket % 3 = 0").limit(10).to_list()
        assert len(rows) == 10
        assert all(20 <= r["price"] <= 30 and r["bucket"] % 3 == 0 for r in rows)
        want = exact_ids(X, q, (prices >= 20) & (prices <= 30) & (bucket % 3 == 0), 10)
        assert len(set(r["id"] for r in rows) & set(want.tolist())) >= 8


def test_matrix_query_numpy_and_exact(world):
    _, t, X, Q, _ = world
    s = t.search(Q[:5]).limit(4)
    frame = s.to_pandas()
    assert list(frame.columns) == ["query", "id", "bucket", "price", "distance"]
    assert sorted(set(frame["query"])) == [0, 1, 2, 3, 4]
    ids, dist = t.search(Q[:5]).limit(4).exact().to_numpy()
    assert ids.shape == dist.shape == (5, 4)
    for i, q in enumerate(Q[:5]):
        assert ids[i].tolist() == exact_ids(X, q, np.ones(N, bool), 4).tolist()
    one, d1 = t.search(Q[0]).limit(3).select(["id"]).ef(128).to_numpy()
    assert one.shape == (3,) and np.all(np.diff(d1) >= 0)
    # a filter with fewer matches than k pads the matrix
    ids, dist = t.search(Q[:2]).where("id < 2").limit(4).to_numpy()
    assert sorted(ids[0][:2].tolist()) == [0, 1] and ids[0][2] == -1 and np.isinf(dist[0][3])


def test_search_argument_errors(world):
    _, t, _, Q, _ = world
    with pytest.raises(ValueError, match="vector of 16"):
        t.search(np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        t.search(np.full(D, np.nan))
    with pytest.raises(ValueError, match="k >= 1"):
        t.search(Q[0]).limit(0)
    with pytest.raises(ValueError, match="not in 'items'"):
        t.search(Q[0]).select(["nope"])
    with pytest.raises(ValueError, match="n >= 1"):
        t.search(Q[0]).ef(-1)


INJECTIONS = [
    "1=1; DROP TABLE items",
    "id IN (SELECT id FROM items)",
    "bucket = 1 UNION SELECT * FROM items",
    "nextval('seq') > 0",
    "getenv('HOME') = 'x'",
    "read_csv('/etc/passwd') IS NOT NULL",
    "password = 'x'",
    "items.id = 1",
    "x') OR 1=1 --",
    "",
    "count(*) > 1",
    "$1 = 1",
    "@",            # found by fuzz/fuzz_where.py: parsed as abs() without its operand
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_filter_injection_is_rejected_before_anything_runs(world, text):
    db, t, _, Q, _ = world
    with pytest.raises(FilterError):
        t.search(Q[0]).where(text)
    with pytest.raises(FilterError):
        t.delete(where=text)
    assert len(t) == N


def test_filter_accepts_ordinary_predicates(world):
    _, t, _, Q, _ = world
    for text in ["bucket BETWEEN 3 AND 700", "price < 50 AND NOT (bucket IN (1, 2, 3))",
                 "bucket IS NOT NULL OR price > 3", "abs(price - 50) < 10", "BUCKET % 7 = 1"]:
        rows = t.search(Q[0]).where(text).limit(3).to_list()
        assert len(rows) == 3


# -- db.sql rewriting --------------------------------------------------------------------------------

def test_rewrite_of_natural_knn_sql(world):
    db, t, X, Q, bucket = world
    q = Q[3]
    sql = "SELECT id, array_distance(emb, $q::FLOAT[16]) AS d FROM items ORDER BY array_distance(emb, $q::FLOAT[16]) LIMIT 10"
    plan = db.explain(sql, q=q)
    assert plan.rewritten and plan.index == "items__emb" and "knn_search" in plan.sql.lower()
    got = db.sql(sql, q=q).fetchall()
    want = db.con.sql(sql, params={"q": q.tolist()}).fetchall()    # DuckDB's own brute force
    assert len(got) == 10
    assert len({r[0] for r in got} & {r[0] for r in want}) >= 9
    assert all(np.isclose(r[1], np.sqrt(((X[r[0]] - q) ** 2).sum()), rtol=1e-4) for r in got)


@pytest.mark.parametrize("cond", ["bucket < 100", "bucket % 2 = 0", "id IN (SELECT id FROM items WHERE price > 50)"])
def test_rewrite_under_any_filter_is_exact_where_the_index_scans(world, cond):
    db, t, X, Q, bucket = world
    sql = f"SELECT id FROM items WHERE {cond} ORDER BY array_distance(emb, $q::FLOAT[16]), id LIMIT 5"
    for q in Q[:5]:
        plan = db.explain(sql, q=q)
        pushable = cond == "bucket < 100"  # a comparison of an attribute column: evaluated inside the index
        assert plan.rewritten and ("filter :=" if pushable else "knn_among") in plan.reason
        got = [r[0] for r in db.sql(sql, q=q).fetchall()]
        want = [r[0] for r in db.con.sql(sql, params={"q": q.tolist()}).fetchall()]
        assert len(got) == len(want) and len(set(got) & set(want)) >= len(want) - 1


def test_rewrite_with_label_window_and_other_predicates(world):
    db, t, X, Q, bucket = world
    q = Q[4]
    sql = ("SELECT id, price, bucket FROM items WHERE price BETWEEN 10 AND 60 AND bucket % 4 = 1 "
           "ORDER BY array_distance(emb, $q::FLOAT[16]) LIMIT 10")
    plan = db.explain(sql, q=q)
    # other predicates go to knn_among: the k candidates are the answer (no over-fetch)
    assert plan.rewritten and set(plan.window) == {"lo", "hi"} and plan.fetch == 10 and "knn_among" in plan.reason
    got = db.sql(sql, q=q).fetchall()
    want = db.con.sql(sql, params={"q": q.tolist()}).fetchall()
    assert len(got) == 10 and all(10 <= r[1] <= 60 and r[2] % 4 == 1 for r in got)
    assert len({r[0] for r in got} & {r[0] for r in want}) >= 9


@pytest.mark.parametrize("sql,reason", [
    ("SELECT id FROM items ORDER BY array_cosine_distance(emb, $q::FLOAT[16]) LIMIT 5", "orders by cosine"),
    ("SELECT id FROM items ORDER BY array_distance(emb, $q::FLOAT[16]) DESC LIMIT 5", "farthest"),
    ("SELECT id FROM items ORDER BY price LIMIT 5", "no ORDER BY <distance>"),
    ("SELECT a.id FROM items a JOIN items b ON a.id = b.id ORDER BY array_distance(a.emb, $q::FLOAT[16]) LIMIT 5",
     "JOINS"),
    ("SELECT id FROM items ORDER BY array_distance(emb, (SELECT emb FROM items WHERE id = 1)) LIMIT 5",
     "constant query"),
    ("SELECT id FROM items ORDER BY array_distance(emb, $q::FLOAT[16])", "LIMIT"),
])
def test_no_rewrite_when_the_plan_is_not_sound(world, sql, reason):
    db, _, _, Q, _ = world
    params = {"q": Q[0]} if "$q" in sql else None
    plan = db.explain(sql, params)
    assert not plan.rewritten and reason in plan.reason, plan.reason
    assert plan.sql == sql
    assert db.sql(sql, params).fetchall() == db.con.sql(sql, params={"q": Q[0].tolist()} if params else None).fetchall()


def test_sql_finds_python_variables_like_duckdb(db):
    frame = {"x": np.arange(3)}  # noqa: F841 (found by DuckDB's replacement scan)
    import pyarrow as pa
    arrow_tbl = pa.table(frame)  # noqa: F841
    assert db.sql("SELECT sum(x) FROM arrow_tbl").fetchall() == [(3,)]


def test_column_named_like_an_output_column_is_refused_with_the_fix(db):
    X = np.random.default_rng(3).normal(size=(40, 4)).astype(np.float32)
    t = db.create_table("clash", dim=4, metric="l2", columns={"distance": "DOUBLE", "query": "INTEGER"})
    t.add({"id": np.arange(40), "emb": X, "distance": np.arange(40) * 1.0, "query": np.arange(40)})
    with pytest.raises(ValueError, match=r"'distance'.*select\(\['id'\]\).*RENAME COLUMN"):
        t.search(X[3]).limit(3).to_pandas()
    with pytest.raises(ValueError, match=r"'query'.*search's own 'query' output"):
        t.search(X[:2]).select(["id", "query"]).limit(2).to_pandas()
    got = t.search(X[3]).select(["id"]).limit(3).to_pandas()
    assert list(got.columns) == ["id", "distance"] and got["id"].iloc[0] == 3
    assert list(t.search(X[:2]).select(["id"]).limit(2).to_pandas().columns) == ["query", "id", "distance"]


@pytest.mark.parametrize("sql", [
    "SELECT id, bucket FROM items WHERE bucket < 2000 ORDER BY array_distance(emb, $q::FLOAT[16]) LIMIT 7",
    "SELECT i.id, array_distance(i.emb, $q::FLOAT[16]) AS d FROM items i ORDER BY array_distance(i.emb, $q::FLOAT[16]), "
    "i.id LIMIT 5",
    "SELECT id, price FROM items WHERE price BETWEEN 10 AND 60 AND bucket >= 100 "
    "ORDER BY array_distance(emb, $q::FLOAT[16]) LIMIT 10",
])
def test_rewrite_as_one_statement_over_the_index(world, sql):
    db, t, X, Q, bucket = world
    for q in Q[:4]:
        plan = db.explain(sql, q=q)
        assert plan.rewritten and "one statement over the index" in plan.reason and "IN (" not in plan.sql
        got = db.sql(sql, q=q).fetchall()
        want = db.con.sql(sql, params={"q": q.tolist()}).fetchall()
        assert len(got) == len(want)
        assert len({r[0] for r in got} & {r[0] for r in want}) >= len(want) - 1
        for g, w in zip(got, want):  # the same columns and types; distances equal to float rounding
            assert type(g[1]) is type(w[1])
        if "AS d" in sql:
            np.testing.assert_allclose([r[1] for r in got], [r[1] for r in want], rtol=1e-5, atol=1e-5)


def test_window_bounds_of_the_wrong_type_are_clear_errors(world):
    db, t, X, Q, bucket = world  # label: price DOUBLE
    for bad in ["abc", "2024-01-01", True]:
        with pytest.raises(ValueError, match="not a DOUBLE value, the type of the label column 'price'"):
            t.search(Q[0]).window(bad, None)
    assert len(t.search(Q[0]).window(np.float32(10), 50).limit(5).to_list()) == 5
    as_text = t.search(Q[0]).window(" 10", "5e1").limit(5).to_list()  # numbers as text read as DuckDB casts them
    assert as_text == t.search(Q[0]).window(10, 50).limit(5).to_list()
    ts = db.create_table("timed", dim=D, metric="l2", columns={"at": "TIMESTAMP"})
    import datetime as dt
    ts.add({"id": np.arange(200), "emb": X[:200], "at": [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i)
                                                          for i in range(200)]})
    ts.create_index(label="at")
    for bad in ["abc", 5, 2.5]:
        with pytest.raises(ValueError, match="not a TIMESTAMP value.*'2024-03-01'"):
            ts.search(Q[0]).window(bad, None)
    for good in ["2024-01-02", "2024-01-02 10:00", "2024-01-02 10:00:00+00", dt.date(2024, 1, 2),
                 np.datetime64("2024-01-02T00:00")]:
        assert len(ts.search(Q[0]).window(good, None).limit(3).to_list()) == 3


def test_a_table_of_ids_and_vectors_only_is_searched_without_a_statement():
    """No attribute columns to hold, nothing to look up: the direct path answers (one call into the core)."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3000, 8)).astype(np.float32)
    with knnsql.connect() as db:
        t = db.create_table("bare", dim=8, metric="l2")
        t.add({"id": np.arange(3000), "emb": X})
        t.create_index()
        s = t.search(X[5]).limit(3)
        ids, dist = s.to_numpy()
        assert s.plan == "index+attributes" and ids[0] == 5 and dist[0] == 0
        batch = t.search(X[:4]).limit(1).to_numpy()[0]
        assert batch[:, 0].tolist() == [0, 1, 2, 3]
