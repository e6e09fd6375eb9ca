"""The kNN analytics aggregates in SQL: same answers as the numpy API (itself checked against references
in test_analytics.py), any relation in, deterministic across thread counts, and clear errors."""

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import knnsql
from knnsql import analytics as A


def load(db, name, X, **cols):
    df = pd.DataFrame({"id": np.arange(len(X), dtype=np.int64), **cols})
    # through Arrow: DuckDB before 1.4 reads a pandas 3 string column's NA as the text '<NA>'
    db.con.register("_df", pa.Table.from_pandas(df, preserve_index=False))
    t = knnsql.vectors_table(np.asarray(X, dtype=np.float32), ids=np.arange(len(X)))
    db.con.register("_v", t)
    db.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT a.*, v.emb FROM _df a JOIN _v v ON a.id = v.id ORDER BY a.id")
    db.con.unregister("_df")
    db.con.unregister("_v")


@pytest.fixture
def data(db, rng):
    X = (rng.normal(size=(500, 6)) + np.repeat(rng.normal(scale=3, size=(3, 6)), [200, 200, 100], 0)).astype(np.float32)
    y = np.repeat([0, 1, 2], [200, 200, 100]).astype(np.int64)
    v = X[:, 0] * 2.0 + X[:, 1]
    test = rng.random(500) < 0.2
    load(db, "t", X, y=pd.array(np.where(test, None, y), dtype="Int64"),
         v=pd.array(np.where(test, None, v), dtype="Float64"), grp=np.arange(500) % 2)
    return X, y, v, test


def test_predict_sql_equals_numpy(db, data):
    X, y, v, test = data
    got = A.sql_predict(db, "t", k=7, label="y").sort_values("id")
    ref = A.predict(X[~test], y[~test], X[test], 7)
    assert (got.id.to_numpy() == np.flatnonzero(test)).all()
    assert (got.label.to_numpy() == ref.labels).all()
    np.testing.assert_allclose(got.prob.to_numpy(), ref.prob)
    reg = A.sql_predict(db, "t", k=5, label="v", weighting="distance").sort_values("id")
    ref = A.predict(X[~test], v[~test].astype(np.float64), X[test], 5, weighting="distance")
    np.testing.assert_allclose(reg.value.to_numpy(), ref.labels, rtol=1e-6)
    soft = A.sql_predict(db, "t", k=5, label="y", weighting="softmax", temperature=0.3).sort_values("id")
    ref = A.predict(X[~test], y[~test], X[test], 5, weighting="softmax", temperature=0.3)
    assert (soft.label.to_numpy() == ref.labels).all()


def test_predict_adaptive_sql_equals_numpy(db, data):
    X, y, v, test = data
    got = A.sql_predict(db, "t", k=9, label="y", adaptive=True, support=7).sort_values("id")
    ref = A.predict(X[~test], y[~test], X[test], 9, adaptive=True, support=7)
    assert (got.k_used.to_numpy() == ref.k_used).all()
    assert (got.label.to_numpy() == ref.labels).all()


def test_predict_through_an_index(db, data):
    X, y, v, test = data
    db.execute("SELECT * FROM knn_index_create('tix', dim := 6, kind := 'flat')").fetchall()
    db.execute("SELECT knn_index_insert('tix', id, emb) FROM t WHERE y IS NOT NULL").fetchall()
    exact = A.sql_predict(db, "t", k=5, label="y").sort_values("id")
    via = A.sql_predict(db, "t", k=5, label="y", index="tix").sort_values("id")
    assert (exact.label.to_numpy() == via.label.to_numpy()).all()
    db.execute("SELECT * FROM knn_index_create('gix', dim := 6, kind := 'graph', ef := 128)").fetchall()
    db.execute("SELECT knn_index_insert('gix', id, emb) FROM t WHERE y IS NOT NULL").fetchall()
    approx = A.sql_predict(db, "t", k=5, label="y", index="gix").sort_values("id")
    assert (exact.label.to_numpy() == approx.label.to_numpy()).mean() > 0.97
    with pytest.raises(duckdb.Error, match="index 'gix' uses metric 'l2' but the call uses 'cosine'"):
        A.sql_predict(db, "t", k=5, label="y", index="gix", metric="cosine")
    # an index holding ids without a label in the input
    db.execute("SELECT knn_index_insert('tix', id + 1000, emb) FROM t WHERE y IS NULL").fetchall()
    with pytest.raises(duckdb.Error, match="not among the labelled rows"):
        db.execute("SELECT knn_predict(id, emb, y, 5, 'index=tix') FROM t WHERE id % 3 = 0").fetchall()


