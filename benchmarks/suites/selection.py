"""Suite "selection": statistical depth and the kNN estimators of issue 21 against the obvious numpy /
scipy / scikit-learn implementation, same run, same machine, interleaved repeats.

Workloads (real vectors; the first ``--rows`` GloVe rows, 100,000 by default):

=============  ==================================================================================================
depth cosine   TTE depth of every row, cosine. numpy: the definition, 2 - mean(1 - cos) over the other rows by
               blocked BLAS products (what tte_depth computes with cdist); numpy closed form: 1 + (x.S - 1)/(n - 1)
               on normalised rows (our derivation, so the numpy baseline gets the same algorithm). knnsql:
               ``knn_depth(id, emb)`` on a DuckDB table, and ``analytics.depth(X)`` (numpy in, through SQL).
depth chord    exact chord depth (O(n^2 d)). numpy: blocked BLAS products, sqrt(2 - 2 cos), row sums. knnsql:
               ``knn_depth(id, emb, 'metric=chord')``, and with ``sample=4300`` (error < 0.05 w.p. 0.99).
depth test     rank-sum test of GloVe rows 50,000..99,999 (rarer words) against rows 0..49,999: numpy closed
               form + ``scipy.stats.ranksums`` vs ``knn_depth_test``.
entropy        Kozachenko-Leonenko, k = 3. scikit-learn ``NearestNeighbors(algorithm='brute', n_jobs=-1)``
               + the formula with scipy's digamma vs ``knn_entropy(emb, 3)``.
kde            log density at the 1,000 held-out GloVe queries from the base rows, Gaussian, h by Scott's rule
               (knn_kde's default; median ess ~2 there: the extreme-value regime of Biroli & Mezard). scikit-learn
               ``KernelDensity(bandwidth=h)`` (exact, tree) and numpy (blocked BLAS + logsumexp, exact) vs
               ``knn_kde`` exact (k >= rows) and truncated to k = 100 (with its error bound).
prototype      Fashion-MNIST 60,000 x 784, 10 classes, 10,000 test images: scikit-learn ``NearestCentroid``
               fit + predict vs ``knn_prototype``.
interpolate    log(1 + frequency rank) of the 1,000 held-out GloVe words from their 5 nearest of all 399,000
               base words: scikit-learn ``KNeighborsRegressor(5, weights='distance', algorithm='brute',
               n_jobs=-1)`` (power 1) and its neighbours + numpy inverse-square weights (power 2) vs
               ``knn_interpolate(..., 'power=1' / 'power=2')``.
=============  ==================================================================================================

SQL contenders run one statement on a table loaded once beforehand (load time reported, not in the
times); ``analytics.depth`` includes registering the array. Threads: numpy / OpenBLAS and scikit-learn
(``n_jobs=-1``) use both cores, as knnsql does. Quality is compared with the baseline's output in the
same run. Times are medians over ``--repeats`` runs, contenders interleaved within each repeat.
"""

from __future__ import annotations

import numpy as np

from _common import fmt, interleaved, log, machine_markdown, md_table, median, timed

NAME = "selection"
SUMMARY = "TTE depth, depth test, KL entropy, kNN KDE, prototypes, kNN interpolation vs numpy/scipy/sklearn"
DEFAULT_DATASETS = ["glove", "fashion"]

FULL = dict(repeats=3, rows=100_000, kde_k=100, sample=4300)
QUICK = dict(repeats=1, rows=20_000, kde_k=100, sample=4300)
WORKLOADS = ("depth", "chord", "test", "entropy", "kde", "prototype", "interpolate")


def add_arguments(p) -> None:
    p.add_argument("--rows", type=int, default=None, help="GloVe rows for depth, entropy and KDE (default 100000)")
    p.add_argument("--only", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], default=None,
                   help="comma-separated workloads: " + ",".join(WORKLOADS))


def _db_with(tables: dict):
    """A knnsql Database holding each (name -> Arrow table) as a DuckDB table."""
    import knnsql

    db = knnsql.connect()
    for name, t in tables.items():
        db.con.register("_src", t)
        db.con.execute(f"CREATE TABLE {name} AS SELECT * FROM _src")
        db.con.unregister("_src")
    return db


