"""Merging the shards' answers: exact top-k by (distance, id), and kNN votes.

Every shard returns its own k best rows per query, sorted; the k best of their union are the k best of
the whole table, because a row in the global top k is in its own shard's top k. Ties are broken by id,
as the single-node search breaks them, so the merged answer equals a single table's.
"""

from __future__ import annotations

from typing import List

import numpy as np
import pyarrow as pa


def top_k(parts: List[pa.Table], k: int, id_column: str) -> pa.Table:
    """The k best rows per query of the shards' answers (columns: query, id..., distance), ordered by
    (query, distance, id)."""
    empty = parts[0] if parts else None
    parts = [p for p in parts if p.num_rows]
    if not parts:
        return empty
    if not parts:
        return None
    schema = parts[0].schema
    table = pa.concat_tables([p.select(schema.names).cast(schema) for p in parts])
    query = np.asarray(table.column("query"), dtype=np.int64)
    dist = np.asarray(table.column("distance").to_numpy(zero_copy_only=False), dtype=np.float64)
    ids = np.asarray(table.column(id_column).to_numpy(zero_copy_only=False), dtype=np.int64)
    order = np.lexsort((ids, dist, query))
    q_sorted = query[order]
    rank = np.arange(len(order)) - np.searchsorted(q_sorted, q_sorted, side="left")
    return table.take(pa.array(order[rank < k]))


def vote(neigh: pa.Table, nq: int, k: int, id_column: str, target: str, task: str, weighting: str,
         squared: bool):
    """kNN predictions from the merged neighbours: majority (ties to the label that sorts first) or
    weighted majority (1 / distance; Euclidean when the metric's distances are ``squared``), or the
    (weighted) mean for regression."""
    best = top_k([neigh], k, id_column)
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