@pytest.mark.parametrize("kind", ["VARCHAR", "ENUM", "BOOLEAN"])
def test_predict_categorical_labels_equal_sklearn(db, data, kind):
    from sklearn.neighbors import KNeighborsClassifier

    X, y, v, test = data
    names = np.array(["zebra", "ant", "émeu"])[y] if kind != "BOOLEAN" else (y == 1)
    col = pd.array(np.where(test, None, names), dtype="string" if kind != "BOOLEAN" else "boolean")
    load(db, "s", X, y=col)
    if kind == "ENUM":
        db.execute("CREATE TYPE animal AS ENUM ('zebra', 'ant', 'émeu')")
        db.execute("CREATE OR REPLACE TABLE s AS SELECT id, y::animal AS y, emb FROM s")
    got = A.sql_predict(db, "s", k=5, label="y").sort_values("id")
    sk = KNeighborsClassifier(5, algorithm="brute").fit(X[~test], names[~test])
    assert (got.id.to_numpy() == np.flatnonzero(test)).all()
    assert (got.label.astype(object).to_numpy() == sk.predict(X[test]).astype(object)).all()
    np.testing.assert_allclose(got.prob.to_numpy(), sk.predict_proba(X[test]).max(1))
    # numpy's predict takes the same labels directly
    assert (A.predict(X[~test], names[~test], X[test], 5).labels == sk.predict(X[test])).all()


def test_predict_categorical_ties_go_to_the_label_that_sorts_first(db):
    X = np.array([[0.0], [2.0], [1.0]], dtype=np.float32)
    load(db, "ties", X, y=pd.array(["b", "a", None], dtype="string"))
    got = A.sql_predict(db, "ties", k=2, label="y")
    assert got.label.tolist() == ["a"] and got.prob.tolist() == [0.5]


def test_predict_refine_equals_numpy_on_the_same_graph(db, rng):
    n, d = 2000, 16
    y = rng.integers(0, 4, n + 300)
    X = (rng.normal(scale=0.6, size=(4, d))[y] + rng.normal(size=(n + 300, d))).astype(np.float32)
    v = X[:, 0] * 2 + X[:, 1]
    test = np.arange(n + 300) >= n  # training ids 0..n-1: the graph's ids are the numpy row positions
    load(db, "w", X, y=pd.array(np.where(test, None, y), dtype="Int64"),
         v=pd.array(np.where(test, None, v), dtype="Float64"))
    db.execute("SELECT * FROM knn_index_create('wix', dim := 16, kind := 'graph', m := 4, ef_construction := 16)")
    db.execute("SELECT knn_index_insert('wix', id, emb) FROM w WHERE id < 2000").fetchall()
    blob = b"".join(r[1] for r in db.execute("SELECT * FROM knn_index_dump('wix') ORDER BY part").fetchall())
    ix = knnsql.Index.from_bytes(blob)
    for label, target in (("y", y[:n]), ("v", v[:n])):
        got = A.sql_predict(db, "w", k=5, label=label, index="wix", ef=5, refine_ef=200).sort_values("id")
        ref = A.predict(X[:n], target, X[n:], 5, index=ix, ef=5, refine_ef=200)
        assert (ref.stage == 2).any()
        col = "label" if label == "y" else "value"
        np.testing.assert_allclose(got[col].to_numpy(), ref.labels, rtol=1e-6)
        plain = A.sql_predict(db, "w", k=5, label=label, index="wix", ef=5).sort_values("id")
        assert (plain[col].to_numpy() != got[col].to_numpy()).any()