def _column(con, sql, field):
    return np.asarray(con.execute(sql).fetchnumpy()[field], dtype=np.float64)


def _result(times, base, extra):
    out = {}
    for name in times:
        out[name] = {"median_s": median(times[name]), "times_s": times[name],
                     "speedup_vs_baseline": median(times[base]) / median(times[name]),
                     "speedup_each_repeat": [a / b for a, b in zip(times[base], times[name])], **extra.get(name, {})}
    return out


def _blocks(n, size=2048):
    for s in range(0, n, size):
        yield s, min(n, s + size)


# ---- depth ---------------------------------------------------------------------------------------------------

def depth_workloads(X, opts, which) -> dict:
    import knnsql
    from knnsql import analytics as A

    n = len(X)
    t_load, db = timed(lambda: _db_with({"g": knnsql.vectors_table(X)}))
    con = db.con
    log(f"depth: {n:,} x {X.shape[1]}, table load {t_load:.2f} s")
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    out = {"rows": n, "dim": int(X.shape[1]), "load_s": t_load}

    def definition_cosine():
        d = np.empty(n)
        for a, b in _blocks(n):
            d[a:b] = (1.0 - Xn[a:b] @ Xn.T).sum(1, dtype=np.float64)
            d[a:b] -= 1.0 - np.einsum("ij,ij->i", Xn[a:b], Xn[a:b])  # the row's own term
        return 2.0 - d / (n - 1)

    def closed_form():
        Z = Xn.astype(np.float64)
        S = Z.sum(0)
        return 1.0 + (Z @ S - np.einsum("ij,ij->i", Z, Z)) / (n - 1)

    if "depth" in which:
        cs = {"numpy definition (blocked BLAS)": definition_cosine, "numpy closed form": closed_form,
              "knnsql SQL knn_depth": lambda: _column(con, "SELECT r.depth FROM (SELECT unnest(knn_depth(id, emb)) r "
                                                      "FROM g) ORDER BY r.id", "depth"),
              "knnsql analytics.depth (numpy in)": lambda: A.depth(X)}
        times, vals = interleaved(cs, opts["repeats"], np.asarray)
        ref = vals["numpy definition (blocked BLAS)"]
        out["cosine"] = _result(times, "numpy definition (blocked BLAS)",
                                {k: {"max_abs_diff": float(np.abs(v - ref).max())} for k, v in vals.items()})

    def chord_numpy():
        d = np.zeros(n)
        for a, b in _blocks(n):
            D = np.sqrt(np.maximum(2.0 - 2.0 * (Xn[a:b] @ Xn.T), 0.0))
            D[np.arange(b - a), np.arange(a, b)] = 0.0
            d[a:b] = D.sum(1, dtype=np.float64)
        return 2.0 - d / (n - 1)

    if "chord" in which:
        m = opts["sample"]
        cs = {"numpy (blocked BLAS)": chord_numpy,
              "knnsql SQL knn_depth chord": lambda: _column(
                  con, "SELECT r.depth FROM (SELECT unnest(knn_depth(id, emb, 'metric=chord')) r FROM g) ORDER BY r.id",
                  "depth"),
              f"knnsql SQL chord sample={m}": lambda: _column(
                  con, f"SELECT r.depth FROM (SELECT unnest(knn_depth(id, emb, 'metric=chord, sample={m}, seed=1')) r "
                       "FROM g) ORDER BY r.id", "depth")}
        times, vals = interleaved(cs, opts["repeats"], np.asarray)
        ref = vals["numpy (blocked BLAS)"]
        from scipy.stats import spearmanr

        extra = {k: {"max_abs_diff": float(np.abs(v - ref).max()),
                     "spearman": float(spearmanr(v, ref).statistic)} for k, v in vals.items()}
        out["chord"] = _result(times, "numpy (blocked BLAS)", extra)

    if "test" in which:
        from scipy.stats import ranksums

        half = n // 2
        con.execute(f"CREATE OR REPLACE TABLE gt AS SELECT emb, id >= {half} AS rare FROM g")

        def numpy_test():
            Z = Xn[:half].astype(np.float64)
            S = Z.sum(0)
            dF = 1.0 + (Z @ S - 1.0) / (half - 1)
            dG = 1.0 + Xn[half:].astype(np.float64) @ S / half
            r = ranksums(dF, dG, alternative="greater")
            return np.array([r.statistic, r.pvalue])

        def sql_test():
            row = con.execute("SELECT knn_depth_test(emb, rare) FROM gt").fetchone()[0]
            return np.array([row["w"], row["p_value"], row["q"]])

        cs = {"numpy closed form + scipy ranksums": numpy_test, "knnsql SQL knn_depth_test": sql_test}
        times, vals = interleaved(cs, opts["repeats"], np.asarray)
        ref = vals["numpy closed form + scipy ranksums"]
        got = vals["knnsql SQL knn_depth_test"]
        out["test"] = _result(times, "numpy closed form + scipy ranksums", {})
        out["test_values"] = {"w": float(got[0]), "p_value": float(got[1]), "q": float(got[2]),
                              "w_scipy": float(ref[0]), "p_scipy": float(ref[1]), "ref_rows": half,
                              "cand_rows": n - half}
    return out


