"""Measurement: exact ground truth and tie-aware recall, reachability, the interleaved ef sweeps (one thread,
all cores, one SQL statement per query), and the per-dataset summary against the targets."""

from __future__ import annotations

import time
from typing import Dict, List, Optional

import numpy as np

from _common import log, median, quantile, settle, timed

from .config import K, THRESHOLDS
from .peers import Built, SqlIndex

GT: Dict[str, tuple] = {}  # dataset name -> (rows, float64 distances) of the exact top K of the run's queries


def ground_truth(ds, Q: np.ndarray, n_check: int) -> tuple:
    """Exact top-K with knnsql's flat index: (rows into ds.X (m, K), float64 distances (m, K), info)."""
    import knnsql

    from suites.exact import _dist64, reference

    fl = knnsql.Index(ds.dim, ds.metric, kind="flat")
    fl.add(ds.X, ds.ids)
    t, (gt_ids, _) = timed(lambda: fl.search(Q, K))
    del fl
    rows = np.searchsorted(ds.ids, gt_ids)
    if np.any(rows >= ds.n) or np.any(ds.ids[np.clip(rows, 0, ds.n - 1)] != gt_ids):
        raise AssertionError(f"{ds.name}: the flat index returned ids that are not in the base")
    d64 = _dist64(ds, rows, Q)
    order = np.argsort(d64, axis=1, kind="stable")
    rows = np.take_along_axis(rows, order, axis=1)
    d64 = np.take_along_axis(d64, order, axis=1)

    # cross-check on a sample against numpy (float32 GEMM top-42 re-ranked in float64)
    m = min(n_check, Q.shape[0])
    sample = np.random.default_rng(1).choice(Q.shape[0], size=m, replace=False)
    np_rows, np_d = reference(ds, Q[sample])
    kth_np = np_d[:, K - 1]
    scale = 1.0 if ds.metric == "cosine" else (Q[sample].astype(np.float64) ** 2).sum(1)
    tol = 1e-5 * np.abs(kth_np) + 1e-6 * scale
    ok_kth = np.abs(d64[sample, K - 1] - kth_np) <= tol
    ok_all = (d64[sample] <= (kth_np + tol)[:, None]).all(1)
    strict = np.mean([len(set(a) & set(b)) / K for a, b in zip(rows[sample].tolist(), np_rows.tolist())])
    if not (ok_kth.all() and ok_all.all()):
        bad = sample[~(ok_kth & ok_all)]
        raise AssertionError(f"{ds.name}: knnsql flat and numpy disagree on {len(bad)} of {m} sampled queries "
                             f"(first: query {bad[0]})")
    return rows, d64, {"flat_search_s": t, "numpy_checked_queries": int(m), "numpy_agreement_tie_aware": 1.0,
                       "numpy_agreement_strict": float(strict)}


def recall_of(ds, ids: np.ndarray, gt_rows: np.ndarray, gt_d: np.ndarray, Q: np.ndarray) -> dict:
    from suites.exact import recall

    m = ids.shape[0]
    r = recall(ds, ids, gt_rows[:m], gt_d[:m], Q[:m])
    return {"recall": r["recall"], "recall_strict": r["recall_strict"], "worst": r.get("worst_query_recall")}


def reachability(ds, built: Dict[str, "Built"], rows: int, ef: int) -> dict:
    """Searches a sample of base vectors for themselves (all cores): how many come back without a row at
    distance 0 (the vector itself or an exact duplicate)? Those nodes are unreachable at this ef."""
    from suites.exact import _dist64

    m = min(rows, ds.n)
    sample = np.sort(np.random.default_rng(2).choice(ds.n, size=m, replace=False))
    Xs = np.ascontiguousarray(ds.X[sample])
    out = {"rows": int(m), "ef": ef}
    for key, b in built.items():
        ids = b.search(Xs, ef, threads=None)[:, 0]
        r = np.clip(np.searchsorted(ds.ids, ids), 0, ds.n - 1)
        ok = ds.ids[r] == ids
        d = np.full(m, np.inf)
        d[ok] = _dist64(ds, r[ok][:, None], Xs[ok])[:, 0]
        scale = 1.0 if ds.metric == "cosine" else np.maximum((Xs.astype(np.float64) ** 2).sum(1), 1.0)
        out[key] = int((d > 1e-5 * scale).sum())
    return out


