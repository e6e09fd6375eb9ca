"""One shard replica: a DuckDB database file holding one part of a sharded table, with its knnsql index.

``ShardServer`` is a plain class; ``cluster.py`` runs each replica as a Ray actor of it (its own worker
process). Everything it holds survives a restart: the rows are in the database file (DuckDB writes its
WAL on commit, so an ``add`` that returned is on disk), and the index is saved in the same file at each
checkpoint and repaired from the rows on open when the process died before one (``knnsql.connect``'s
open report). A restarted actor runs ``__init__`` again on the same file and answers as before.

The methods are the per-shard halves of the cluster's operations; the cluster merges their answers
(``_merge.py``).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import numpy as np
import pyarrow as pa

import knnsql
from knnsql._sql import quote_ident as q


class ShardServer:
    def __init__(self, path: str, spec: dict):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.path, self.spec = path, spec
        self.db = knnsql.connect(path)
        name = spec["name"]
        if name not in self.db.tables():
            self.db.create_table(name, dim=spec["dim"], metric=spec["metric"], columns=spec.get("columns") or None,
                                 id=spec.get("id", "id"), vector=spec.get("vector", "emb"))
            self.db.checkpoint()
        self.t = self.db.table(name)

    # -- facts ----------------------------------------------------------------------------------------
    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> int:
        return 0

    def count(self, where: Optional[str] = None) -> int:
        cond = f" WHERE {knnsql._sql.filter_sql(where, self.t.all_columns)}" if where else ""
        return int(self.db.con.execute(f"SELECT count(*) FROM {q(self.t.name)}{cond}").fetchall()[0][0])

    def stats(self) -> dict:
        info = self.t.index
        rows = self.count()
        out = {"rows": rows, "pid": os.getpid(), "file_bytes": os.path.getsize(self.path) if os.path.exists(self.path)
               else 0, "index": None, "index_bytes": 0}
        if info is not None:
            r = self.db.con.execute("SELECT memory_bytes FROM knn_indexes() WHERE name = ?", [info.name]).fetchall()
            out.update(index=info.name, index_bytes=int(r[0][0]) if r else 0)
        return out

    def existing(self, ids: np.ndarray) -> list:
        """The ids of ``ids`` this shard holds (at most 5, for an error message)."""
        self.db.con.register("_knnsql_probe", pa.table({"id": pa.array(np.asarray(ids, dtype=np.int64))}))
        try:
            return [r[0] for r in self.db.con.execute(
                f"SELECT p.id FROM _knnsql_probe p SEMI JOIN {q(self.t.name)} t ON t.{q(self.t.id_column)} = p.id "
                "LIMIT 5").fetchall()]
        finally:
            self.db.con.unregister("_knnsql_probe")

    # -- writes ---------------------------------------------------------------------------------------
    def add(self, batch: pa.Table, retry: bool = False) -> int:
        """Appends rows; with ``retry`` (the same batch sent again after a failure) the rows already here
        are skipped, so a batch that reached the disk before its worker died is not written twice."""
        if retry and batch.num_rows:
            ids = np.asarray(batch.column(self.t.id_column))
            held = self._held(ids)
            if held.any():
                batch = batch.filter(pa.array(~held))
        n = self.t.add(batch) if batch.num_rows else 0
        self.db.checkpoint()   # the index too, so a restart restores it instead of rebuilding
        return n

    def _held(self, ids: np.ndarray) -> np.ndarray:
        self.db.con.register("_knnsql_probe", pa.table({"id": pa.array(ids.astype(np.int64))}))
        try:
            got = {r[0] for r in self.db.con.execute(
                f"SELECT p.id FROM _knnsql_probe p SEMI JOIN {q(self.t.name)} t ON t.{q(self.t.id_column)} = p.id"
            ).fetchall()}
        finally:
            self.db.con.unregister("_knnsql_probe")
        return np.fromiter((i in got for i in ids.tolist()), dtype=bool, count=len(ids))

    def delete(self, ids: Optional[np.ndarray] = None, where: Optional[str] = None) -> int:
        n = self.t.delete(ids, where=where) if ids is not None else self.t.delete(where=where)
        self.db.checkpoint()
        return n

    def create_index(self, label: Optional[str], options: dict) -> dict:
        report = self.t.create_index(label, replace=True, **options)
        self.db.checkpoint()
        return {"recall": getattr(report, "recall", None)}

    # -- reads ----------------------------------------------------------------------------------------
    def search(self, Q: np.ndarray, k: int, plan: dict) -> tuple:
        """The shard's top k per query, best first: (query, id, distance) as numpy arrays (they cross
        processes ~4x faster than an Arrow table) and the other selected columns as an Arrow table or None."""
        s = self.t.search(Q).limit(k)
        if plan.get("where"):
            s.where(plan["where"])
        if plan.get("window") is not None:
            s.window(*plan["window"])
        if plan.get("select") is not None:
            cols = list(plan["select"])
            s.select(cols if self.t.id_column in cols else [self.t.id_column] + cols)
        if plan.get("exact"):
            s.exact()
        if plan.get("ef"):
            s.ef(plan["ef"])
        out = s.to_arrow()
        n = out.num_rows
        query = np.asarray(out.column("query"), dtype=np.int64) if "query" in out.column_names else \
            np.zeros(n, dtype=np.int64)
        ids = np.asarray(out.column(self.t.id_column).to_numpy(zero_copy_only=False), dtype=np.int64)
        dist = np.asarray(out.column("distance").to_numpy(zero_copy_only=False))
        rest = [c for c in out.column_names if c not in ("query", self.t.id_column, "distance")]
        return query, ids, dist, (out.select(rest) if rest else None)

    def weighted_keys(self, n: int, weight: str, seed: int, where: Optional[str]) -> pa.Table:
        """The n largest Efraimidis-Spirakis keys u^(1/w) of this shard's rows, u drawn from (seed, id)."""
        ids, w = self._weights(weight, where)
        keep = w > 0
        ids, w = ids[keep], w[keep]
        key = np.log(_uniform(ids, seed)) / w            # log u^(1/w): same order, no underflow
        top = np.argsort(-key, kind="stable")[:n]
        return pa.table({"id": pa.array(ids[top]), "key": pa.array(key[top]), "weight": pa.array(w[top])})

    def weight_total(self, weight: str, where: Optional[str]) -> float:
        return float(self._weights(weight, where)[1].sum())

    def weighted_draws(self, n: int, weight: str, seed: int, where: Optional[str]) -> pa.Table:
        """n draws with replacement, probability proportional to the weight, within this shard."""
        ids, w = self._weights(weight, where)
        if n == 0 or w.sum() <= 0:
            return pa.table({"id": pa.array([], pa.int64()), "weight": pa.array([], pa.float64())})
        rng = np.random.default_rng([seed, 0x5EED])
        pick = rng.choice(len(ids), size=n, replace=True, p=w / w.sum())
        return pa.table({"id": pa.array(ids[pick]), "weight": pa.array(w[pick])})

    def _weights(self, weight: str, where: Optional[str]):
        cols = self.t.all_columns
        # an expression over the columns, validated as a filter is: as one operand of a predicate that parses
        # whole, its parenthesised text is one complete expression with no statement or subquery
        knnsql._sql.filter_sql(f"({weight}) IS NOT NULL", cols, what="weight")
        w_sql = f"({weight})"
        cond = f" AND ({knnsql._sql.filter_sql(where, cols)})" if where else ""
        rows = self.db.con.execute(
            f"SELECT {q(self.t.id_column)}, CAST({w_sql} AS DOUBLE) FROM {q(self.t.name)} "
            f"WHERE {q(self.t.id_column)} IS NOT NULL{cond} ORDER BY {q(self.t.id_column)}").fetchnumpy()
        ids, w = (np.asarray(v) for v in rows.values())
        w = np.nan_to_num(w.astype(np.float64), nan=0.0)
        if (w < 0).any():
            raise ValueError(f"weights must be >= 0; {weight!r} is negative on some rows")
        return ids.astype(np.int64), w

    def vectors(self, where: Optional[str] = None, ids: Optional[np.ndarray] = None):
        """(ids, float32 vectors) of the shard's rows (those matching ``where`` / in ``ids``), by id."""
        cond = [f"{q(self.t.vector_column)} IS NOT NULL"]
        if where:
            cond.append(f"({knnsql._sql.filter_sql(where, self.t.all_columns)})")
        if ids is not None:
            self.db.con.register("_knnsql_want", pa.table({"id": pa.array(np.asarray(ids, dtype=np.int64))}))
            cond.append(f"{q(self.t.id_column)} IN (SELECT id FROM _knnsql_want)")
        try:
            tbl = knnsql.query._arrow(self.db.con, f"SELECT {q(self.t.id_column)} AS id, {q(self.t.vector_column)} "
                                      f"AS v FROM {q(self.t.name)} WHERE {' AND '.join(cond)} ORDER BY id", {})
        finally:
            if ids is not None:
                self.db.con.unregister("_knnsql_want")
        got = np.asarray(tbl.column("id"), dtype=np.int64)
        flat = tbl.column("v").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return got, np.ascontiguousarray(flat.reshape(len(got), self.t.dim), dtype=np.float32)

    def kcenter(self, n: int, seed: int, where: Optional[str]) -> tuple:
        """Greedy farthest-point picks of this shard (the part's coreset) with their vectors and the
        part's covering radius."""
        ids, X = self.vectors(where)
        if len(ids) == 0:
            return ids, X, 0.0
        r = knnsql.sampling.kcenter(X, min(n, len(ids)), seed=seed, metric=_core_metric(self.t.metric))
        picks = np.asarray(r.index)
        return ids[picks], X[picks], float(r.cost)

    def kernel_thinning(self, m: int, bandwidth: float, seed: int, where: Optional[str]) -> tuple:
        """This shard's kernel-thinning coreset of m rows (Gaussian kernel of the given bandwidth)."""
        ids, X = self.vectors(where)
        if len(ids) == 0 or m <= 0:
            return ids[:0], X[:0]
        r = knnsql.sampling.kernel_thinning(X, min(m, len(ids)), bandwidth=bandwidth, seed=seed)
        picks = np.asarray(r.index)
        return ids[picks], X[picks]

    def kmeans_cost(self, centers: np.ndarray, where: Optional[str]) -> float:
        ids, X = self.vectors(where)
        if len(ids) == 0:
            return 0.0
        return float(knnsql.sampling.assign(X, centers)[1].astype(np.float64).sum())

    def kmeans_oversample(self, centers: np.ndarray, ell: float, phi: float, seed: int,
                          where: Optional[str]) -> tuple:
        """One k-means|| round: each row joins with probability min(1, ell * d^2 / phi)."""
        ids, X = self.vectors(where)
        if len(ids) == 0:
            return ids, X
        d2 = knnsql.sampling.assign(X, centers)[1].astype(np.float64)
        keep = _uniform(ids, seed) < np.minimum(1.0, ell * d2 / max(phi, 1e-300))
        return ids[keep], X[keep]

    def kmeans_counts(self, candidates: np.ndarray, where: Optional[str]) -> np.ndarray:
        """How many of this shard's rows have each candidate as their nearest (k-means|| weights)."""
        ids, X = self.vectors(where)
        if len(ids) == 0:
            return np.zeros(len(candidates), dtype=np.int64)
        return np.bincount(knnsql.sampling.assign(X, candidates)[0], minlength=len(candidates)).astype(np.int64)

    def neighbours(self, Q: np.ndarray, k: int, target: str, exact: bool) -> pa.Table:
        """(query, id, distance, target) of this shard's k nearest rows per query, for knn_predict."""
        plan = {"select": [self.t.id_column, target], "exact": exact}
        return self.search(Q, k, plan)

    def close(self) -> None:
        self.db.close()


def _uniform(ids: np.ndarray, seed: int) -> np.ndarray:
    """A uniform (0, 1) number per id, the same on every shard and every run for a seed (splitmix64)."""
    with np.errstate(over="ignore"):   # unsigned arithmetic wraps modulo 2^64, as splitmix64 intends
        x = ids.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(2 ** 53)


def _core_metric(metric: str) -> str:
    return {"l2": "l2", "cosine": "cosine", "ip": "ip"}[metric]