def test_predict_refine_errors(db, data):
    db.execute("SELECT * FROM knn_index_create('fx', dim := 6, kind := 'flat')").fetchall()
    db.execute("SELECT knn_index_insert('fx', id, emb) FROM t WHERE y IS NOT NULL").fetchall()
    db.execute("SELECT * FROM knn_index_create('gx', dim := 6, kind := 'graph')").fetchall()
    db.execute("SELECT knn_index_insert('gx', id, emb) FROM t WHERE y IS NOT NULL").fetchall()
    with pytest.raises(duckdb.Error, match="refine_ef re-searches the queries of a graph index search; add 'index="):
        db.execute("SELECT knn_predict(id, emb, y, 5, 'refine_ef=64') FROM t").fetchall()
    with pytest.raises(duckdb.Error, match="index 'fx' is flat \\(exact\\); drop refine_ef"):
        db.execute("SELECT knn_predict(id, emb, y, 5, 'index=fx, refine_ef=64') FROM t").fetchall()
    with pytest.raises(duckdb.Error, match="refine_ef and adaptive=true cannot be combined"):
        db.execute("SELECT knn_predict(id, emb, y, 5, 'index=gx, refine_ef=64, adaptive=true') FROM t").fetchall()
    with pytest.raises(duckdb.Error, match="option 'refine_ef' must be"):
        db.execute("SELECT knn_predict(id, emb, y, 5, 'index=gx, refine_ef=0') FROM t").fetchall()


def test_predict_per_group_and_query_relation(db, data):
    X, y, v, test = data
    rows = db.execute("SELECT grp, len(knn_predict(id, emb, y, 3)) FROM t GROUP BY grp ORDER BY grp").fetchall()
    assert [r[1] for r in rows] == [int(test[::2].sum()), int(test[1::2].sum())]
    sub = A.sql_predict(db, "SELECT * FROM t WHERE id < 250", k=3, label="y")
    assert (sub.id < 250).all()


def test_impute_sql_equals_numpy_and_is_deterministic(db, data):
    X, y, v, test = data
    got = A.sql_impute(db, "t", k=5, value="v", draws=4, seed=7).sort_values("id")
    ref = A.impute(X, np.where(test, np.nan, v).astype(np.float64), 5, draws=4, seed=7)
    np.testing.assert_allclose(got.value.to_numpy(), ref.mean, rtol=1e-6)
    np.testing.assert_allclose(got.lo.to_numpy(), ref.lo, rtol=1e-6)
    np.testing.assert_allclose(np.stack(got.draws.to_numpy()), ref.draws, rtol=1e-6)


def test_smote_sql_on_segments(db, data):
    X, y, v, test = data
    got = A.sql_smote(db, "t", 50, k=4, where="y = 2", seed=3)
    assert len(got) == 50
    minority = db.execute("SELECT id FROM t WHERE y = 2 ORDER BY id").fetchnumpy()["id"]
    Xm = X[minority]
    pos = {int(i): p for p, i in enumerate(minority)}
    nbr, _ = A.neighbors(Xm, None, 4)
    for r in got.itertuples():
        p, q = pos[r.parent_id], pos[r.neighbor_id]
        assert q in nbr[p]
        np.testing.assert_allclose(np.asarray(r.vec), Xm[p] + r.gap * (Xm[q] - Xm[p]), atol=1e-5)
    same = A.sql_smote(db, "t", 50, k=4, where="y = 2", seed=3)
    assert (same.gap.to_numpy() == got.gap.to_numpy()).all()


