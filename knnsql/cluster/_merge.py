"""Merging the shards' answers: exact top-k by (distance, id), and kNN votes.

Every shard returns its own k best rows per query, sorted; the k best of their union are the k best of
the whole table, because a row in the global top k is in its own shard's top k. Ties are broken by id,
as the single-node search breaks them, so the merged answer equals a single table's.
"""

from __future__ import annotations

from typing import List

import numpy as np
import pyarrow as pa


def top_k(parts: List[tuple], k: int, id_column: str) -> pa.Table:
    """The k best rows per query of the shards' answers ((query, id, distance, other columns or None) each),
    as one table (query, id, the other columns, distance) ordered by (query, distance, id)."""
    query = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    ids = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    dist = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
    order = np.lexsort((ids, dist, query))
    q_sorted = query[order]
    keep = order[(np.arange(len(order)) - np.searchsorted(q_sorted, q_sorted, side="left")) < k]
    out = {"query": pa.array(query[keep]), id_column: pa.array(ids[keep])}
    extra = [p[3] for p in parts if p[3] is not None]
    if extra:
        rest = pa.concat_tables([p[3] for p in parts if p[3] is not None]) if len(extra) == len(parts) else None
        if rest is not None:
            taken = rest.take(pa.array(keep))
            for c in taken.column_names:
                out[c] = taken.column(c)
    out["distance"] = pa.array(dist[keep])
    return pa.table(out)


def vote(parts: List[tuple], nq: int, k: int, id_column: str, target: str, task: str, weighting: str,
         squared: bool):
    """kNN predictions from the merged neighbours: majority (ties to the label that sorts first) or
    weighted majority (1 / distance; Euclidean when the metric's distances are ``squared``), or the
    (weighted) mean for regression."""
    best = top_k(parts, k, id_column)
    q = np.asarray(best.column("query"), dtype=np.int64)
    d = np.maximum(np.asarray(best.column("distance").to_numpy(zero_copy_only=False), dtype=np.float64), 0)
    d = np.sqrt(d) if squared else d
    y = best.column(target).to_numpy(zero_copy_only=False)
    w = np.ones(len(q)) if weighting == "uniform" else 1.0 / np.maximum(d, 1e-12)
    out = []
    for i in range(nq):
        sel = q == i
        if not sel.any():
            out.append(None)
            continue
        if task == "regression":
            out.append(float(np.sum(w[sel] * y[sel].astype(np.float64)) / np.sum(w[sel])))
            continue
        labels, inv = np.unique(y[sel], return_inverse=True)
        score = np.bincount(inv, weights=w[sel], minlength=len(labels))
        top = labels[int(np.argmax(score))]
        out.append(top.item() if hasattr(top, "item") else top)
    return out