# ---- entropy ---------------------------------------------------------------------------------------------------

def entropy_workload(X, opts) -> dict:
    from scipy.special import digamma, gammaln
    from sklearn.neighbors import NearestNeighbors

    import knnsql

    n, d = X.shape
    k = 3
    t_load, db = timed(lambda: _db_with({"g": knnsql.vectors_table(X)}))
    con = db.con
    log(f"entropy: {n:,} x {d}, k = {k}")

    def sk():
        r = NearestNeighbors(n_neighbors=k + 1, algorithm="brute", n_jobs=-1).fit(X).kneighbors(X)[0][:, k]
        return digamma(n) - digamma(k) + d / 2 * np.log(np.pi) - gammaln(d / 2 + 1) + d * np.mean(np.log(r))

    cs = {"sklearn brute kNN + formula": sk,
          "knnsql SQL knn_entropy": lambda: con.execute(f"SELECT knn_entropy(emb, {k}) FROM g").fetchone()[0]["entropy"]}
    times, vals = interleaved(cs, opts["repeats"], float)
    ref = vals["sklearn brute kNN + formula"]
    return {"rows": n, "dim": d, "k": k, "load_s": t_load,
            "contenders": _result(times, "sklearn brute kNN + formula",
                                  {kk: {"entropy": v, "abs_diff": abs(v - ref)} for kk, v in vals.items()})}


# ---- kde -------------------------------------------------------------------------------------------------------

