"""The window suite's constants: parameters, workloads, methods and their labels, run sizes."""

from __future__ import annotations

from pathlib import Path

K = 10
M = 16
EF_CONSTRUCTION = 200
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256]
THRESHOLD = 0.95
STOP_RECALL = 0.999

WORKLOADS = {  # name -> (base dataset, label kind)
    "glove-random": ("glove", "random"),
    "glove-rank": ("glove", "rank"),
    "fashion-random": ("fashion", "random"),
    "adversarial": ("adversarial", "adversarial"),
    "minilm-size": ("minilm", "installed_size"),
}
LABEL_DESC = {
    "random": "uniform random in [0, 1) (seed 7)",
    "rank": "frequency rank (the GloVe row number)",
    "adversarial": "cluster i: uniform in [i-0.5, i+0.5); queries near a cluster outside the window",
    "installed_size": "Debian Installed-Size in KiB (NaN for packages without one: never in a window)",
}

FULL = dict(queries=200, efs=EFS, exponents=list(range(0, 17)), cell_budget=0.4, sweep_budget=2.0, min_queries=5,
            slow=0.5, repeats=3, duck_queries=8, sql_queries=30, numpy_check=4, plan_queries=50, plain_graph="auto",
            vss_queries=10, vss_efs=[64, 256], vss_timeout=1200)
QUICK = dict(queries=40, efs=[16, 64, 256], exponents=[0, 3, 6, 9, 12], cell_budget=0.08, sweep_budget=0.4,
             min_queries=5, slow=0.2, repeats=1, duck_queries=3, sql_queries=5, numpy_check=2, plan_queries=20,
             plain_graph="all", vss_queries=3, vss_efs=[64], vss_timeout=300)
VSS_PYTHON = Path.home() / ".cache" / "knnsql-bench" / "vss-venv" / "bin" / "python"  # as the ann suite
PLAIN_AUTO_MAX_ROWS = 250_000  # --plain-graph auto: skip the extra plain build on bigger sets (time)
QUICK_ROWS = {"glove": 10_000, "fashion": 5_000, "adversarial": 10_000, "minilm": 5_000, "synthetic": 10_000}

METHODS = ["knnsql", "knnsql_ffi", "prefilter_flat", "prefilter_slice", "postfilter", "hnswlib", "duckdb_sql", "knnsql_sql",
           "knnsql_sql_batch", "vss"]
LABELS = {
    "knnsql": "knnsql graph window",
    "knnsql_ffi": "knnsql raw C call",
    "prefilter_flat": "prefilter (flat + lo/hi)",
    "prefilter_slice": "prefilter (sorted slice)",
    "postfilter": "postfilter (doubling)",
    "hnswlib": "hnswlib filter",
    "duckdb_sql": "DuckDB SQL",
    "knnsql_sql": "knnsql SQL knn_search",
    "knnsql_sql_batch": "knnsql SQL knn() batch",
    "vss": "DuckDB vss (same WHERE)",
}
SWEPT = ("knnsql", "postfilter", "hnswlib")
BASELINES = ("prefilter_flat", "prefilter_slice", "postfilter")
# "brief": max(prefilter via the flat index + lo/hi, postfilter); "strict": also the sorted-slice prefilter
BASELINE_SETS = {"brief": ("prefilter_flat", "postfilter"), "strict": BASELINES}
KNNSQL_KEYS = ("knnsql", "knnsql_ffi", "knnsql_sql", "knnsql_sql_batch")
TARGET_BAND = list(range(4, 11))  # fractions 2^-4 ... 2^-10 for the 10x target


def _flabel(f: dict) -> str:
    return "1 cluster" if f["exp"] == "cluster" else f"2^-{f['exp']}"
