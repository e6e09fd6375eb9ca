"""Suite "analytics": kNN prediction and kNN imputation, knnsql against scikit-learn, same run.

**predict** — Fashion-MNIST (60,000 x 784 training images, labels 0..9; the 10,000 test images, or
``--queries`` of them, as queries), k = 5, uniform weights, squared L2 (the same neighbours as
Euclidean). Contenders:

=======================  ==============================================================================
sklearn                  ``KNeighborsClassifier(5, algorithm='brute', n_jobs=-1).fit(X, y).predict(Q)``
knnsql exact (numpy)     ``knnsql.analytics.predict(X, y, Q, 5)`` (blocked many-query exact scan)
knnsql graph (numpy)     ``predict(X, y, Q, 5, index=ix, ef=ef)`` over an HNSW ``knnsql.Index`` built once
                         (m = 16, ef_construction = 200, the index default; build time reported separately)
knnsql SQL exact         ``SELECT knn_predict(id, emb, label, 5) FROM fm`` (test rows have a NULL label)
knnsql SQL graph         ``knn_predict(id, emb, label, 5, 'index=fm_ix, ef=...')`` over a graph index
... refine               ``predict(..., index=ix, ef=64, refine_ef=...)`` / ``'index=fm_ix, ef=64,
                         refine_ef=...'``: unsettled votes (replacing 2 of the 5 neighbours could change
                         them) searched again with the wider beam, and those the wider beam moved and
                         left unsettled scanned exactly (see ``knn_an_unsettled``)
=======================  ==============================================================================

Threads: scikit-learn computes distances with OpenBLAS on both cores (``n_jobs=-1`` for the rest);
knnsql's graph search and exact scan also use both cores (one query per thread / blocked scan).

Accuracy is measured against the test labels; predictions are compared with scikit-learn's.

**impute** — the first ``--impute-rows`` Fashion-MNIST training images; one pixel (column 350, near
the centre) is hidden in 20% of the rows and imputed from the other 783 pixels, k = 5:
scikit-learn ``KNNImputer(n_neighbors=5)`` on the full matrix vs ``knnsql.analytics.impute`` (and the
SQL aggregate ``knn_impute``). With complete covariates KNNImputer's nan-Euclidean distance orders
donors like the Euclidean one, so the values must agree; the share of equal values is reported.

Times are medians over ``--repeats`` runs, contenders interleaved within each repeat, a short pause
between contenders; ratios are taken against scikit-learn in the same run.
"""

from __future__ import annotations

import gzip

import numpy as np

from _common import fmt, interleaved, log, machine_markdown, md_table, median, ratio, timed

NAME = "analytics"
SUMMARY = "knn_predict vs sklearn KNeighborsClassifier (Fashion-MNIST), knn_impute vs KNNImputer"
DEFAULT_DATASETS = ["fashion"]

K = 5
FULL = dict(repeats=3, queries=10_000, impute_rows=10_000, efs=[64, 128, 192], refine=[(64, 192), (64, 256)])
QUICK = dict(repeats=1, queries=1_000, impute_rows=5_000, efs=[32], refine=[(32, 128)])
IMPUTE_COL = 350


def add_arguments(p) -> None:
    p.add_argument("--queries", type=int, default=None, help="test images used as queries (default 10000)")
    p.add_argument("--impute-rows", type=int, default=None, help="rows of the imputation workload (default 10000)")
    p.add_argument("--no-sql", action="store_true", help="skip the SQL contenders")


def _labels(path) -> np.ndarray:
    raw = gzip.open(path).read()
    if int.from_bytes(raw[:4], "big") != 0x00000801:
        raise ValueError(f"{path} is not an IDX1 label file")
    return np.frombuffer(raw, np.uint8, offset=8).astype(np.int64)


def _fashion():
    import datasets

    ds = datasets.load_fashion()
    d = datasets._fashion_dir()
    y = _labels(d / "train-labels-idx1-ubyte.gz")
    yq = _labels(d / "t10k-labels-idx1-ubyte.gz")
    return ds.X, y, ds.Q, yq


def _load_sql(con, X, y, Q):
    import pyarrow as pa

    import knnsql

    n, nq = len(X), len(Q)
    allv = np.concatenate([X, Q])
    t = knnsql.vectors_table(allv, ids=np.arange(n + nq))
    lab = pa.array(np.concatenate([y, np.zeros(nq, np.int64)]), mask=np.r_[np.zeros(n, bool), np.ones(nq, bool)])
    t = t.append_column("label", lab)
    con.register("_fm", t)
    con.execute("CREATE OR REPLACE TABLE fm AS SELECT * FROM _fm")
    con.unregister("_fm")