def test_estimators_sql_equal_numpy(db, data):
    X, y, v, test = data
    rows, table = A.sql_lid(db, "t", k=10)
    ref_rows, ref_table = A.lid(X, 10)
    assert table == pytest.approx(ref_table)
    np.testing.assert_allclose(rows.sort_values("id").lid.to_numpy(), ref_rows)
    P, Q = X[y == 0], X[y != 0]
    assert A.sql_divergence(db, "t", "y = 0 AND NOT (id IN (SELECT id FROM t WHERE y IS NULL))", k=5) is not None
    full = "SELECT id, emb, (id < 200) AS p FROM t"
    P, Q = X[:200], X[200:]
    assert A.sql_divergence(db, full, "p", k=5) == pytest.approx(A.divergence(P, Q, 5), rel=1e-6)
    assert A.sql_divergence(db, full, "p", k=5, method="renyi", alpha=0.7) == pytest.approx(
        A.divergence(P, Q, 5, method="renyi", alpha=0.7), rel=1e-6)
    pr = A.sql_precision_recall(db, full, "NOT p", k=3)
    ref = A.precision_recall(P, Q, 3)
    for key, val in ref.items():
        assert pr[key] == pytest.approx(val, rel=1e-6), key
    it = A.sql_iid_test(db, "t", "id", k=5, permutations=30, seed=1)
    ref = A.iid_test(X, 5, permutations=30, seed=1)
    assert it["statistic"] == pytest.approx(ref.statistic) and it["p_value"] == pytest.approx(ref.p_value)
    assert it["non_iid"]  # rows come in class blocks: neighbours sit close in id order
    sc = db.execute("SELECT r.pos, r.score FROM (SELECT unnest(knn_iid_scores(id, emb, 5)) AS r FROM t) "
                    "ORDER BY r.pos").fetchnumpy()
    assert (sc["pos"] == np.arange(500)).all()
    np.testing.assert_allclose(sc["score"], ref.scores)


def test_sampling_sql_equals_numpy(db, data):
    X, y, v, test = data
    got = A.sql_importance_sample(db, "t", "y = 2", 30, k=8, seed=5)
    raw = np.flatnonzero((y != 2) & ~test)  # a NULL flag (unlabelled row) skips the row
    tgt = np.flatnonzero((y == 2) & ~test)
    picked, logw = A.importance_sample(X[raw], X[tgt], 30, 8, seed=5)
    got = got.sort_values("id")
    assert (got.id.to_numpy() == raw).all()
    np.testing.assert_allclose(got.log_weight.to_numpy(), logw)
    order = got.dropna(subset=["pick"]).sort_values("pick").id.to_numpy()
    assert (order == raw[picked]).all()
    dens = A.sql_density_sample(db, "t", 20, k=5, alpha=2.0, seed=9).sort_values("id")
    picked, logw = A.density_sample(X, 20, 5, alpha=2.0, seed=9)
    np.testing.assert_allclose(dens.log_weight.to_numpy(), logw)
    assert (dens.dropna(subset=["pick"]).sort_values("pick").id.to_numpy() == picked).all()


def test_results_do_not_depend_on_threads_or_row_order(rng):
    X = rng.normal(size=(4000, 4)).astype(np.float32)
    outs = []
    for threads, order in ((1, "id"), (4, "random()")):
        with knnsql.connect() as db:
            db.execute(f"SET threads = {threads}")
            load(db, "s", X, y=pd.array(np.where(np.arange(4000) % 9 == 0, None, np.arange(4000) % 3), dtype="Int64"))
            db.execute(f"CREATE TABLE s2 AS SELECT * FROM s ORDER BY {order}")
            outs.append((
                A.sql_predict(db, "s2", k=5, label="y").sort_values("id").reset_index(drop=True),
                A.sql_smote(db, "s2", 20, k=3, where="y = 1", seed=2).reset_index(drop=True),
                A.sql_density_sample(db, "s2", 10, k=3, seed=2).sort_values("id").reset_index(drop=True),
                A.sql_iid_test(db, "s2", "id", k=5, permutations=20),
            ))
    a, b = outs
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2])
    assert a[3] == b[3]


