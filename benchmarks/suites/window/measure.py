"""Measurement: random windows, ground truth and tie-aware recall, the timed cells, plans, and one window
fraction of a workload run through every method."""

from __future__ import annotations

import gc
import time
from typing import Callable, List, Optional

import numpy as np

from _common import fmt, log, median, settle

from .config import K, LABELS, STOP_RECALL, SWEPT, THRESHOLD
from .workload import Workload


def _dist64(X: np.ndarray, metric: str, rows: np.ndarray, q: np.ndarray) -> np.ndarray:
    """float64 distances from q to X[rows] (rows >= 0); cosine = 1 - cos, l2 = squared Euclidean."""
    v = X[rows].astype(np.float64)
    q = q.astype(np.float64)
    if metric == "cosine":
        return 1.0 - (v @ q) / (np.linalg.norm(v, axis=-1) * np.linalg.norm(q) + 1e-300)
    diff = v - q
    return np.einsum("...j,...j->...", diff, diff)


def _tol(kth: float, q: np.ndarray, metric: str) -> float:
    scale = 1.0 if metric == "cosine" else float((q.astype(np.float64) ** 2).sum())
    return 1e-5 * abs(kth) + 1e-6 * scale


# ---- windows -------------------------------------------------------------------------------------

def make_windows(sorted_labels: np.ndarray, w: int, nq: int, rng) -> tuple:
    """nq windows of w consecutive rows in label order: (lo, hi, rows in [lo, hi])."""
    n = len(sorted_labels)
    w = max(1, min(w, n))
    s = rng.integers(0, n - w + 1, size=nq)
    lo = sorted_labels[s]
    hi = sorted_labels[s + w - 1]
    cnt = np.searchsorted(sorted_labels, hi, "right") - np.searchsorted(sorted_labels, lo, "left")
    return lo.astype(np.float64), hi.astype(np.float64), cnt.astype(np.int64)


# ---- ground truth, recall ------------------------------------------------------------------------

def ground_truth(wl: Workload, Q, lo, hi, cnt) -> tuple:
    """Exact in-window top-K per query from the flat index (all cores): rows (m, K) -1 padded, d64 (m, K) inf."""
    m = Q.shape[0]
    rows = np.full((m, K), -1, dtype=np.int64)
    d64 = np.full((m, K), np.inf)
    for i in range(m):
        ids = wl.fl.search(Q[i], K, lo=lo[i], hi=hi[i])[0][0]
        ids = ids[ids >= 0]
        if len(ids) != min(K, cnt[i]):
            raise AssertionError(f"{wl.name}: flat window search returned {len(ids)} rows for a window of {cnt[i]}")
        d = _dist64(wl.X, wl.metric, ids, Q[i])
        o = np.argsort(d, kind="stable")
        rows[i, :len(ids)] = ids[o]
        d64[i, :len(ids)] = d[o]
    return rows, d64


def numpy_check(wl: Workload, Q, lo, hi, gt_d64, sample) -> dict:
    """The flat index's in-window top-K against numpy (float32 scores of the in-window rows, top K+32 re-ranked
    in float64): tie-aware agreement on the sampled queries."""
    bad = []
    for i in sample:
        idx = np.flatnonzero((wl.labels >= lo[i]) & (wl.labels <= hi[i]))
        if len(idx) == 0:
            continue
        q = Q[i].astype(np.float32)
        sc = wl.X[idx] @ q
        if wl.metric == "cosine":
            sc = -sc / np.linalg.norm(wl.X[idx], axis=1)
        else:
            sc = (wl.X[idx].astype(np.float32) ** 2).sum(1) - 2 * sc
        top = idx[np.argsort(sc)[:K + 32]]
        d = np.sort(_dist64(wl.X, wl.metric, top, Q[i]))[:K]
        ref = gt_d64[i, :len(d)]
        kth = d[-1]
        tol = _tol(kth, Q[i], wl.metric)
        if not (np.all(np.abs(ref - d) <= tol + 1e-6 * np.abs(d))):
            bad.append(int(i))
    return {"checked": len(sample), "disagreements": bad}


def score(wl: Workload, got: np.ndarray, Q, lo, hi, cnt, gt_d64) -> dict:
    """Tie-aware recall@K over min(K, window rows) plus correctness counters for a (m, K) -1 padded id matrix."""
    m = got.shape[0]
    rec = np.zeros(m)
    short = outside = dups = 0
    for i in range(m):
        ids = got[i][got[i] >= 0]
        need = int(min(K, cnt[i]))
        if len(ids) < need:
            short += 1
        if len(np.unique(ids)) < len(ids):
            dups += 1
        if len(ids):
            lab = wl.labels[ids]
            inw = (lab >= lo[i]) & (lab <= hi[i])
            if not inw.all():
                outside += 1
            ids = np.unique(ids[inw])
        if need == 0:
            rec[i] = 1.0
            continue
        if len(ids) == 0:
            continue
        kth = gt_d64[i, need - 1]
        d = _dist64(wl.X, wl.metric, ids, Q[i])
        hits = int((d <= kth + _tol(kth, Q[i], wl.metric)).sum())
        rec[i] = min(hits, need) / need
    return {"recall": float(rec.mean()) if m else float("nan"), "worst_query_recall": float(rec.min()) if m else None,
            "short_results": short, "out_of_window": outside, "duplicates": dups}