def predict_workload(opts, no_sql: bool) -> dict:
    from sklearn.neighbors import KNeighborsClassifier

    import knnsql
    from knnsql import analytics as A

    X, y, Q, yq = _fashion()
    Q, yq = Q[: opts["queries"]], yq[: opts["queries"]]
    log(f"predict: {len(X)} x {X.shape[1]} train, {len(Q)} queries, k = {K}")
    t_build, ix = timed(lambda: _build(knnsql, X))
    log(f"  graph build {t_build:.1f} s")
    con = None
    if not no_sql:
        db = knnsql.connect()
        con = db.con
        _load_sql(con, X, y, Q)
        t_sql_build, _ = timed(lambda: (con.execute(
            "SELECT * FROM knn_index_create('fm_ix', dim := 784, kind := 'graph', m := 16, ef_construction := 200)"
        ).fetchall(), con.execute("SELECT knn_index_insert('fm_ix', id, emb) FROM fm WHERE label IS NOT NULL").fetchall()))
        log(f"  SQL graph build {t_sql_build:.1f} s")

    def sk():
        return KNeighborsClassifier(K, algorithm="brute", n_jobs=-1).fit(X, y).predict(Q)

    def sql(opt):
        rows = con.execute(f"SELECT r.id, r.label FROM (SELECT unnest(knn_predict(id, emb, label, {K}{opt})) AS r "
                           "FROM fm) ORDER BY r.id").fetchnumpy()
        return rows["label"]

    cs = {"sklearn": sk, "knnsql exact (numpy)": lambda: A.predict(X, y, Q, K).labels}
    stages = {}

    def refined(name, ef, ref):
        r = A.predict(X, y, Q, K, index=ix, ef=ef, refine_ef=ref)
        stages[name] = np.bincount(r.stage, minlength=3).tolist()
        return r.labels

    for ef in opts["efs"]:
        cs[f"knnsql graph ef={ef} (numpy)"] = (lambda ef=ef: A.predict(X, y, Q, K, index=ix, ef=ef).labels)
    for ef, ref in opts["refine"]:
        name = f"knnsql graph ef={ef} refine_ef={ref} (numpy)"
        cs[name] = (lambda name=name, ef=ef, ref=ref: refined(name, ef, ref))
    if con is not None:
        cs["knnsql SQL exact"] = lambda: sql("")
        for ef in opts["efs"]:
            cs[f"knnsql SQL graph ef={ef}"] = (lambda ef=ef: sql(f", 'index=fm_ix, ef={ef}'"))
        for ef, ref in opts["refine"]:
            cs[f"knnsql SQL graph ef={ef} refine_ef={ref}"] = (
                lambda ef=ef, ref=ref: sql(f", 'index=fm_ix, ef={ef}, refine_ef={ref}'"))
    times, preds = interleaved(cs, opts["repeats"], np.asarray,
                               lambda name, t, p: f", accuracy {np.mean(p == yq):.4f}")
    base = median(times["sklearn"])
    out = {}
    for name in cs:
        out[name] = {"median_s": median(times[name]), "times_s": times[name],
                     "accuracy": float(np.mean(preds[name] == yq)),
                     "agree_with_sklearn": float(np.mean(preds[name] == preds["sklearn"])),
                     "speedup_vs_sklearn": base / median(times[name]),
                     "speedup_each_repeat": [a / b for a, b in zip(times["sklearn"], times[name])]}
        if name in stages:
            out[name]["stages"] = stages[name]
    return {"n": len(X), "dim": int(X.shape[1]), "queries": len(Q), "k": K, "graph_build_s": t_build,
            "contenders": out}


def _build(knnsql, X):
    ix = knnsql.Index(X.shape[1], kind="graph", m=16, ef_construction=200)
    ix.add(X, np.arange(len(X)))
    return ix