def test_recall_sql(db, rng):
    X = rng.normal(size=(3000, 8)).astype(np.float32)
    load(db, "docs", X, label=np.arange(3000.0))
    db.execute("SELECT * FROM knn_index_create('dix', dim := 8, kind := 'graph', m := 4, ef_construction := 16)").fetchall()
    db.execute("SELECT knn_index_insert('dix', id, emb, label) FROM docs").fetchall()
    weak = A.sql_recall(db, "dix", "SELECT emb FROM docs WHERE id < 50", k=10, ef=10).recall.mean()
    strong = A.sql_recall(db, "dix", "SELECT emb FROM docs WHERE id < 50", k=10, ef=300).recall.mean()
    assert weak < strong and strong > 0.95
    win = A.sql_recall(db, "dix", "SELECT emb FROM docs WHERE id < 50", k=10, ef=64, lo=0, hi=300)
    assert win.recall.between(0, 1).all()
    db.execute("SELECT * FROM knn_index_create('fix', dim := 8, kind := 'flat')").fetchall()
    db.execute("SELECT knn_index_insert('fix', id, emb) FROM docs").fetchall()
    assert db.execute("SELECT min(knn_recall('fix', emb, 5)) FROM docs WHERE id < 5").fetchone()[0] == 1.0
    with pytest.raises(duckdb.Error, match="knn_recall: dimension mismatch"):
        db.execute("SELECT knn_recall('dix', [1, 2]::FLOAT[2], 5)").fetchall()
    with pytest.raises(duckdb.Error, match="nope"):
        db.execute("SELECT knn_recall('nope', emb, 5) FROM docs LIMIT 1").fetchall()


def test_index_recall_leaves_each_row_out_of_its_own_answer(db, rng):
    """knn_index_recall with every row as a query equals, row for row, the graph's k + 1 nearest without the
    row itself scored against the exact (k + 1)-th distance (the k-th of the other rows); the figure, k, ef
    and row count show in knn_indexes()."""
    X = rng.normal(size=(1200, 8)).astype(np.float32)
    load(db, "docs", X)
    db.execute("SELECT * FROM knn_index_create('dix', dim := 8, m := 4, ef_construction := 16)").fetchall()
    db.execute("SELECT knn_index_insert('dix', id, emb) FROM docs").fetchall()
    assert db.execute("SELECT recall, recall_rows FROM knn_indexes()").fetchall() == [(None, None)]
    d2 = ((X[:, None, :].astype(np.float64) - X[None]) ** 2).sum(-1)
    kth = np.sort(d2, 1)[:, 10]  # the (k+1)-th, itself first at 0
    want = []
    for i in range(len(X)):
        got = db.execute("SELECT id, distance FROM knn_search('dix', $q, k := 11, ef := 12)", {"q": X[i].tolist()}
                         ).fetchall()
        others = [d for j, d in got if j != i][:10]
        want.append(sum(d <= kth[i] * (1 + 1e-5) + 1e-6 for d in others) / 10)
    got = db.execute("SELECT recall, k, ef, queries, rows FROM knn_index_recall('dix', ef := 12, sample := 5000)"
                     ).fetchall()[0]
    assert got[1:] == (10, 12, 1200, 1200) and got[0] == pytest.approx(np.mean(want), abs=2e-3)
    assert 0.3 < got[0] < 0.999  # a thin graph at a narrow beam: a figure worth reporting
    assert db.execute("SELECT recall, recall_k, recall_ef, recall_rows FROM knn_indexes()").fetchall() == \
        [(got[0], 10, 12, 1200)]
    wide = db.execute("SELECT recall FROM knn_index_recall('dix', ef := 400, sample := 100)").fetchone()[0]
    assert wide > got[0] and wide >= 0.97  # m = 4 built by two threads: the graph varies a little run to run
    db.execute("SELECT * FROM knn_index_create('fix', dim := 8, kind := 'flat')").fetchall()
    db.execute("SELECT knn_index_insert('fix', id, emb) FROM docs").fetchall()
    assert db.execute("SELECT recall, ef FROM knn_index_recall('fix')").fetchall() == [(1.0, None)]
    db.execute("SELECT * FROM knn_index_create('empty', dim := 8)").fetchall()
    assert db.execute("SELECT recall, queries FROM knn_index_recall('empty')").fetchall() == [(None, 0)]
    for sql, message in [("knn_index_recall('dix', k := 0)", "k must be an integer from 1 to 10000"),
                         ("knn_index_recall('dix', sample := -3)", "sample must be an integer from 1"),
                         ("knn_index_recall('nope')", "unknown index 'nope'")]:
        with pytest.raises(duckdb.Error, match=message):
            db.execute(f"SELECT * FROM {sql}").fetchall()