def sweep_single_thread(ds, built: Dict[str, Built], Q: np.ndarray, efs: List[int], repeats: int) -> dict:
    """Interleaved sweep: for each repeat, for each ef, each contender answers all of Q on one thread."""
    times = {k: {ef: [] for ef in efs} for k in built}
    ids = {k: {} for k in built}
    for b in built.values():  # warm-up
        b.search(Q[:100], 64)
    for r in range(repeats):
        t_rep = time.perf_counter()
        for ef in efs:
            for key, b in built.items():
                settle(0.05)
                t, out = timed(b.search, Q, ef)
                times[key][ef].append(t)
                if r == 0:
                    ids[key][ef] = out
        log(f"  single-thread sweep repeat {r + 1}/{repeats}: {time.perf_counter() - t_rep:.1f} s")
    res = {}
    nq = Q.shape[0]
    for key in built:
        pts = []
        for ef in efs:
            rc = recall_of(ds, ids[key][ef], *GT[ds.name], Q)
            med = median(times[key][ef])
            pts.append({"ef": ef, "qps": nq / med, "median_s": med, "samples_s": times[key][ef], **rc})
        res[key] = pts
    return res


def sweep_batch_all_cores(ds, g: Built, sql: SqlIndex, Q: np.ndarray, efs: List[int], repeats: int) -> dict:
    """knnsql numpy API (all cores) against the SQL batch knn(...) over the 1000-row queries table."""
    nq = Q.shape[0]
    times = {"knnsql": {ef: [] for ef in efs}, "knnsql_sql": {ef: [] for ef in efs}}
    got = {"knnsql": {}, "knnsql_sql": {}}
    g.search(Q[:100], 64, threads=None)
    sql.batch_fn(64)()
    for r in range(repeats):
        for ef in efs:
            settle(0.05)
            t, out = timed(lambda: g.search(Q, ef, threads=None))
            times["knnsql"][ef].append(t)
            got["knnsql"].setdefault(ef, out)
            settle(0.05)
            t, tbl = timed(sql.batch_fn(ef))
            times["knnsql_sql"][ef].append(t)
            if ef not in got["knnsql_sql"]:
                got["knnsql_sql"][ef] = SqlIndex.batch_ids(tbl, nq)
    res = {}
    for key in times:
        pts = []
        for ef in efs:
            med = median(times[key][ef])
            pts.append({"ef": ef, "qps": nq / med, "median_s": med, "samples_s": times[key][ef],
                        **recall_of(ds, got[key][ef], *GT[ds.name], Q)})
        res[key] = pts
    return res


def sweep_sql_single(ds, sql: SqlIndex, Q: np.ndarray, efs: List[int], repeats: int) -> dict:
    """One statement per query, DuckDB threads = 1; the ef sweep runs `repeats` times (QPS from the median)."""
    qs = [q.tolist() for q in Q]
    sql.set_threads(1)
    totals = {ef: [] for ef in efs}
    lats = {ef: [] for ef in efs}
    got = {}
    try:
        floors = sql.overhead(qs[:20])
        sql.single(qs[:5], 64)
        for _ in range(repeats):
            for ef in efs:
                lat, ids = sql.single(qs, ef)
                totals[ef].append(sum(lat))
                lats[ef] += lat
                got.setdefault(ef, ids)
    finally:
        sql.set_threads(None)
    pts = [{"ef": ef, "qps": len(qs) / median(totals[ef]), "total_s_samples": totals[ef],
            "median_ms": median(lats[ef]) * 1e3, "p90_ms": quantile(lats[ef], 0.9) * 1e3,
            **recall_of(ds, got[ef], *GT[ds.name], Q)} for ef in efs]
    return {"points": pts, "queries": len(qs), "repeats": repeats, "floors": floors, "duckdb_threads": 1,
            "query_form": f"SELECT id FROM knn_search('{sql.name}', $q::FLOAT[{sql.d}], k := {K}, ef := <ef>)"}