def impute_workload(opts, no_sql: bool) -> dict:
    from sklearn.impute import KNNImputer

    import knnsql
    from knnsql import analytics as A

    X, _, _, _ = _fashion()
    X = X[: opts["impute_rows"]].astype(np.float64)
    rng = np.random.default_rng(0)
    y = X[:, IMPUTE_COL].copy()
    miss = rng.random(len(y)) < 0.2
    y[miss] = np.nan
    cov = np.ascontiguousarray(np.delete(X, IMPUTE_COL, axis=1), dtype=np.float32)
    M = np.column_stack([cov.astype(np.float64), y])
    log(f"impute: {len(X)} rows, {cov.shape[1]} covariates, {int(miss.sum())} missing, k = {K}")
    con = None
    if not no_sql:
        import pyarrow as pa

        db = knnsql.connect()
        con = db.con
        t = knnsql.vectors_table(cov, ids=np.arange(len(cov)))
        t = t.append_column("v", pa.array(np.where(miss, 0, y), mask=miss))
        con.register("_im", t)
        con.execute("CREATE TABLE im AS SELECT * FROM _im")
        con.unregister("_im")

    def sql():
        r = con.execute(f"SELECT r.id, r.value FROM (SELECT unnest(knn_impute(id, emb, v, {K})) AS r FROM im) "
                        "ORDER BY r.id").fetchnumpy()
        return r["value"]

    cs = {"sklearn KNNImputer": lambda: KNNImputer(n_neighbors=K).fit_transform(M)[miss, -1],
          "knnsql impute (numpy)": lambda: A.impute(cov, y, K).mean}
    if con is not None:
        cs["knnsql SQL knn_impute"] = sql
    times, vals = interleaved(cs, opts["repeats"], lambda v: np.asarray(v, dtype=np.float64))
    ref = vals["sklearn KNNImputer"]
    base = median(times["sklearn KNNImputer"])
    out = {}
    for name in cs:
        diff = np.abs(vals[name] - ref)
        out[name] = {"median_s": median(times[name]), "times_s": times[name], "equal_share": float(np.mean(diff < 1e-6)),
                     "max_abs_diff": float(diff.max()), "speedup_vs_sklearn": base / median(times[name])}
    return {"rows": len(X), "covariates": int(cov.shape[1]), "missing": int(miss.sum()), "k": K, "contenders": out}


def run(args) -> dict:
    opts = dict(QUICK if args.quick else FULL)
    if args.repeats:
        opts["repeats"] = args.repeats
    if args.queries:
        opts["queries"] = args.queries
    if args.impute_rows:
        opts["impute_rows"] = args.impute_rows
    import threadpoolctl  # noqa: F401  (scikit-learn's dependency: confirms BLAS threads are visible)

    return {"options": opts, "predict": predict_workload(opts, args.no_sql), "impute": impute_workload(opts, args.no_sql)}


def to_markdown(doc: dict) -> str:
    res = doc["results"]
    p, im = res["predict"], res["impute"]
    L = [f"# analytics suite{' (quick)' if doc['quick'] else ''}", "", f"Command: `{doc['command']}`", "",
         machine_markdown(doc["machine"]), "",
         f"## knn_predict vs KNeighborsClassifier — Fashion-MNIST {p['n']:,} x {p['dim']}, {p['queries']:,} queries, "
         f"k = {p['k']}", "",
         f"Graph index build (m = 16, ef_construction = 200, once, not in the times): {p['graph_build_s']:.1f} s.", ""]
    rows = []
    for name, c in p["contenders"].items():
        each = c.get("speedup_each_repeat")
        rows.append([name, fmt(c["median_s"]), f"{c['speedup_vs_sklearn']:.2f}x",
                     f"{min(each):.2f}x" if each else "", f"{c['accuracy']:.4f}", f"{c['agree_with_sklearn']:.4f}"])
    L.append(md_table(["contender", "median s", "vs sklearn", "worst repeat", "accuracy", "same label as sklearn"],
                      rows))
    refs = [(name, c["stages"]) for name, c in p["contenders"].items() if "stages" in c]
    if refs:
        L += ["", "Refinement (numpy runs; the SQL form takes the same steps over its own graph): "
              + "; ".join(f"{name}: {st[1] + st[2]:,} of {p['queries']:,} queries searched again, {st[2]:,} of them "
                          "scanned exactly" for name, st in refs) + "."]
    L += ["", "Threads: scikit-learn's distances run on OpenBLAS over both cores (n_jobs=-1); knnsql's searches "
          "and scans use both cores too."]
    L += ["", f"## knn_impute vs KNNImputer — {im['rows']:,} rows, {im['covariates']} covariates, "
          f"{im['missing']:,} missing values, k = {im['k']}", ""]
    rows = []
    for name, c in im["contenders"].items():
        rows.append([name, fmt(c["median_s"]), f"{c['speedup_vs_sklearn']:.2f}x", f"{c['equal_share']:.4f}",
                     f"{c['max_abs_diff']:.3g}"])
    L.append(md_table(["contender", "median s", "vs sklearn", "equal to KNNImputer", "max abs diff"], rows))
    L += ["", f"Medians over {res['options']['repeats']} repeats; ratios against scikit-learn in the same run."]
    return "\n".join(L)