def test_index_tune_picks_the_smallest_ladder_width_reaching_the_target(db, rng):
    """knn_index_tune over held-out queries: the default ef it sets reaches the target on them with one standard
    error to spare (knn_recall at the default width), the rung below does not, and knn_indexes() shows the width
    and the recall."""
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    H = rng.normal(size=(300, 16)).astype(np.float32)
    load(db, "docs", X)
    load(db, "held", H)
    db.execute("SELECT * FROM knn_index_create('g', dim := 16, m := 6, ef_construction := 40)").fetchall()
    db.execute("SELECT knn_index_insert('g', id, emb) FROM docs").fetchall()
    ef = db.execute("SELECT knn_index_tune('g', emb, 0.95) FROM held").fetchone()[0]
    ladder = [10]
    while ladder[-1] < ef:
        ladder.append(int(np.ceil(ladder[-1] * 1.08)))
    assert ladder[-1] == ef and ef > 10
    def mean_se(ef_sql):
        r = np.array([x for (x,) in db.execute(f"SELECT knn_recall('g', emb, 10{ef_sql}) FROM held").fetchall()])
        return r.mean(), r.std(ddof=1) / np.sqrt(len(r))

    at, se = mean_se("")  # the default width: the tuned one
    below, se_below = mean_se(f", {ladder[-2]}")
    assert at - se >= 0.95 > below - se_below
    assert db.execute("SELECT ef, recall_ef, round(recall, 9) FROM knn_indexes()").fetchall() == [(ef, ef, round(float(at), 9))]
    for sql, message in [("SELECT knn_index_tune('g', emb, 1.5) FROM held", "target_recall must be in"),
                         ("SELECT knn_index_tune('g', [1, 2]::FLOAT[2], 0.9)", "dimension mismatch"),
                         ("SELECT knn_index_tune('g', emb, 0.9, 0) FROM held", "k must be 1 to 10000")]:
        with pytest.raises(duckdb.Error, match=message):
            db.execute(sql).fetchall()
    db.execute("SELECT * FROM knn_index_create('f', dim := 16, kind := 'flat')").fetchall()
    with pytest.raises(duckdb.Error, match="flat: it is exact"):
        db.execute("SELECT knn_index_tune('f', emb, 0.9) FROM held").fetchall()


