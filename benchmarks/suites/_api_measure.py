"""Suite "api", measurement: the contenders of one cell (dataset x predicate shape x selectivity),
timed one query at a time, interleaved (round robin over the contenders for each query, the starting
contender rotating with the query), and the 1,000-query batches.

Single-query contenders (k = 10):

=============  ===================================================================================
api            ``table.search(q).where(pred).limit(10).to_arrow()`` (id, u, cat, u2, far, distance)
sql            ``SELECT id, distance FROM knn_search('items__emb', $q::FLOAT[d], k := 10,
               filter := '<pred>')``; without a filter this is the raw knn_search statement
db.sql         ``db.sql("SELECT id FROM items WHERE <pred> ORDER BY <dist>(emb, $q::FLOAT[d]) LIMIT 10",
               q=q).fetchall()``, rewritten by knnsql onto the index
duckdb         the same statement through DuckDB unchanged (``db.con.sql``), an exact scan
lance          LanceDB at its defaults (``_api_lance``)
lance tuned    LanceDB at the cheapest ladder setting reaching recall 0.95 on the tuning queries
=============  ===================================================================================
"""

from __future__ import annotations

import gc
import time

import numpy as np

from _common import log, median, settle
from ._api_data import K
from ._api_lance import LADDER, TUNE_RECALL, setting_text

SLOW = ("duckdb", "lance", "lance tuned")


def arrow_of(rel):
    fetch = getattr(rel, "to_arrow_table", None) or getattr(rel, "arrow")
    return fetch()


class Contenders:
    """Callables q -> (ids, plan) for one cell."""

    def __init__(self, db, table, d: int, metric: str, lance):
        self.db, self.t, self.d, self.lance = db, table, d, lance
        self.index = table.index.name
        self.fn = "array_cosine_distance" if metric == "cosine" else "array_distance"

    def plain_sql(self, pred) -> str:
        where = f"WHERE {pred} " if pred else ""
        return f"SELECT id FROM items {where}ORDER BY {self.fn}(emb, $q::FLOAT[{self.d}]) LIMIT {K}"

    def knn_search_sql(self, pred) -> str:
        flt = f", filter := '{pred.replace(chr(39), chr(39) * 2)}'" if pred else ""
        return f"SELECT id, distance FROM knn_search('{self.index}', $q::FLOAT[{self.d}], k := {K}{flt})"

    def for_cell(self, pred, lance_tuned) -> dict:
        t, db, con = self.t, self.db, self.db.con
        plain, ks = self.plain_sql(pred), self.knn_search_sql(pred)

        def api(q):
            s = t.search(q).limit(K)
            if pred:
                s = s.where(pred)
            return s.to_arrow().column("id").to_pylist(), s.plan

        def sql(q):
            return [r[0] for r in con.execute(ks, {"q": q.tolist()}).fetchall()], None

        def dbsql(q):
            return [r[0] for r in db.sql(plain, q=q).fetchall()], None

        def duck(q):
            return [r[0] for r in con.sql(plain, params={"q": q.tolist()}).fetchall()], None

        out = {"api": api, "sql": sql, "db.sql": dbsql, "duckdb": duck}
        if self.lance is not None:
            out["lance"] = lambda q: (self.lance.search(q, pred, {}), None)
            if lance_tuned is not None:
                out["lance tuned"] = lambda q: (self.lance.search(q, pred, lance_tuned), None)
        return out


def tune_lance(lance, pred, key, truth, Q_all, tune_rows) -> tuple:
    """(setting or None when the defaults reach TUNE_RECALL, [steps tried])."""
    steps = []
    for setting in LADDER:
        lance.search(Q_all[tune_rows[0]], pred, setting)  # warm
        ids, ts = [], []
        for r in tune_rows:
            t0 = time.perf_counter()
            ids.append(lance.search(Q_all[r], pred, setting))
            ts.append(time.perf_counter() - t0)
        rec = truth.recall(key, tune_rows, Q_all, ids)
        steps.append({"setting": setting, "recall": rec, "p50_ms": median(ts) * 1e3})
        if rec >= TUNE_RECALL:
            break
    chosen = steps[-1]["setting"]
    log("    lance tuning: " + "; ".join(f"{setting_text(s['setting'])}: r {s['recall']:.3f}, "
                                        f"{s['p50_ms']:.1f} ms" for s in steps))
    return (None if chosen == {} else chosen), steps


