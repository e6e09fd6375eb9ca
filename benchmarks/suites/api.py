"""Suite "api": the Python table API and the SQL rewrite against DuckDB's own SQL, k = 10.

One vector table per dataset (``db.create_table`` + ``add`` + ``create_index``, HNSW m=16,
ef_construction=200), with a ``bucket`` column holding a random permutation of 0..n-1, so
``bucket % 10 = 0`` keeps 10% of the rows, ``% 100`` 1% and ``% 1000`` 0.1%. For each selectivity,
the same queries run through:

=====================  =================================================================================
api                    ``table.search(q).where(cond).limit(10).to_arrow()`` (the planner picks exact or
                       an index over-fetch; ``plans`` counts which)
api exact              ``table.search(q).where(cond).limit(10).exact().to_arrow()``
db.sql (rewritten)     ``db.sql("SELECT id FROM t WHERE cond ORDER BY array_*_distance(emb, $q) LIMIT 10")``
                       (rewritten onto the index when the plan is sound)
DuckDB SQL             the same statement through DuckDB unchanged
raw knn_search         ``SELECT id, distance FROM knn_search(...)`` (no filter; the SQL floor)
=====================  =================================================================================

Cells: median latency (ms) over the queries, one call per query, single process, DuckDB threads as
the machine has; recall@10 against numpy's exact top-10 over the rows that pass the filter.
"""

from __future__ import annotations

import time
from typing import List

import numpy as np

from _common import fmt, log, machine_markdown, md_table, median, ratio

NAME = "api"
SUMMARY = "Python table API + db.sql rewrite vs DuckDB SQL over filters of 100% .. 0.1% (k=10)"
DEFAULT_DATASETS = ["glove", "fashion"]

K = 10
SELECTIVITIES = [("100%", None), ("10%", 10), ("1%", 100), ("0.1%", 1000)]
FULL = dict(queries=60, duck_queries=15, rows=None)
QUICK = dict(queries=10, duck_queries=4, rows=20_000)


def add_arguments(p) -> None:
    p.add_argument("--rows", type=int, default=None, help="base rows per dataset (default all; quick 20,000)")
    p.add_argument("--queries", type=int, default=None, help="queries per filter (default 60, quick 10)")
    p.add_argument("--duck-queries", type=int, default=None,
                   help="queries per filter through DuckDB unchanged (default 15, quick 4)")


def _exact_top(X, q, mask, metric):
    if metric == "cosine":
        d = 1 - X @ q / (np.linalg.norm(X, axis=1) * np.linalg.norm(q) + 1e-30)
    else:
        d = ((X - q) ** 2).sum(1)
    d = np.where(mask, d, np.inf)
    idx = np.argpartition(d, K)[:K] if len(d) > K else np.arange(len(d))
    return set(idx[np.isfinite(d[idx])].tolist())


def _time(fn, queries):
    times, outs = [], []
    for q in queries:
        t0 = time.perf_counter()
        outs.append(fn(q))
        times.append(time.perf_counter() - t0)
    return median(times) * 1e3, outs


