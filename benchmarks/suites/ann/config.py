"""The ann suite's constants: graph parameters, ef sweeps, run sizes, contender labels."""

from __future__ import annotations

from pathlib import Path

K = 10
M = 16
EF_CONSTRUCTION = 200
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384]
VSS_EFS = [16, 32, 64, 128, 256, 384]
VSS_PYTHON = Path.home() / ".cache" / "knnsql-bench" / "vss-venv" / "bin" / "python"

FULL = dict(repeats=3, queries=1000, sql_queries=500, vss_queries=500, efs=EFS, vss_efs=VSS_EFS,
            vss_timeout=900, vss_budget=150, numpy_check=100, reach_rows=10_000)
QUICK = dict(repeats=1, queries=200, sql_queries=30, vss_queries=30, efs=[10, 32, 64, 128, 256], vss_efs=[32, 128],
             vss_timeout=120, vss_budget=20, numpy_check=50, reach_rows=2000)
QUICK_ROWS = {"glove": 20_000, "fashion": 10_000, "minilm": 10_000, "synthetic": 20_000}

LABELS = {
    "knnsql": "knnsql Index",
    "knnsql_sql": "knnsql SQL",
    "hnswlib": "hnswlib",
    "faiss": "faiss HNSWFlat",
    "usearch": "usearch",
    "vss": "DuckDB vss",
}
SWEEP_KEYS = ["knnsql", "hnswlib", "faiss", "usearch"]   # in-process, single-threaded, batch of queries
THRESHOLDS = (0.95, 0.9)