def kde_workload(X, Q, opts) -> dict:
    from scipy.special import logsumexp
    from sklearn.neighbors import KernelDensity

    import knnsql

    n, d = X.shape
    # Scott's rule on the reference rows, as knn_kde's default computes it (sigma: root mean per-dimension
    # variance, ddof 1); on GloVe it puts most queries in the extreme-value regime (median ess ~2)
    h = float(np.sqrt(X.astype(np.float64).var(0, ddof=1).mean()) * n ** (-1.0 / (d + 4)))
    k = opts["kde_k"]
    allv = np.concatenate([X, Q])
    t_load, db = timed(lambda: _db_with({"kq": knnsql.vectors_table(allv, columns={"q": np.arange(len(allv)) >= n})}))
    con = db.con
    log(f"kde: {n:,} reference rows x {d}, {len(Q):,} queries, h = {h:.4f}, k = {k}")
    norm = -np.log(n) - d * np.log(h) - d / 2 * np.log(2 * np.pi)

    def numpy_exact():
        X64 = X.astype(np.float64)
        xn = (X64 ** 2).sum(1)
        out = np.empty(len(Q))
        for a, b in _blocks(len(Q), 256):
            q = Q[a:b].astype(np.float64)
            d2 = np.maximum((q ** 2).sum(1)[:, None] + xn[None] - 2 * q @ X64.T, 0)
            out[a:b] = logsumexp(-d2 / (2 * h * h), axis=1) + norm
        return out

    def sql(kk):
        return lambda: con.execute(f"SELECT r.log_density, r.ess, r.trunc_err FROM (SELECT unnest(knn_kde(id, emb, q, "
                                   f"{kk}, 'bandwidth={h!r}')) r FROM kq) ORDER BY r.id").fetchnumpy()

    cs = {"sklearn KernelDensity (tree, exact)": lambda: KernelDensity(bandwidth=h).fit(X).score_samples(Q),
          "numpy exact (blocked BLAS + logsumexp)": numpy_exact,
          "knnsql SQL knn_kde exact": sql(10 ** 9),
          f"knnsql SQL knn_kde k={k}": sql(k)}
    times, vals = interleaved(cs, opts["repeats"], lambda v: v)
    ref = np.asarray(vals["numpy exact (blocked BLAS + logsumexp)"])
    extra = {}
    for name, v in vals.items():
        ld = np.asarray(v["log_density"] if isinstance(v, dict) else v, dtype=np.float64)
        e = {"max_abs_diff": float(np.abs(ld - ref).max())}
        if isinstance(v, dict):
            e.update(median_ess=float(np.median(v["ess"])), max_trunc_err=float(np.max(v["trunc_err"])),
                     bound_holds=bool(np.all(ref - ld <= np.asarray(v["trunc_err"]) + 1e-4)))
        extra[name] = e
    return {"rows": n, "dim": d, "queries": len(Q), "bandwidth": h, "k": k, "load_s": t_load,
            "alpha": float(np.log(n) / d),
            "contenders": _result(times, "sklearn KernelDensity (tree, exact)", extra)}


# ---- prototype ---------------------------------------------------------------------------------------------------

def prototype_workload(opts) -> dict:
    import pyarrow as pa
    from sklearn.neighbors import NearestCentroid

    import knnsql
    from suites.analytics import _fashion

    X, y, Q, yq = _fashion()
    n, nq = len(X), len(Q)
    allv = np.concatenate([X, Q])
    lab = pa.array(np.concatenate([y, np.zeros(nq, np.int64)]), mask=np.r_[np.zeros(n, bool), np.ones(nq, bool)])
    t_load, db = timed(lambda: _db_with({"fm": knnsql.vectors_table(allv, columns={"label": lab})}))
    con = db.con
    log(f"prototype: Fashion-MNIST {n:,} x {X.shape[1]}, {nq:,} queries, load {t_load:.1f} s")
    cs = {"sklearn NearestCentroid": lambda: NearestCentroid().fit(X, y).predict(Q),
          "knnsql SQL knn_prototype": lambda: np.asarray(con.execute(
              "SELECT r.label FROM (SELECT unnest(knn_prototype(id, emb, label)) r FROM fm) ORDER BY r.id"
          ).fetchnumpy()["label"])}
    times, vals = interleaved(cs, opts["repeats"], np.asarray)
    ref = vals["sklearn NearestCentroid"]
    extra = {k: {"accuracy": float(np.mean(v == yq)), "agree": float(np.mean(v == ref))} for k, v in vals.items()}
    return {"rows": n, "dim": int(X.shape[1]), "queries": nq, "load_s": t_load,
            "contenders": _result(times, "sklearn NearestCentroid", extra)}


# ---- interpolate ---------------------------------------------------------------------------------------------------