def run_dataset(ds, opts) -> dict:
    import knnsql

    X = ds.X if opts["rows"] is None else ds.X[:opts["rows"]]
    n, d = X.shape
    rng = np.random.default_rng(0)
    bucket = rng.permutation(n)
    db = knnsql.connect()
    t = db.create_table("items", dim=d, metric=ds.metric, columns={"bucket": "BIGINT"})
    t0 = time.perf_counter()
    t.add({"id": np.arange(n), "emb": X, "bucket": bucket})
    add_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    t.create_index(m=16, ef_construction=200)
    build_s = time.perf_counter() - t0
    log(f"{ds.name}: {n:,} x {d}, add {add_s:.1f} s, index {build_s:.1f} s")
    Q = ds.Q[:opts["queries"]]
    fn_name = "array_cosine_distance" if ds.metric == "cosine" else "array_distance"
    rows = []
    raw_ms, _ = _time(lambda q: db.execute(f"SELECT id, distance FROM knn_search('items__emb', $q::FLOAT[{d}], k := 10)",
                                           {"q": q.tolist()}).fetchall(), Q)
    for label, mod in SELECTIVITIES:
        cond = None if mod is None else f"bucket % {mod} = 0"
        mask = np.ones(n, bool) if mod is None else (bucket % mod == 0)
        truth = [_exact_top(X, q, mask, ds.metric) for q in Q]

        def recall(results):
            hits = sum(len(set(r) & tr) for r, tr in zip(results, truth))
            return hits / max(1, sum(len(tr) for tr in truth))

        plans = {}

        def api(q, exact=False):
            s = t.search(q).limit(K)
            if cond:
                s = s.where(cond)
            if exact:
                s = s.exact()
            out = s.to_arrow().column("id").to_pylist()
            plans[s.plan] = plans.get(s.plan, 0) + 1
            return out

        api_ms, api_out = _time(api, Q)
        api_plans = dict(plans)
        ex_ms, ex_out = _time(lambda q: api(q, exact=True), Q)
        sql = (f"SELECT id FROM items {'WHERE ' + cond if cond else ''} "
               f"ORDER BY {fn_name}(emb, $q::FLOAT[{d}]) LIMIT {K}")
        rewritten = db.explain(sql, q=Q[0]).rewritten
        rw_ms, rw_out = _time(lambda q: [r[0] for r in db.sql(sql, q=q).fetchall()], Q)
        dq = Q[:opts["duck_queries"]]
        duck_ms, duck_out = _time(lambda q: [r[0] for r in db.con.sql(sql, params={"q": q.tolist()}).fetchall()], dq)
        rows.append(dict(selectivity=label, api_ms=api_ms, api_recall=recall(api_out), api_plans=api_plans,
                         api_exact_ms=ex_ms, api_exact_recall=recall(ex_out), sql_ms=rw_ms,
                         sql_recall=recall(rw_out), sql_rewritten=rewritten, duck_ms=duck_ms,
                         duck_recall=sum(len(set(r) & tr) for r, tr in zip(duck_out, truth))
                         / max(1, sum(len(tr) for tr in truth[:len(dq)]))))
        log(f"  {label}: api {api_ms:.2f} ms (recall {rows[-1]['api_recall']:.3f}, {api_plans}), "
            f"sql {rw_ms:.2f} ms (rewritten {rewritten}), DuckDB {duck_ms:.2f} ms")
    db.close()
    return dict(dataset=ds.name, n=n, dim=d, metric=ds.metric, add_s=add_s, build_s=build_s, raw_ms=raw_ms,
                rows=rows)


def run(args) -> dict:
    import datasets

    opts = dict(QUICK if args.quick else FULL)
    for k in ("rows", "queries", "duck_queries"):
        if getattr(args, k, None) is not None:
            opts[k] = getattr(args, k)
    out = []
    for name in args.datasets:
        try:
            ds = datasets.load(name)
        except datasets.DatasetMissing as exc:
            if args.skip_missing:
                log(f"skip {name}: {exc}")
                continue
            raise
        out.append(run_dataset(ds, opts))
    return {"datasets": out, "opts": opts}


def to_markdown(doc: dict) -> str:
    lines = [f"## Suite `api` — Python table API and SQL rewrite, k = {K}", "",
             f"Run {doc['started']} ({doc['duration_s'] / 60:.1f} min), `{doc['command']}`.", "",
             machine_markdown(doc["machine"]), "",
             "Median latency per query in ms (recall@10 against numpy's exact top-10 of the filtered rows). "
             "*x DuckDB* = DuckDB SQL latency / knnsql latency, same statement, same run."]
    for r in doc["results"]["datasets"]:
        lines += ["", f"### {r['dataset']} ({r['n']:,} x {r['dim']}, {r['metric']}): add {r['add_s']:.1f} s, "
                      f"index build {r['build_s']:.1f} s, raw `knn_search` {r['raw_ms']:.2f} ms", ""]
        rows = []
        for c in r["rows"]:
            rows.append([c["selectivity"], f"{fmt(c['api_ms'])} ({c['api_recall']:.3f})",
                         ", ".join(f"{k}: {v}" for k, v in c["api_plans"].items()),
                         f"{fmt(c['api_exact_ms'])} ({c['api_exact_recall']:.3f})",
                         f"{fmt(c['sql_ms'])} ({c['sql_recall']:.3f}){'' if c['sql_rewritten'] else ' not rewritten'}",
                         f"{fmt(c['duck_ms'])} ({c['duck_recall']:.3f})",
                         ratio(c["duck_ms"], c["api_ms"]), ratio(c["duck_ms"], c["sql_ms"])])
        lines.append(md_table(["filter keeps", "api", "api plans", "api .exact()", "db.sql", "DuckDB SQL",
                               "api x DuckDB", "db.sql x DuckDB"], rows))
    return "\n".join(lines)


def plot(doc: dict, outdir) -> List[str]:
    return []