@pytest.mark.parametrize("sql, message", [
    ("SELECT knn_predict(id, emb, NULL::BIGINT, 3) FROM t", "knn_predict: no row has a label"),
    ("SELECT knn_predict(id, emb, y, 1000) FROM t", "knn_predict: k = 1000 is larger than the"),
    ("SELECT knn_predict(id, emb, y, 0) FROM t", "knn_predict: k must be >= 1, got 0"),
    ("SELECT knn_predict(id, emb, y, NULL) FROM t", "knn_predict: k must not be NULL"),
    ("SELECT knn_predict(id, emb, y, 3, 'weighting=gauss') FROM t", "weighting must be uniform, distance or softmax"),
    ("SELECT knn_predict(id, emb, y, 3, 'draws=3') FROM t", "knn_predict: unknown option 'draws'; accepted keys:"),
    ("SELECT knn_predict(id, emb, y, 3, 'metric=manhattan') FROM t", "unknown metric 'manhattan'"),
    ("SELECT knn_predict(id, emb, y, 3, 'index=missing') FROM t", "missing"),
    ("SELECT knn_predict(id, emb, y, 3, 'temperature') FROM t", "option 'temperature' needs a value"),
    ("SELECT knn_predict(id, emb, y, 3, 'temperature=-1') FROM t", "option 'temperature' must be a number"),
    ("SELECT knn_predict(id, CASE WHEN id = 7 THEN [1, 2]::FLOAT[] ELSE emb::FLOAT[] END, y, 3) FROM t",
     "dimension mismatch"),
    ("SELECT knn_predict(id, CASE WHEN id = 7 THEN [1, NULL, 3, 4, 5, 6]::FLOAT[] ELSE emb::FLOAT[] END, y, 3) FROM t",
     "contains a NULL element"),
    ("SELECT knn_predict(id, emb, y, (id % 2 + 1)::BIGINT) FROM t", "must be the same for every row of a group"),
    ("SELECT knn_impute(id, emb, NULL::DOUBLE, 3) FROM t", "knn_impute: no row has an observed"),
    ("SELECT knn_impute(id, emb, 'nan'::DOUBLE, 3) FROM t", "is NaN or Inf; use NULL for a missing value"),
    ("SELECT knn_smote(id, emb, 5, 3) FROM t WHERE id < 3", "knn_smote: k = 3 needs at least k + 1 = 4 minority rows"),
    ("SELECT knn_smote(id, emb, -1, 3) FROM t", "n must be >= 0"),
    ("SELECT knn_lid(id, emb, 1) FROM t", "k must be >= 2"),
    ("SELECT knn_divergence(emb, true, 3) FROM t", "both sets need rows (got 500 in P and 0 in Q)"),
    ("SELECT knn_divergence(emb, id < 250, 3, 'method=js') FROM t", "method must be kl, renyi"),
    ("SELECT knn_precision_recall(emb, id < 3, 3) FROM t", "smaller than both set sizes"),
    ("SELECT knn_iid_test(id, emb, 500) FROM t", "k = 500 needs at least k + 1 = 501 rows"),
    ("SELECT knn_importance_sample(id, emb, false, 5, 3) FROM t", "both sets need rows"),
    ("SELECT knn_importance_sample(id, emb, id < 100, 450, 3) FROM t", "n = 450 is larger than the 400 raw rows"),
    ("SELECT knn_density_sample(id, emb, 600, 3) FROM t", "n = 600 is larger than the 500 rows"),
    ("SELECT knn_density_sample(id, [1, 'nan'::FLOAT]::FLOAT[2], 6, 3) FROM t", "NaN or Inf"),
])
def test_errors(db, data, sql, message):
    with pytest.raises(duckdb.Error) as err:
        db.execute(sql).fetchall()
    assert message in str(err.value)


def test_empty_input_and_nulls(db, data):
    assert db.execute("SELECT knn_predict(id, emb, y, 3) FROM t WHERE false").fetchone()[0] is None
    assert db.execute("SELECT knn_divergence(emb, id < 3, 3) FROM t WHERE false").fetchone()[0] is None
    assert db.execute("SELECT knn_precision_recall(emb, id < 3, 3) FROM t WHERE false").fetchone()[0] is None
    assert db.execute("SELECT knn_iid_test(id, emb, 3) FROM t WHERE false").fetchone()[0] is None
    # rows with a NULL id, vector or side flag are skipped
    n = db.execute("SELECT len(knn_lid(CASE WHEN id < 10 THEN NULL ELSE id END, emb, 5)) FROM t").fetchone()[0]
    assert n == 490
    n = db.execute("SELECT len(knn_density_sample(id, (CASE WHEN id < 10 THEN NULL ELSE emb::FLOAT[] END)::FLOAT[6], 3, 5)) FROM t").fetchone()[0]
    assert n == 490
    a = db.execute("SELECT knn_divergence(emb, CASE WHEN id < 50 THEN NULL ELSE id < 250 END, 5) FROM t").fetchone()[0]
    b = db.execute("SELECT knn_divergence(emb, id < 250, 5) FROM t WHERE id >= 50").fetchone()[0]
    assert a == pytest.approx(b)