def interpolate_workload(ds, opts) -> dict:
    import pyarrow as pa
    from sklearn.neighbors import KNeighborsRegressor, NearestNeighbors

    import knnsql

    X, Q = ds.X, ds.Q
    k = 5
    # the held-out rows' GloVe ranks, as datasets.load_glove draws them
    held = np.sort(np.random.default_rng(0).choice(len(X) + len(Q), size=len(Q), replace=False))
    y, yq = np.log1p(ds.ids.astype(np.float64)), np.log1p(held.astype(np.float64))
    n, nq = len(X), len(Q)
    allv = np.concatenate([X, Q])
    vals = pa.array(np.concatenate([y, np.zeros(nq)]), mask=np.r_[np.zeros(n, bool), np.ones(nq, bool)])
    t_load, db = timed(lambda: _db_with({"gi": knnsql.vectors_table(allv, columns={"v": vals})}))
    con = db.con
    log(f"interpolate: {n:,} x {X.shape[1]} source rows, {nq:,} queries, k = {k}, load {t_load:.1f} s")

    def idw2():
        dist, nb = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=-1).fit(X).kneighbors(Q)
        w = 1.0 / np.maximum(dist, 1e-12) ** 2
        return (w * y[nb]).sum(1) / w.sum(1)

    def sql(p):
        return lambda: np.asarray(con.execute(f"SELECT r.value FROM (SELECT unnest(knn_interpolate(id, emb, v, {k}, "
                                              f"'power={p}')) r FROM gi) ORDER BY r.id").fetchnumpy()["value"])

    cs = {"sklearn KNeighborsRegressor distance (power 1)":
          lambda: KNeighborsRegressor(k, weights="distance", algorithm="brute", n_jobs=-1).fit(X, y).predict(Q),
          "knnsql SQL knn_interpolate power=1": sql(1),
          "sklearn kneighbors + numpy (power 2)": idw2,
          "knnsql SQL knn_interpolate power=2": sql(2)}
    times, got = interleaved(cs, opts["repeats"], np.asarray)
    refs = {"knnsql SQL knn_interpolate power=1": "sklearn KNeighborsRegressor distance (power 1)",
            "knnsql SQL knn_interpolate power=2": "sklearn kneighbors + numpy (power 2)"}
    extra = {}
    for name, v in got.items():
        ref = got[refs.get(name, name)]
        extra[name] = {"max_abs_diff": float(np.abs(v - ref).max()), "mae_vs_truth": float(np.mean(np.abs(v - yq)))}
    res = _result(times, "sklearn KNeighborsRegressor distance (power 1)", extra)
    base2 = median(times["sklearn kneighbors + numpy (power 2)"])
    res["knnsql SQL knn_interpolate power=2"]["speedup_vs_its_baseline"] = (
        base2 / median(times["knnsql SQL knn_interpolate power=2"]))
    res["knnsql SQL knn_interpolate power=1"]["speedup_vs_its_baseline"] = (
        res["knnsql SQL knn_interpolate power=1"]["speedup_vs_baseline"])
    return {"rows": n, "dim": int(X.shape[1]), "queries": nq, "k": k, "load_s": t_load, "contenders": res}


def run(args) -> dict:
    import datasets

    opts = dict(QUICK if args.quick else FULL)
    if args.repeats:
        opts["repeats"] = args.repeats
    if args.rows:
        opts["rows"] = args.rows
    which = set(args.only or WORKLOADS)
    out = {"options": opts, "workloads": sorted(which)}
    if "glove" in args.datasets:
        g = datasets.load("glove")
        X = np.ascontiguousarray(g.X[: opts["rows"]])
        if which & {"depth", "chord", "test"}:
            out["depth"] = depth_workloads(X, opts, which)
        if "entropy" in which:
            out["entropy"] = entropy_workload(X, opts)
        if "kde" in which:
            out["kde"] = kde_workload(X, g.Q, opts)
        if "interpolate" in which:
            out["interpolate"] = interpolate_workload(g, opts)
    if "fashion" in args.datasets and "prototype" in which:
        out["prototype"] = prototype_workload(opts)
    return out


def _table(res: dict, quality: list, base_label: str) -> str:
    rows = []
    for name, c in res.items():
        each = c.get("speedup_each_repeat") or [float("nan")]
        rows.append([name, fmt(c["median_s"]), f"{c['speedup_vs_baseline']:.2f}x", f"{min(each):.2f}x"]
                    + [q(c) for _, q in quality])
    return md_table(["contender", "median s", f"vs {base_label}", "worst repeat"] + [h for h, _ in quality], rows)


