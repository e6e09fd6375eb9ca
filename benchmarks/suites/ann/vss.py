"""DuckDB vss, in its own venv (DuckDB 1.5.5) through suites/_vss_worker.py: build and ef sweep."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import median, quantile

from .config import EF_CONSTRUCTION, K, M
from .measure import GT, recall_of

WORKER = Path(__file__).resolve().parent.parent / "_vss_worker.py"


def run_vss(ds, Q: np.ndarray, opts: dict, python: Path) -> dict:
    """Runs _vss_worker.py in the vss venv; returns its results (with recall) or {"error": ...}."""
    if not python.is_file():
        return {"error": f"{python} not found: create the venv with `python -m venv {python.parent.parent} && "
                         f"{python.parent}/pip install duckdb==1.5.5 duckdb-extension-vss==1.5.5 numpy`"}
    try:
        import pyarrow.parquet as pq

        import knnsql
    except ImportError as exc:
        return {"error": f"pyarrow is needed to hand the table to the vss worker ({exc})"}
    with tempfile.TemporaryDirectory(prefix="knnsql-ann-vss-") as tmp:
        tmp = Path(tmp)
        pq.write_table(knnsql.vectors_table(ds.X, ds.ids), tmp / "base.parquet", compression="none")
        np.save(tmp / "queries.npy", np.ascontiguousarray(Q, dtype=np.float32))
        job = {"parquet": str(tmp / "base.parquet"), "queries": str(tmp / "queries.npy"), "dim": ds.dim,
               "metric": ds.metric, "m": M, "ef_construction": EF_CONSTRUCTION, "k": K, "efs": opts["vss_efs"],
               "threads_build": 0, "threads_search": 1, "budget_s": opts["vss_budget"], "repeats": opts["repeats"]}
        (tmp / "job.json").write_text(json.dumps(job))
        t0 = time.perf_counter()
        try:
            p = subprocess.run([str(python), str(WORKER), str(tmp / "job.json")], stdout=subprocess.PIPE,
                               stderr=None, text=True, timeout=opts["vss_timeout"])
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {opts['vss_timeout']:.0f} s (--vss-timeout); the worker was killed",
                    "wall_s": time.perf_counter() - t0}
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sig = f" (signal {-p.returncode})" if p.returncode < 0 else ""
            return {"error": f"worker exited with status {p.returncode}{sig}", "stdout_tail": p.stdout[-2000:],
                    "wall_s": wall}
        try:
            out = json.loads(p.stdout)
        except json.JSONDecodeError:
            return {"error": "worker printed no JSON", "stdout_tail": p.stdout[-2000:], "wall_s": wall}
    out["wall_s"] = wall
    pts = []
    for s in out.pop("sweep", []):
        ids = np.array(s["ids"], dtype=np.int64)
        lat = [t for rep in s["latencies_s"] for t in rep]
        totals = [sum(rep) for rep in s["latencies_s"]]
        pts.append({"ef": s["ef"], "qps": Q.shape[0] / median(totals), "total_s_samples": totals,
                    "median_ms": median(lat) * 1e3, "p90_ms": quantile(lat, 0.9) * 1e3,
                    **recall_of(ds, ids, *GT[ds.name], Q)})
    out["points"] = pts
    out["queries"] = int(Q.shape[0])
    return out
