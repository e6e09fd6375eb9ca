"""DuckDB vss on a workload's windows, in its own venv (DuckDB 1.5.5) through suites/_vss_worker.py."""

from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from _common import fmt, log

from .config import EF_CONSTRUCTION, K, LABELS, M, THRESHOLD, _flabel
from .measure import score, summarise
from .workload import Workload


def run_vss_window(wl: Workload, fr: List[dict], opts: dict) -> dict:
    """DuckDB vss (HNSW on emb, DuckDB 1.5.5 in its own venv, see _vss_worker.py) on each fraction's first
    queries with the DuckDB SQL baseline's WHERE; scores them into f["methods"]["vss"]. One subprocess (one
    index build) per workload. Returns the worker's summary or {"error": ...}."""
    import json
    import subprocess
    import tempfile

    python = Path(opts["vss_python"])
    if not python.is_file():
        return {"error": f"{python} not found: create the venv with `python -m venv {python.parent.parent} && "
                         f"{python.parent}/pip install duckdb==1.5.5 duckdb-extension-vss==1.5.5 numpy pyarrow`"}
    import pyarrow as pa
    import pyarrow.parquet as pq

    log(f"  DuckDB vss (subprocess): {opts['vss_queries']} statements per fraction x ef {opts['vss_efs']}")
    with tempfile.TemporaryDirectory(prefix="knnsql-window-vss-") as tmp:
        tmp = Path(tmp)
        vec = pa.FixedSizeListArray.from_arrays(pa.array(wl.X.reshape(-1), type=pa.float32()), wl.d)
        lab = pa.array(wl.labels, type=pa.float64(), from_pandas=True)  # NaN -> NULL: never in a window
        pq.write_table(pa.table({"id": pa.array(wl.rows), "emb": vec, "label": lab}), tmp / "base.parquet",
                       compression="none")
        frs = []
        for j, f in enumerate(fr):
            x = f["_vss_in"]
            np.save(tmp / f"q{j}.npy", np.ascontiguousarray(x["Q"], dtype=np.float32))
            frs.append({"queries": str(tmp / f"q{j}.npy"), "lo": [float(v) for v in x["lo"]],
                        "hi": [float(v) for v in x["hi"]]})
        job = {"parquet": str(tmp / "base.parquet"), "dim": wl.d, "metric": wl.metric, "m": M,
               "ef_construction": EF_CONSTRUCTION, "k": K, "efs": opts["vss_efs"], "threads_build": 0,
               "threads_search": 1, "window": frs}
        (tmp / "job.json").write_text(json.dumps(job))
        worker = Path(__file__).resolve().parent.parent / "_vss_worker.py"
        try:
            p = subprocess.run([str(python), str(worker), str(tmp / "job.json")], stdout=subprocess.PIPE,
                               stderr=None, text=True, timeout=opts["vss_timeout"])
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {opts['vss_timeout']} s"}
        if p.returncode != 0:
            return {"error": f"worker exited with status {p.returncode}", "stdout_tail": p.stdout[-2000:]}
        try:
            out = json.loads(p.stdout)
        except json.JSONDecodeError:
            return {"error": "worker printed no JSON", "stdout_tail": p.stdout[-2000:]}
    for f, pts_in in zip(fr, out.pop("window", [])):
        x = f["_vss_in"]
        pts = []
        for pt in pts_in:
            ids = np.array(pt["ids"], dtype=np.int64)
            t = sum(pt["latencies_s"])
            sc = score(wl, ids, x["Q"], x["lo"], x["hi"], x["cnt"], x["gt_d64"])
            pts.append({"ef": pt["ef"], "queries": len(ids), "passes_s": [t], "time_s": t,
                        "qps": len(ids) / t if t > 0 else float("inf"), "per_query_s": t / max(len(ids), 1),
                        "probe_only": False, **sc})
        if pts:
            f["methods"]["vss"] = summarise(pts)
            b = f["methods"]["vss"]
            log(f"    {_flabel(f):<9} {LABELS['vss']:<26} best QPS@{THRESHOLD} {fmt(b['best_qps'])}, max recall "
                f"{fmt(b['max_recall'])} ({len(pts)} ef)")
    return out