# ---- timing --------------------------------------------------------------------------------------

def _loop(f: Callable, idxs) -> tuple:
    out = np.full((len(idxs), K), -1, dtype=np.int64)
    was = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for j, i in enumerate(idxs):
            r = f(i)
            out[j, :len(r)] = r[:K]
        t = time.perf_counter() - t0
    finally:
        if was:
            gc.enable()
    return t, out


def run_cell(f: Callable, nq: int, opts: dict, cap: Optional[int] = None) -> dict:
    """Probe 2 queries, then as many as fit in the cell budget; median of up to `repeats` passes."""
    nq = min(nq, cap) if cap else nq
    npro = min(2, nq)
    tp, outp = _loop(f, range(npro))
    per = tp / max(npro, 1)
    if per > opts["slow"] or npro == nq:
        return {"queries": npro, "passes_s": [tp], "time_s": tp, "qps": npro / tp if tp > 0 else float("inf"),
                "per_query_s": per, "probe_only": npro < nq, "_ids": outp}
    m = int(min(nq, max(opts["min_queries"], opts["cell_budget"] / max(per, 1e-9))))
    times, out = [], None
    spent = 0.0
    while len(times) < opts["repeats"]:
        t, out = _loop(f, range(m))
        times.append(t)
        spent += t
        if spent + t > opts["cell_budget"] * 1.5:
            break
    tm = median(times)
    return {"queries": m, "passes_s": times, "time_s": tm, "qps": m / tm if tm > 0 else float("inf"),
            "per_query_s": tm / m, "probe_only": False, "_ids": out}


def call_overhead(wl: Workload, calls: int = 2000) -> dict:
    """Per-call cost floor, one thread: each method on an empty window (lo > hi, or an empty slice)."""
    Q = np.ascontiguousarray(wl.ds.Q[:8], dtype=np.float32)
    lo = np.full(len(Q), 1.0)
    hi = np.full(len(Q), 0.0)
    cnt = np.zeros(len(Q), dtype=np.int64)
    out = {}
    for key in ("knnsql", "prefilter_slice", "prefilter_flat"):
        f = getattr(wl, "fn_" + key)(Q, lo, hi, cnt, 16)
        n = calls if key != "prefilter_flat" else 30
        _loop(lambda i: f(i % len(Q)), range(20))
        ts = [_loop(lambda i: f(i % len(Q)), range(n))[0] / n * 1e6 for _ in range(3)]
        out[key + "_us"] = median(ts)
    return out


def window_plans(g, Q, lo, hi, ef: int, m: int) -> Optional[dict]:
    """Untimed: the core's plan per query (0 exact window scan, 1 two-hop filtered beam, 2 a beam + exact
    fallback, 3 in-search postfilter beam, 4 bucket-graph beams)."""
    try:
        from knnsql import _ffi

        ffi, lib = _ffi.ffi, _ffi.lib()
        counts = [0, 0, 0, 0, 0]
        for i in range(min(m, Q.shape[0])):
            q = np.ascontiguousarray(Q[i:i + 1], dtype=np.float32)
            ids = np.empty((1, K), dtype=np.int64)
            dists = np.empty((1, K), dtype=np.float32)
            found = np.empty(1, dtype=np.uintp)
            plans = np.zeros(1, dtype=np.intc)
            buf = _ffi.errbuf()
            st = lib.knn_graph_query_window(g._handle, ffi.from_buffer("float[]", q), 1, K, int(ef), float(lo[i]),
                                            float(hi[i]), 1, ffi.from_buffer("int64_t[]", ids),
                                            ffi.from_buffer("float[]", dists),
                                            ffi.cast("size_t *", ffi.from_buffer("size_t[]", found)),
                                            ffi.cast("int *", ffi.from_buffer("int[]", plans)), buf, _ffi.ERRMSG_LEN)
            _ffi.check(st, buf)
            counts[int(plans[0])] += 1
        tot = sum(counts) or 1
        return {"exact": counts[0] / tot, "graph": counts[1] / tot, "post": counts[3] / tot, "fallback": counts[2] / tot,
                "bucket": counts[4] / tot, "queries": sum(counts)}
    except Exception as exc:  # diagnostics only
        return {"error": f"{type(exc).__name__}: {exc}"}


