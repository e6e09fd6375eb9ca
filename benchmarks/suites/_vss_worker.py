"""Worker for the "ann" and "window" suites: DuckDB's vss extension (HNSW via usearch), run in its own venv.

vss's extension binary loads into DuckDB 1.5.5 only, while knnsql runs on the project's DuckDB, so the ann
suite runs this script with the interpreter of a separate venv (duckdb==1.5.5, duckdb-extension-vss==1.5.5,
numpy) and reads one JSON document from its stdout. Progress goes to stderr.

    python _vss_worker.py job.json

job.json: {"parquet": base table (id BIGINT, emb FLOAT[]), "queries": .npy (nq, d) float32, "dim": d,
           "metric": "cosine"|"l2", "m": 16, "ef_construction": 200, "k": 10, "efs": [...],
           "threads_build": 0 (= DuckDB default), "threads_search": 1, "repeats": sweeps of all efs,
           "budget_s": no further repeat starts after this many seconds of sweeping}

Each query is one SQL statement, as a user would write it, with the vector as a literal (binding a
FLOAT[d] parameter is much slower on DuckDB 1.5.5's Python client; both floors are reported):
    SELECT id FROM t ORDER BY array_cosine_distance(emb, [..]::FLOAT[d]) LIMIT 10   (array_distance for l2sq)

A window job (the "window" suite) adds a label column to the parquet and a "window" list of fractions
({"queries": .npy, "lo": [...], "hi": [...]}); each query then carries ``WHERE label BETWEEN lo AND hi``.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from pathlib import Path


def log(msg: str) -> None:
    print(f"    [vss] {msg}", file=sys.stderr, flush=True)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def extension_path() -> str:
    import duckdb_extension_vss

    root = Path(duckdb_extension_vss.__file__).parent
    hits = sorted(root.rglob("vss.duckdb_extension"))
    if not hits:
        raise RuntimeError(f"no vss.duckdb_extension under {root}")
    return str(hits[0])


def window_sweep(con, job: dict, fn: str, out: dict) -> None:
    """The window suite's job ("window": [{"queries": .npy, "lo": [...], "hi": [...]}, ...]): per fraction and
    ef, one statement per query with the same WHERE the DuckDB SQL baseline uses."""
    import numpy as np

    d, k = job["dim"], job["k"]

    def q_sql(lit: str, lo: float, hi: float) -> str:
        return (f"SELECT id FROM t WHERE label BETWEEN {lo!r} AND {hi!r} ORDER BY {fn}(emb, {lit}::FLOAT[{d}]) "
                f"LIMIT {k}")

    fractions = []
    for fi, fr in enumerate(job["window"]):
        Q = np.load(fr["queries"])
        lits = ["[" + ", ".join(repr(float(x)) for x in q) + "]" for q in Q]
        if fi == 0:
            plan = con.execute("EXPLAIN " + q_sql(lits[0], fr["lo"][0], fr["hi"][0])).fetchall()
            out["plan_uses_index"] = any("HNSW_INDEX_SCAN" in str(r) for r in plan)
            out["query_form"] = q_sql("<literal>", "<lo>", "<hi>")
        pts = []
        for ef in job["efs"]:
            con.execute(f"SET hnsw_ef_search = {int(ef)}")
            con.execute(q_sql(lits[0], fr["lo"][0], fr["hi"][0])).fetchall()  # warm-up
            lat, ids = [], []
            for i, lit in enumerate(lits):
                t0 = time.perf_counter()
                rows = con.execute(q_sql(lit, fr["lo"][i], fr["hi"][i])).fetchall()
                lat.append(time.perf_counter() - t0)
                ids.append([r[0] for r in rows][:k] + [-1] * (k - min(k, len(rows))))
            pts.append({"ef": ef, "latencies_s": lat, "ids": ids})
        fractions.append(pts)
        log(f"window fraction {fi + 1}/{len(job['window'])} done")
    out["window"] = fractions


def main(job_path: str) -> int:
    import duckdb
    import numpy as np

    job = json.loads(Path(job_path).read_text())
    d, k, metric = job["dim"], job["k"], job["metric"]
    out = {"duckdb": duckdb.__version__, "ok": False}
    con = duckdb.connect()
    ext = extension_path()
    con.execute(f"LOAD '{ext}'")
    out["extension"] = ext
    try:
        out["extension_version"] = con.execute(
            "SELECT extension_version FROM duckdb_extensions() WHERE extension_name = 'vss'").fetchone()[0]
    except Exception:
        pass
    if job.get("threads_build"):
        con.execute(f"SET threads = {int(job['threads_build'])}")
    out["threads_build"] = con.execute("SELECT current_setting('threads')").fetchone()[0]

    t0 = time.perf_counter()
    extra = ", label::DOUBLE AS label" if job.get("window") else ""
    con.execute(f"CREATE TABLE t AS SELECT id::BIGINT AS id, emb::FLOAT[{d}] AS emb{extra} "
                f"FROM read_parquet('{job['parquet']}')")
    out["load_s"] = time.perf_counter() - t0
    out["rows"] = con.execute("SELECT count(*) FROM t").fetchone()[0]
    log(f"table loaded: {out['rows']:,} rows in {out['load_s']:.2f} s; CREATE INDEX (M={job['m']}, "
        f"ef_construction={job['ef_construction']}, {out['threads_build']} threads) ...")

    vss_metric = "cosine" if metric == "cosine" else ("ip" if metric == "ip" else "l2sq")
    fn = {"cosine": "array_cosine_distance", "ip": "array_negative_inner_product"}.get(metric, "array_distance")
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    con.execute(f"CREATE INDEX t_hnsw ON t USING HNSW (emb) WITH (metric = '{vss_metric}', M = {job['m']}, "
                f"ef_construction = {job['ef_construction']})")
    out["build_s"] = time.perf_counter() - t0
    out["build_rss_delta_bytes"] = rss_bytes() - rss0
    log(f"built in {out['build_s']:.1f} s")
    try:
        cur = con.execute("SELECT * FROM pragma_hnsw_index_info()")
        cols = [c[0] for c in cur.description]
        row = cur.fetchone()
        info = {c: (v if isinstance(v, (int, float, str)) or v is None else str(v)) for c, v in zip(cols, row)}
        out["index_info"] = info
        out["approx_memory_bytes"] = info.get("approx_memory_usage")
    except Exception as exc:
        out["index_info_error"] = str(exc)

    if job.get("window"):
        con.execute(f"SET threads = {int(job.get('threads_search') or 1)}")
        out["threads_search"] = con.execute("SELECT current_setting('threads')").fetchone()[0]
        window_sweep(con, job, fn, out)
        out["ok"] = True
        con.close()
        json.dump(out, sys.stdout)
        return 0

    # The query vector goes in as a literal: on DuckDB 1.5.5's Python client, binding a FLOAT[d] parameter
    # ($q) costs far more than the search itself (45 ms for d = 784, measured), so the literal is what a user
    # would pick. Both floors are measured and reported.
    def q_sql(lit: str) -> str:
        return f"SELECT id FROM t ORDER BY {fn}(emb, {lit}::FLOAT[{d}]) LIMIT {k}"

    Q = np.load(job["queries"])
    lits = ["[" + ", ".join(repr(float(x)) for x in q) + "]" for q in Q]
    plan = con.execute("EXPLAIN " + q_sql(lits[0])).fetchall()
    out["plan_uses_index"] = any("HNSW_INDEX_SCAN" in str(r) for r in plan)
    out["query_form"] = q_sql("<literal>")
    if not out["plan_uses_index"]:
        log("WARNING: the plan does not use HNSW_INDEX_SCAN")
    con.execute(f"SET threads = {int(job.get('threads_search') or 1)}")
    out["threads_search"] = con.execute("SELECT current_setting('threads')").fetchone()[0]

    floors = {}
    nfl = min(20, len(lits))
    for name, stmt, params in (("literal_only", lambda i: f"SELECT {lits[i]}::FLOAT[{d}] IS NULL", None),
                               ("param_bind_only", lambda i: f"SELECT $q::FLOAT[{d}] IS NULL", True)):
        lat = []
        for i in range(nfl):
            t0 = time.perf_counter()
            if params:
                con.execute(stmt(i), {"q": Q[i].tolist()}).fetchall()
            else:
                con.execute(stmt(i)).fetchall()
            lat.append(time.perf_counter() - t0)
        floors[name + "_median_ms"] = sorted(lat)[len(lat) // 2] * 1e3
    out["floors"] = floors
    log(f"per-statement floors: {floors}")

    budget = float(job.get("budget_s") or 1e9)
    repeats = int(job.get("repeats") or 1)
    t_sweep = time.perf_counter()
    sweep = {ef: {"ef": ef, "latencies_s": [], "ids": None} for ef in job["efs"]}
    for rep in range(repeats):  # the whole ef sweep, `repeats` times (noise hits every ef alike)
        for ef in job["efs"]:
            con.execute(f"SET hnsw_ef_search = {int(ef)}")
            for lit in lits[:3]:  # warm-up
                con.execute(q_sql(lit)).fetchall()
            lat, ids = [], []
            gc.disable()
            for lit in lits:
                t0 = time.perf_counter()
                rows = con.execute(q_sql(lit)).fetchall()
                lat.append(time.perf_counter() - t0)
                ids.append([r[0] for r in rows] + [-1] * (k - len(rows)))
            gc.enable()
            sweep[ef]["latencies_s"].append(lat)
            if sweep[ef]["ids"] is None:
                sweep[ef]["ids"] = ids
            log(f"repeat {rep + 1}/{repeats} ef={ef}: {len(lits) / sum(lat):.0f} QPS")
        if time.perf_counter() - t_sweep > budget and rep + 1 < repeats:
            log(f"sweep budget of {budget:.0f} s used up after {rep + 1} of {repeats} repeats")
            out["sweep_repeats_done"] = rep + 1
            break
    sweep = [v for v in sweep.values() if v["latencies_s"]]
    out["sweep"] = sweep
    out["ok"] = True
    con.close()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
