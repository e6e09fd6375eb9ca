"""Suite "api", the LanceDB peer: the same rows in a local LanceDB table, an IVF_HNSW_SQ vector index
with the table's metric (LanceDB's defaults otherwise) and BTREE scalar indexes on u, cat, u2, far;
searched with ``tbl.search(q).distance_type(metric).where(pred, prefilter=True).limit(10)``, selecting
the columns the knnsql API returns (id, u, cat, u2, far, distance).

Settings: LanceDB's defaults, and the first of ``LADDER`` (cheapest first) that reaches recall@10
>= 0.95 on separate tuning queries, when the defaults do not.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time

import numpy as np

# cheapest first; {} = LanceDB's defaults (ef = 1.5 k, its default nprobes, no refine)
LADDER = [{}, {"ef": 64}, {"ef": 64, "refine_factor": 2}, {"ef": 128, "refine_factor": 5},
          {"nprobes": 64, "ef": 128, "refine_factor": 5}, {"nprobes": 256, "ef": 256, "refine_factor": 10}]
TUNE_RECALL = 0.95
SELECT = ["id", "u", "cat", "u2", "far", "_distance"]


def import_lancedb():
    """lancedb, or None. LanceDB imports HuggingFace ``datasets`` when a module of that name is loaded,
    and ours (benchmarks/datasets.py) is not it: hide it while lancedb loads."""
    os.environ.setdefault("LANCE_LOG", "error")
    ours = sys.modules.pop("datasets", None)
    try:
        import lancedb
        return lancedb
    except ImportError:
        return None
    finally:
        if ours is not None:
            sys.modules["datasets"] = ours


def setting_text(setting: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"


class Lance:
    def __init__(self, X: np.ndarray, attrs: dict, metric: str, workdir: str | None = None):
        lancedb = import_lancedb()
        if lancedb is None:
            raise ImportError("lancedb is not installed: pip install 'lancedb==0.40.*'")
        import pyarrow as pa
        from lancedb.index import BTree, HnswSq

        self.version = lancedb.__version__
        self.metric = "cosine" if metric == "cosine" else "l2"
        self.dir = tempfile.mkdtemp(prefix="knnsql-api-lance-", dir=workdir)
        n, d = X.shape
        data = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)),
                         "vector": pa.FixedSizeListArray.from_arrays(pa.array(X.reshape(-1)), d),
                         "u": pa.array(attrs["u"]), "cat": pa.array(attrs["cat"]), "u2": pa.array(attrs["u2"]),
                         "far": pa.array(attrs["far"])})
        self.db = lancedb.connect(self.dir)
        t0 = time.perf_counter()
        self.tbl = self.db.create_table("items", data)
        self.load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.tbl.create_index("vector", config=HnswSq(distance_type=self.metric))
        self.vector_index_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for col in ("u", "cat", "u2", "far"):
            self.tbl.create_index(col, config=BTree())
        self.scalar_index_s = time.perf_counter() - t0
        self.index_info = self._describe()

    def _describe(self) -> dict:
        out = {}
        try:
            for ix in self.tbl.list_indices():
                out[ix.name] = {"type": str(ix.index_type), "columns": list(ix.columns)}
                det = getattr(ix, "index_details", None)
                if det:
                    out[ix.name]["details"] = det
        except Exception as exc:  # a describe failure must not stop the run
            out["error"] = repr(exc)
        return out

    def partitions(self, q: np.ndarray) -> dict:
        """IVF partitions of the vector index and default probes, read off an analyzed unfiltered query."""
        import re
        try:
            text = self._query(q, None, {}).analyze_plan()
        except Exception as exc:
            return {"error": repr(exc)}
        out = {}
        for key in ("partitions_ranked", "partitions_searched", "minimum_nprobes", "maximum_nprobes"):
            m = re.search(key + r"=(Some\()?(\d+)", text)
            if m:
                out[key] = int(m.group(2))
        return out

    def plan_text(self, q: np.ndarray, pred: str | None, setting: dict) -> str:
        try:
            return self._query(q, pred, setting).explain_plan(True)
        except Exception as exc:
            return f"explain failed: {exc!r}"

    def _query(self, q, pred, setting):
        s = self.tbl.search(q).distance_type(self.metric)
        if pred is not None:
            s = s.where(pred, prefilter=True)
        s = s.limit(10)
        if "nprobes" in setting:
            s = s.nprobes(setting["nprobes"])
        if "ef" in setting:
            s = s.ef(setting["ef"])
        if "refine_factor" in setting:
            s = s.refine_factor(setting["refine_factor"])
        return s.select(SELECT)

    def search(self, q: np.ndarray, pred: str | None, setting: dict):
        return self._query(q, pred, setting).to_arrow().column("id").to_pylist()

    def close(self) -> None:
        self.tbl = self.db = None
        shutil.rmtree(self.dir, ignore_errors=True)