# ---- per fraction --------------------------------------------------------------------------------

def _fraction_inputs(wl: Workload, exp, opts, rng, adv: Optional[dict]) -> tuple:
    """(Q, lo, hi, cnt, meta) for one fraction: exp is an int i (fraction 2^-i) or "cluster" (adversarial)."""
    import datasets

    nq = opts["queries"]
    nl = wl.n_labelled
    if exp == "cluster":  # Engels: window = exactly one cluster, query near another one
        C = adv["clusters"]
        wc = rng.integers(0, C, size=nq)
        qc = (wc + rng.integers(1, C, size=nq)) % C
        lo, hi = wc - 0.5, wc + 0.5
        cnt = np.searchsorted(wl.sorted_labels, hi, "right") - np.searchsorted(wl.sorted_labels, lo, "left")
        Q = datasets.adversarial_query(adv["means"], qc, rng)
        return Q, lo.astype(np.float64), hi.astype(np.float64), cnt, {"fraction": 1.0 / C, "w_target": nl // C}
    frac = 2.0 ** -exp
    w = max(1, int(round(frac * nl)))
    lo, hi, cnt = make_windows(wl.sorted_labels, w, nq, rng)
    if adv is not None:  # query near a cluster that does not meet the window (if any)
        C = adv["clusters"]
        first = np.floor(lo + 0.5).astype(int)
        last = np.floor(hi + 0.5).astype(int)
        qc = np.empty(nq, dtype=int)
        for i in range(nq):
            free = np.r_[0:max(first[i], 0), min(last[i] + 1, C):C]
            qc[i] = rng.choice(free) if len(free) else rng.integers(0, C)
        Q = datasets.adversarial_query(adv["means"], qc, rng)
    else:
        Q = wl.ds.Q[:nq]
    return np.ascontiguousarray(Q, dtype=np.float32), lo, hi, cnt, {"fraction": frac, "w_target": w}


def run_fraction(wl: Workload, exp, opts, methods, rng, adv) -> dict:
    Q, lo, hi, cnt, meta = _fraction_inputs(wl, exp, opts, rng, adv)
    nq = Q.shape[0]
    t0 = time.perf_counter()
    gt_rows, gt_d64 = ground_truth(wl, Q, lo, hi, cnt)
    gt_s = time.perf_counter() - t0
    sample = rng.choice(nq, size=min(opts["numpy_check"], nq), replace=False)
    chk = numpy_check(wl, Q, lo, hi, gt_d64, sample)
    if chk["disagreements"]:
        raise AssertionError(f"{wl.name} 2^-{exp}: knnsql flat and numpy disagree on queries {chk['disagreements']}")
    res = {"exp": exp, **meta, "queries": nq, "w_median": float(np.median(cnt)), "w_min": int(cnt.min()),
           "w_max": int(cnt.max()), "gt_s": gt_s, "numpy_check": chk, "methods": {}}
    if "vss" in methods:  # kept for run_vss_window (popped there)
        nv = min(nq, opts["vss_queries"])
        res["_vss_in"] = {"Q": Q[:nv], "lo": lo[:nv], "hi": hi[:nv], "cnt": cnt[:nv], "gt_d64": gt_d64[:nv]}
    label = f"2^-{exp}" if exp != "cluster" else "1 cluster"
    for key in methods:
        if key in ("knnsql_sql", "knnsql_sql_batch", "knnsql_ffi", "vss"):
            continue  # after the knnsql sweep (uses its ef); vss once per workload (run_vss_window)
        make = getattr(wl, "fn_" + key)
        if key in SWEPT:
            pts = []
            t_sweep = time.perf_counter()
            for ef in opts["efs"]:
                settle(0.02)
                cell = run_cell(make(Q, lo, hi, cnt, ef), nq, opts)
                ids = cell.pop("_ids")
                sc = score(wl, ids, Q[:cell["queries"]], lo, hi, cnt, gt_d64)
                pt = {"ef": ef, **cell, **sc}
                if key == "knnsql":
                    pt["plans"] = window_plans(wl.g, Q, lo, hi, ef, min(cell["queries"], opts["plan_queries"]))
                pts.append(pt)
                spent = time.perf_counter() - t_sweep
                reached = max(p["recall"] for p in pts) >= THRESHOLD
                if (sc["recall"] >= STOP_RECALL or cell["per_query_s"] > opts["slow"]
                        or (reached and spent > opts["sweep_budget"]) or spent > 3 * opts["sweep_budget"]):
                    break
        else:
            cap = opts["duck_queries"] if key == "duckdb_sql" else None
            settle(0.02)
            cell = run_cell(make(Q, lo, hi, cnt, None), nq, opts, cap=cap)
            ids = cell.pop("_ids")
            pts = [{"ef": None, **cell, **score(wl, ids, Q[:cell["queries"]], lo, hi, cnt, gt_d64)}]
        res["methods"][key] = summarise(pts)
        b = res["methods"][key]
        log(f"    {label:<9} {LABELS[key]:<26} best QPS@{THRESHOLD} {fmt(b['best_qps'])} "
            f"(ef {b['best_ef']}, recall {fmt(b['best_recall'])}); {len(pts)} point(s), "
            f"max recall {fmt(b['max_recall'])}")
    # knnsql SQL at the ef the numpy API needed
    kb = res["methods"].get("knnsql")
    ef_sql = (kb["best_ef"] or kb["points"][-1]["ef"]) if kb else 64
    if "knnsql_ffi" in methods:
        settle(0.02)
        cell = run_cell(wl.fn_knnsql_ffi(Q, lo, hi, cnt, ef_sql), nq, opts)
        ids = cell.pop("_ids")
        res["methods"]["knnsql_ffi"] = summarise([{"ef": ef_sql, **cell, **score(wl, ids, Q[:cell["queries"]], lo,
                                                                                   hi, cnt, gt_d64)}])
    if "knnsql_sql" in methods:
        settle(0.02)
        cell = run_cell(wl.fn_knnsql_sql(Q, lo, hi, cnt, ef_sql), nq, opts, cap=opts["sql_queries"])
        ids = cell.pop("_ids")
        res["methods"]["knnsql_sql"] = summarise([{"ef": ef_sql, **cell, **score(wl, ids, Q[:cell["queries"]], lo,
                                                                                   hi, cnt, gt_d64)}])
    if "knnsql_sql_batch" in methods:
        res["methods"]["knnsql_sql_batch"] = summarise([sql_batch(wl, Q, lo, hi, cnt, ef_sql, gt_d64, opts)])
    for key in ("knnsql_ffi", "knnsql_sql", "knnsql_sql_batch"):
        if key in res["methods"]:
            b = res["methods"][key]
            log(f"    {label:<9} {LABELS[key]:<26} QPS {fmt(b['points'][0]['qps'])} at ef {ef_sql}, recall "
                f"{fmt(b['points'][0]['recall'])}")
    return res


def sql_batch(wl: Workload, Q, lo, hi, cnt, ef, gt_d64, opts) -> dict:
    import pyarrow as pa

    nq = Q.shape[0]
    con = wl.con
    vec = pa.FixedSizeListArray.from_arrays(pa.array(Q.reshape(-1), type=pa.float32()), wl.d)
    con.register("_win_q", pa.table({"qid": pa.array(np.arange(nq, dtype=np.int64)), "emb": vec,
                                     "lo": pa.array(lo), "hi": pa.array(hi)}))
    con.execute(f"CREATE OR REPLACE TABLE queries AS SELECT qid, emb::FLOAT[{wl.d}] AS emb, lo, hi FROM _win_q")
    con.unregister("_win_q")
    sql = f"SELECT qid, knn('win', emb, {K}, lo, hi, {int(ef)}) AS r FROM queries"

    def once():
        cur = con.execute(sql)
        return cur.to_arrow_table() if hasattr(cur, "to_arrow_table") else cur.fetch_arrow_table()
    once()  # warm-up
    times, tbl = [], None
    for _ in range(max(1, opts["repeats"])):
        gc.disable()
        t0 = time.perf_counter()
        tbl = once()
        times.append(time.perf_counter() - t0)
        gc.enable()
    out = np.full((nq, K), -1, dtype=np.int64)
    qid = tbl.column("qid").to_numpy()
    col = tbl.column("r").combine_chunks()
    lens = np.diff(col.offsets.to_numpy())
    flat = col.flatten().field("id").to_numpy()
    pos = 0
    for q, ln in zip(qid, lens):
        out[q, :min(ln, K)] = flat[pos:pos + min(ln, K)]
        pos += ln
    tm = median(times)
    return {"ef": ef, "queries": nq, "passes_s": times, "time_s": tm, "qps": nq / tm, "per_query_s": tm / nq,
            "probe_only": False, **score(wl, out, Q, lo, hi, cnt, gt_d64)}


def summarise(points: List[dict]) -> dict:
    ok = [p for p in points if p["recall"] >= THRESHOLD]
    best = max(ok, key=lambda p: p["qps"]) if ok else None
    return {"points": points, "best_qps": best["qps"] if best else None, "best_ef": best["ef"] if best else None,
            "best_recall": best["recall"] if best else None, "max_recall": max(p["recall"] for p in points)}