def run_cell(cont: dict, key: str, truth, Q_all, rows, slow_rows: int, warm_rows) -> dict:
    """Times every contender on every query row (slow ones on the first slow_rows), interleaved."""
    names = list(cont)
    for name in names:                      # warm-up, untimed
        for r in warm_rows:
            cont[name](Q_all[r])
    times = {n: [] for n in names}
    got = {n: [] for n in names}
    plans = {n: {} for n in names}
    qrows = {n: [] for n in names}
    gc.collect()
    gc.disable()
    try:
        for i, r in enumerate(rows):
            q = Q_all[r]
            for j in range(len(names)):
                name = names[(i + j) % len(names)]
                if name in SLOW and i >= slow_rows:
                    continue
                t0 = time.perf_counter()
                ids, plan = cont[name](q)
                times[name].append(time.perf_counter() - t0)
                got[name].append(ids)
                qrows[name].append(r)
                if plan is not None:
                    plans[name][plan] = plans[name].get(plan, 0) + 1
    finally:
        gc.enable()
    out = {}
    slow_set = set(rows[:slow_rows])
    for name in names:
        rec = truth.recall(key, qrows[name], Q_all, got[name])
        # recall on the queries the slow contenders ran too (same-query comparisons)
        idx = [k for k, r in enumerate(qrows[name]) if r in slow_set]
        rec_slow = truth.recall(key, [qrows[name][k] for k in idx], Q_all, [got[name][k] for k in idx])
        out[name] = {"times_ms": [x * 1e3 for x in times[name]], "p50_ms": median(times[name]) * 1e3,
                     "p90_ms": float(np.quantile(times[name], 0.9)) * 1e3, "queries": len(times[name]),
                     "recall": rec, "recall_slow_queries": rec_slow, "plans": plans[name],
                     "returned_short": int(sum(len(g) < truth.want[key] for g in got[name]))}
    return out


# ---- batches ----------------------------------------------------------------------------------------

def _group(query_idx: np.ndarray, ids: np.ndarray, nq: int) -> list:
    order = np.argsort(query_idx, kind="stable")
    qi, ii = query_idx[order], ids[order]
    bounds = np.searchsorted(qi, np.arange(nq + 1))
    return [ii[bounds[j]:bounds[j + 1]].tolist() for j in range(nq)]


def run_batch(db, table, cont: Contenders, pred: str, key: str, truth, Q_all, batch_rows, loop_rows,
              repeats: int) -> dict:
    """1,000 queries with one filter in one call (API and SQL knn over a query table) against a loop of the
    plain DuckDB statement over loop_rows of them (extrapolated to the batch size). Interleaved: each
    repeat runs the API batch, the SQL batch and a slice of the loop."""
    con = db.con
    Qb = Q_all[batch_rows]
    nq = len(batch_rows)
    ksql = (f"SELECT qid, knn('{cont.index}', emb, {K}, '{pred.replace(chr(39), chr(39) * 2)}') AS r "
            f"FROM queries")
    plain = cont.plain_sql(pred)
    api_t, sql_t, loop_t, loop_ids = [], [], [], []
    api_res = sql_res = None
    plans = {}
    chunks = np.array_split(np.asarray(loop_rows), repeats)
    def quiet(step):
        """Runs step() with the machine settled and the garbage collector off."""
        settle()
        gc.collect()
        gc.disable()
        try:
            return step()
        finally:
            gc.enable()

    def api_batch():
        t0 = time.perf_counter()
        s = table.search(Qb).where(pred).limit(K)
        res = s.to_arrow()
        api_t.append(time.perf_counter() - t0)
        plans[s.plan] = plans.get(s.plan, 0) + 1
        return res

    def sql_batch():
        t0 = time.perf_counter()
        res = arrow_of(con.sql(ksql))
        sql_t.append(time.perf_counter() - t0)
        return res

    def loop(rows_):
        for r in rows_:
            t0 = time.perf_counter()
            ids = [x[0] for x in con.sql(plain, params={"q": Q_all[r].tolist()}).fetchall()]
            loop_t.append(time.perf_counter() - t0)
            loop_ids.append((int(r), ids))

    for rep in range(repeats):
        api_res = quiet(api_batch)
        sql_res = quiet(sql_batch)
        quiet(lambda: loop(chunks[rep]))
    api_ids = _group(np.asarray(api_res.column("query")), np.asarray(api_res.column("id")), nq)
    qid = np.asarray(sql_res.column("qid"))
    lists = sql_res.column("r").combine_chunks()
    flat = lists.flatten()
    sid = np.asarray(flat.field("id"))
    lens = np.diff(np.asarray(lists.offsets))
    sql_ids = _group(np.repeat(qid, lens), sid, nq)
    loop_rows_done = [r for r, _ in loop_ids]
    loop_total = float(sum(loop_t))
    out = {
        "pred": pred, "queries": nq, "repeats": repeats,
        "api": {"times_s": api_t, "p50_s": median(api_t), "plans": plans,
                "recall": truth.recall(key, list(batch_rows), Q_all, api_ids)},
        "sql": {"statement": ksql, "times_s": sql_t, "p50_s": median(sql_t),
                "recall": truth.recall(key, list(batch_rows), Q_all, sql_ids)},
        "loop": {"statement": plain, "queries": len(loop_t), "total_s": loop_total,
                 "per_query_p50_ms": median(loop_t) * 1e3, "est_s": loop_total / len(loop_t) * nq,
                 "recall": truth.recall(key, loop_rows_done, Q_all, [i for _, i in loop_ids])},
    }
    log(f"    batch {key}: api {out['api']['p50_s'] * 1e3:.0f} ms (r {out['api']['recall']:.3f}), "
        f"SQL knn {out['sql']['p50_s'] * 1e3:.0f} ms (r {out['sql']['recall']:.3f}), DuckDB loop "
        f"{out['loop']['est_s']:.2f} s est. for {nq} ({out['loop']['per_query_p50_ms']:.1f} ms/query)")
    return out