def qps_at_recall(points: List[dict], r: float) -> Optional[float]:
    """QPS at exactly recall r, interpolating log(QPS) linearly in recall between the two sweep points that
    bracket r (points in ef order). None when no point reaches r. Less sensitive than best_at() to which side
    of the threshold a library's nearest ef happens to land."""
    pts = sorted(points, key=lambda p: p["ef"])
    for a, b in zip(pts, pts[1:]):
        if a["recall"] < r <= b["recall"]:
            f = (r - a["recall"]) / (b["recall"] - a["recall"])
            return float(np.exp(np.log(a["qps"]) + f * (np.log(b["qps"]) - np.log(a["qps"]))))
    hit = [p["qps"] for p in pts if p["recall"] >= r]
    return max(hit) if hit else None


def best_at(points: List[dict], thr: float) -> Optional[dict]:
    ok = [p for p in points if p["recall"] >= thr]
    return max(ok, key=lambda p: p["qps"]) if ok else None


def summarize(ds, single, batch, sql_single, vss, builds, restore) -> dict:
    s: dict = {"best": {}, "targets": {}}
    curves = dict(single)
    curves["knnsql_sql"] = sql_single["points"]
    if vss and vss.get("points"):
        curves["vss"] = vss["points"]
    for key, pts in curves.items():
        s["best"][key] = {str(t): best_at(pts, t) for t in THRESHOLDS}
        s["best"][key]["max_recall"] = max(p["recall"] for p in pts)
    hb = builds.get("hnswlib")
    T = s["targets"]
    # 1. knnsql QPS >= 1.5x hnswlib at recall >= 0.95, single-threaded
    if "hnswlib" in single:
        for t in THRESHOLDS:
            a, b = best_at(single["knnsql"], t), best_at(single["hnswlib"], t)
            T[f"qps_vs_hnswlib@{t}"] = a["qps"] / b["qps"] if a and b else None
            a, b = qps_at_recall(single["knnsql"], t), qps_at_recall(single["hnswlib"], t)
            T[f"qps_vs_hnswlib_interp@{t}"] = a / b if a and b else None
    # 2. build time <= hnswlib; 3. memory <= 1.3x hnswlib
    if hb:
        T["build_vs_hnswlib"] = builds["knnsql"]["build_s"] / hb["build_s"]
        T["memory_vs_hnswlib_reported"] = builds["knnsql"]["memory_bytes"] / hb["memory_bytes"]
        T["memory_vs_hnswlib_rss"] = (builds["knnsql"]["rss_delta_bytes"] / hb["rss_delta_bytes"]
                                      if hb["rss_delta_bytes"] > 0 else None)
        T["memory_vs_hnswlib_index_file"] = builds["knnsql"]["memory_bytes"] / hb["index_file_bytes"]
    # 4. SQL batch >= 0.7x numpy API QPS (all cores) at the ef where the knnsql Index reaches 0.95
    ef95 = next((p["ef"] for p in single["knnsql"] if p["recall"] >= 0.95), None)
    s["ef_at_0.95"] = ef95
    if ef95 is not None:
        a = next(p for p in batch["knnsql_sql"] if p["ef"] == ef95)
        b = next(p for p in batch["knnsql"] if p["ef"] == ef95)
        T["sql_batch_vs_numpy"] = a["qps"] / b["qps"]
        s["batch_at_ef95"] = {"ef": ef95, "sql_qps": a["qps"], "numpy_qps": b["qps"], "sql_recall": a["recall"],
                              "numpy_recall": b["recall"]}
    # 5. vs vss: QPS through SQL (one statement per query both) and build time
    if vss and vss.get("points"):
        T["build_vs_vss"] = vss["build_s"] / builds["knnsql_sql"]["build_s"]
        vb = best_at(vss["points"], 0.95)
        level = 0.95
        if vb is None:  # vss does not reach 0.95: compare at the best recall it reaches
            vb = max(vss["points"], key=lambda p: (p["recall"], p["qps"]))
            level = vb["recall"]
        kb = best_at(sql_single["points"], level)
        T["sql_qps_vs_vss"] = kb["qps"] / vb["qps"] if kb else None
        s["vss_compare"] = {"recall_level": level, "vss": vb, "knnsql_sql": kb}
    # 6. restore >= 20x faster than rebuild
    T["restore_sql_speedup"] = restore["sql"]["speedup"]
    T["restore_numpy_speedup"] = restore["numpy"]["speedup"]
    return s