def to_markdown(doc: dict) -> str:
    r = doc["results"]
    o = r["options"]
    L = [f"# selection suite{' (quick)' if doc['quick'] else ''}", "", f"Command: `{doc['command']}`", "",
         machine_markdown(doc["machine"]), "",
         f"Medians over {o['repeats']} interleaved repeats; 'vs' is the first contender's median over each one's "
         "(the baseline), 'worst repeat' the smallest per-repeat ratio. SQL times are one statement on a loaded "
         "table (load times below, not included). Quality columns compare with the baseline's output in the same "
         "run.", ""]
    dep = r.get("depth")
    if dep:
        head = f"GloVe-50, first {dep['rows']:,} rows (unit vectors); table load {dep['load_s']:.2f} s"
        if "cosine" in dep:
            L += [f"## TTE depth, cosine — {head}", "",
                  _table(dep["cosine"], [("max abs diff vs definition", lambda c: f"{c['max_abs_diff']:.2g}")],
                         "numpy definition"), ""]
        if "chord" in dep:
            L += [f"## TTE depth, chord, exact O(n² d) — {head}", "",
                  _table(dep["chord"], [("max abs diff", lambda c: f"{c['max_abs_diff']:.2g}"),
                                        ("Spearman vs exact", lambda c: f"{c['spearman']:.5f}")], "numpy"), ""]
        if "test" in dep:
            tv = dep["test_values"]
            L += [f"## Depth rank-sum test — GloVe rows {tv['cand_rows']:,} rarer words (G) vs {tv['ref_rows']:,} "
                  "frequent words (F), cosine", "", _table(dep["test"], [], "numpy + scipy"), "",
                  f"knn_depth_test: q = {tv['q']:.4f}, w = {tv['w']:.4f}, p = {tv['p_value']:.3g}; scipy ranksums on "
                  f"the numpy depths: w = {tv['w_scipy']:.4f}, p = {tv['p_scipy']:.3g}.", ""]
    e = r.get("entropy")
    if e:
        L += [f"## Kozachenko-Leonenko entropy — GloVe-50, first {e['rows']:,} rows, k = {e['k']}", "",
              _table(e["contenders"], [("entropy (nats)", lambda c: f"{c['entropy']:.6f}"),
                                       ("abs diff", lambda c: f"{c['abs_diff']:.2g}")], "sklearn"), ""]
    kd = r.get("kde")
    if kd:
        L += [f"## Gaussian KDE — {kd['queries']:,} GloVe queries against {kd['rows']:,} rows, h = {kd['bandwidth']:.4f} "
              f"(alpha = log n / d = {kd['alpha']:.3f}), truncated k = {kd['k']}", "",
              _table(kd["contenders"], [("max abs diff (log density) vs numpy exact", lambda c: f"{c['max_abs_diff']:.2g}"),
                                        ("median ess", lambda c: fmt(c.get("median_ess"))),
                                        ("max trunc_err", lambda c: "-" if "max_trunc_err" not in c else
                                         f"{c['max_trunc_err']:.2g}")], "sklearn"), ""]
    pr = r.get("prototype")
    if pr:
        L += [f"## Prototype (nearest class mean) — Fashion-MNIST {pr['rows']:,} x {pr['dim']}, {pr['queries']:,} "
              f"queries; table load {pr['load_s']:.1f} s", "",
              _table(pr["contenders"], [("accuracy", lambda c: f"{c['accuracy']:.4f}"),
                                        ("same label as sklearn", lambda c: f"{c['agree']:.4f}")], "sklearn"), ""]
    it = r.get("interpolate")
    if it:
        L += [f"## kNN interpolation — log(1 + rank) of {it['queries']:,} held-out GloVe words from {it['rows']:,} "
              f"words, k = {it['k']}; table load {it['load_s']:.1f} s", "",
              _table(it["contenders"], [("vs its own baseline", lambda c: "-" if "speedup_vs_its_baseline" not in c
                                         else f"{c['speedup_vs_its_baseline']:.2f}x"),
                                        ("max abs diff vs that baseline", lambda c: f"{c['max_abs_diff']:.2g}"),
                                        ("MAE vs true log rank", lambda c: f"{c['mae_vs_truth']:.3f}")],
                     "sklearn power 1"), ""]
    return "\n".join(L)
