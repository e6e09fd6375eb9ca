"""A sharded vector table: routing writes, fanning reads out, merging, and the distributed samplers.

Distributed selection and their guarantees:

- ``sample(n, "weighted", weight=...)`` without replacement: every shard returns its n largest
  Efraimidis-Spirakis keys u^(1/w) (u from a hash of (seed, id)); the n largest of all keys are exactly
  a weighted sample without replacement of the whole table (the keys are independent per row).
  With ``replace=True``: the shards' weight totals first, a multinomial split of n by them, then
  draws within each shard: exactly n i.i.d. draws with probability w / W.
- ``sample(n, "kcenter")``: each shard's greedy farthest-point picks (n of them) are a composable
  coreset; greedy k-center over their union is a 4-approximation of the optimal covering radius
  (Malkomes et al., "Fast Distributed k-Center Clustering with Outliers on Massive Data", NeurIPS 2015;
  the coreset idea: Indyk et al., PODS 2014), against 2 for the single-node greedy.
- ``sample(n, "kmeans++")``: k-means|| seeding (Bahmani et al., VLDB 2012): 5 rounds in which every row
  joins the candidates with probability min(1, l d^2 / phi), l = 2n; candidates weighted by the rows
  nearest them, then weighted k-means++ over the candidates on the driver. An O(log n)-approximation
  in expectation after O(log psi) rounds, as k-means++ itself.
- ``sample(n, "kernel_thinning")``: Compress++'s merge step (Shetty, Dwivedi & Mackey, ICLR 2022)
  across shards: each shard thins its rows to a share of 2n proportional to its size, the driver thins
  the union to n with the same Gaussian kernel. By the triangle inequality the MMD to the whole table is
  at most the union's MMD (a size-weighted mix of the shards' thinning errors) plus the final thinning's.
- ``predict(Q, target, k)``: each shard's k nearest rows with their targets, merged to the global k
  nearest, then the single-node vote (majority, ties to the label that sorts first; or the mean).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa
import ray

from .._ffi import KnnError
from .._ingest import to_arrow
from . import _merge
from ._shard import ShardServer, _uniform

DEAD = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


class ClusterError(KnnError):
    """A shard could not answer (its replicas are down and retries ran out)."""


class ShardedTable:
    def __init__(self, cluster, spec: dict):
        self.cluster = cluster
        self.spec = spec
        self.name = spec["name"]
        self.id_column, self.vector_column = spec["id"], spec["vector"]
        self.dim, self.metric = spec["dim"], spec["metric"]
        self.columns = spec["columns"]
        self.shards, self.replicas = spec["shards"], spec["replicas"]
        self._next = 0   # round-robin replica choice for reads
        Remote = ray.remote(ShardServer)
        base = cluster.root / self.name
        # named by file, so a second handle on the table (another Cluster object, another driver in the
        # namespace) reaches the live actors instead of starting rivals for the same database files
        tag = hashlib.sha1(str(base.resolve()).encode()).hexdigest()[:12]
        self._actors = [[Remote.options(name=f"knnsql-{tag}-{s}-{r}", get_if_exists=True, max_restarts=-1,
                                        max_task_retries=0, num_cpus=0).remote(
            str(base / f"shard-{s}-replica-{r}.duckdb"), spec) for r in range(self.replicas)] for s in range(self.shards)]

    def __repr__(self) -> str:
        return (f"<knnsql.cluster.ShardedTable {self.name!r}: {self.shards} shards x {self.replicas} replicas, "
                f"{self.vector_column} FLOAT[{self.dim}], {self.metric}>")

    def _save_spec(self) -> None:
        (self.cluster.root / self.name / "table.json").write_text(json.dumps(self.spec, indent=1))

    def _stop(self) -> None:
        for replicas in self._actors:
            for a in replicas:
                try:
                    ray.get(a.close.remote(), timeout=30)
                except Exception:
                    pass
                ray.kill(a, no_restart=True)
        self._actors = []

    # -- calling shards -------------------------------------------------------------------------------
    def _read(self, shard: int, method: str, *args, retries: Optional[int] = None):
        """Starts a read on one replica of ``shard``; returns a callable that waits for the answer,
        moving to the next replica (or waiting for a restart) when the actor is dead."""
        retries = self.cluster.retries if retries is None else retries
        start = self._next % self.replicas
        self._next += 1
        order = [(start + i) % self.replicas for i in range(self.replicas)]
        ref = getattr(self._actors[shard][order[0]], method).remote(*args)

        def wait():
            nonlocal ref
            tries, deadline = 0, time.monotonic() + self.cluster.retry_timeout
            while True:
                try:
                    return ray.get(ref)
                except DEAD as exc:
                    if retries <= 0 or time.monotonic() > deadline:
                        raise ClusterError(f"shard {shard} of {self.name!r} did not answer {method} ({type(exc).__name__}: "
                                           f"its replicas are down); retries={retries}, retry_timeout="
                                           f"{self.cluster.retry_timeout} s: pass retries >= 1 or a longer retry_timeout "
                                           "to cluster.connect, or call again once Ray has restarted the shard") from exc
                    tries += 1   # the next replica at once; once all were tried, wait for Ray's restart
                    if tries >= self.replicas:
                        time.sleep(min(0.1 * tries, 1.0))
                    ref = getattr(self._actors[shard][order[tries % self.replicas]], method).remote(*args)
        wait.ref = ref
        return wait

    def _write(self, shard: int, method: str, *args, retries: Optional[int] = None, retry_kw: Optional[dict] = None):
        """A write on every replica of ``shard``; the callable waits until all have it (a replica that
        died is retried, with ``retry_kw`` added, once Ray restarted it)."""
        retries = self.cluster.retries if retries is None else retries
        refs = [getattr(a, method).remote(*args) for a in self._actors[shard]]

        def wait():
            out = []
            for r, ref in enumerate(refs):
                tries, deadline = 0, time.monotonic() + self.cluster.retry_timeout
                while True:
                    try:
                        out.append(ray.get(ref))
                        break
                    except DEAD as exc:
                        if retries <= 0 or time.monotonic() > deadline:
                            raise ClusterError(f"replica {r} of shard {shard} of {self.name!r} did not take {method} "
                                               f"({type(exc).__name__}); retries={retries}: the rows may be on the "
                                               "other replicas only; call again (the write is safe to repeat)") from exc
                        tries += 1
                        time.sleep(min(0.1 * tries, 1.0))
                        ref = getattr(self._actors[shard][r], method).remote(*args, **(retry_kw or {}))
            return out[0]
        return wait

    def _all_reads(self, method: str, *args, shards: Optional[Sequence[int]] = None, retries=None) -> list:
        waits = [self._read(s, method, *args, retries=retries) for s in (range(self.shards) if shards is None else shards)]
        try:   # the common case in one wait for every shard (one round trip less per extra shard)
            return ray.get([w.ref for w in waits])
        except DEAD:
            return [w() for w in waits]

    # -- writes ---------------------------------------------------------------------------------------
    def _route(self, batch: pa.Table) -> np.ndarray:
        if self.spec["shard_by"] == self.id_column:
            ids = np.asarray(batch.column(self.id_column), dtype=np.int64)
            return (_uniform(ids, 0x5A4D) * self.shards).astype(np.int64)
        label = batch.column(self.spec["shard_by"]).to_numpy(zero_copy_only=False)
        if np.any(label == None) or (label.dtype.kind == "f" and np.isnan(label).any()):  # noqa: E711
            raise ValueError(f"range sharding needs a {self.spec['shard_by']!r} value on every row")
        return np.searchsorted(np.asarray(self.spec["boundaries"]), label, side="right").astype(np.int64)

    def add(self, data: Any, *, batch_rows: int = 100_000) -> int:
        """Appends rows: a pandas DataFrame, Arrow table, dict of arrays, list of dicts, Parquet path(s)
        (str / Path / list of them) or a ``ray.data.Dataset``. Each batch is checked whole (dimension,
        NaN, ids) before any shard writes it; returns the rows written once every replica has them."""
        total = 0
        for batch in self._batches(data, batch_rows):
            total += self._add_batch(batch)
        return total

    def _batches(self, data: Any, batch_rows: int):
        from pathlib import Path

        if isinstance(data, (str, Path)) or (isinstance(data, (list, tuple)) and data and
                                             all(isinstance(p, (str, Path)) for p in data)):
            data = ray.data.read_parquet([str(p) for p in ([data] if isinstance(data, (str, Path)) else data)])
        if isinstance(data, ray.data.Dataset):
            for b in data.iter_batches(batch_size=batch_rows, batch_format="pyarrow"):
                yield b
            return
        yield data

    def _add_batch(self, data: Any) -> int:
        batch, ids = to_arrow(data, id_column=self.id_column, vector_column=self.vector_column, dim=self.dim,
                              columns=self.columns, metric=self.metric)
        shard_of = self._route(batch)
        if self.spec["shard_by"] != self.id_column:   # an id could already live in another range shard
            clash = [i for found in self._all_reads("existing", np.asarray(ids, dtype=np.int64)) for i in found]
            if clash:
                from .._ingest import DataError
                raise DataError(f"ids {clash[:5]} already exist in {self.name!r}")
        waits = []
        for s in range(self.shards):
            part = batch.filter(pa.array(shard_of == s))
            if part.num_rows:
                waits.append(self._write(s, "add", part, retry_kw={"retry": True}))
        return sum(w() for w in waits)

    def delete(self, ids: Optional[Sequence[int]] = None, *, where: Optional[str] = None) -> int:
        """Deletes rows by id or by a filter, on every replica; returns how many."""
        if (ids is None) == (where is None):
            raise ValueError("delete() takes ids or where=, exactly one of them")
        arr = None if ids is None else np.asarray(list(ids), dtype=np.int64)
        waits = [self._write(s, "delete", arr, where) for s in range(self.shards)]
        return sum(w() for w in waits)

    def create_index(self, label: Optional[str] = None, **options: Any) -> list:
        """Builds every shard's index (``VectorTable.create_index`` options); returns each shard's report."""
        waits = [self._write(s, "create_index", label, options) for s in range(self.shards)]
        out = [w() for w in waits]
        self.spec["index"] = {"label": label, **options}
        self._save_spec()
        return out

    # -- reads ----------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(self._all_reads("count", None))

    def count(self, where: Optional[str] = None) -> int:
        return sum(self._all_reads("count", where))

    def stats(self) -> list:
        """Per shard: rows, index bytes, file bytes, worker pid (of the replica that answered)."""
        return self._all_reads("stats")

    def search(self, query: Any) -> "ShardedSearch":
        """The single-node fluent search, fanned out: ``.where .window .select .limit .exact .ef`` then
        ``to_arrow / to_pandas / to_list / to_numpy``."""
        return ShardedSearch(self, query)

    def knn_join(self, queries: Any, k: int = 10, *, id: str = "id", vector: Optional[str] = None,
                 where: Optional[str] = None, exact: bool = False, batch_rows: int = 10_000) -> pa.Table:
        """The k nearest rows of every query row: ``queries`` is a DataFrame / Arrow table / dict with an id
        and a vector column, or a ``ray.data.Dataset``; returns (query_id, id, distance)."""
        vector = vector or self.vector_column
        out = []
        for b in self._batches(queries, batch_rows):
            if isinstance(b, pa.Table):
                tbl = b.select([id, vector])
            else:   # only the id and vector matter here: other columns of the query table stay behind
                picked = {id: b[id], vector: b[vector]} if isinstance(b, dict) or hasattr(b, "columns") else b
                tbl = to_arrow(picked, id_column=id, vector_column=vector, dim=self.dim, columns={},
                               metric=self.metric)[0]
            qid = np.asarray(tbl.column(id), dtype=np.int64)
            Q = tbl.column(vector).combine_chunks().flatten().to_numpy(zero_copy_only=False)
            Q = np.asarray(Q, dtype=np.float32).reshape(len(qid), self.dim)
            s = self.search(Q).limit(k).select([self.id_column]).exact(exact)
            if where:
                s.where(where)
            r = s._run()
            out.append(pa.table({"query_id": pa.array(qid[np.asarray(r.column("query"))]),
                                 "id": r.column(self.id_column), "distance": r.column("distance")}))
        return pa.concat_tables(out) if out else pa.table({"query_id": [], "id": [], "distance": []})

    # -- selection ------------------------------------------------------------------------------------
    def sample(self, n: int, method: str = "kcenter", *, seed: int = 0, weight: Optional[str] = None,
               replace: bool = False, where: Optional[str] = None, rounds: int = 5,
               bandwidth: Optional[float] = None) -> pa.Table:
        """Distributed selection (module docstring for each method's guarantee): ``"weighted"`` (with
        ``weight=`` an expression over the columns), ``"kcenter"``, ``"kmeans++"``, ``"kernel_thinning"``
        (``bandwidth=``, default the median heuristic on a 1,000-row uniform sample). Returns
        (id, weight, pick_order)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        if method == "weighted":
            if weight is None:
                raise ValueError("method='weighted' needs weight= (a column or expression)")
            return self._weighted(int(n), weight, seed, replace, where)
        if method == "kcenter":
            return self._kcenter(int(n), seed, where)
        if method == "kmeans++":
            return self._kmeans_par(int(n), seed, where, rounds)
        if method == "kernel_thinning":
            return self._kernel_thinning(int(n), seed, where, bandwidth)
        raise ValueError(f"unknown distributed method {method!r}; use 'weighted', 'kcenter', 'kmeans++' or "
                         "'kernel_thinning'")

    def _weighted(self, n, weight, seed, replace, where) -> pa.Table:
        if not replace:
            parts = self._all_reads("weighted_keys", n, weight, seed, where)
            keys = pa.concat_tables(parts)
            order = np.lexsort((np.asarray(keys.column("id")), -np.asarray(keys.column("key"))))[:n]
            pick = keys.take(pa.array(order))
            return pa.table({"id": pick.column("id"), "weight": pick.column("weight"),
                             "pick_order": pa.array(np.arange(len(order), dtype=np.int64))})
        totals = np.asarray(self._all_reads("weight_total", weight, where), dtype=np.float64)
        if totals.sum() <= 0:
            raise ValueError(f"every weight {weight!r} is 0: nothing to draw")
        counts = np.random.default_rng([seed, 0xC0DE]).multinomial(n, totals / totals.sum())
        waits = [self._read(s, "weighted_draws", int(c), weight, seed * 7919 + s, where)
                 for s, c in enumerate(counts) if c]
        draws = pa.concat_tables([w() for w in waits])
        perm = np.random.default_rng([seed, 0xD4A5]).permutation(draws.num_rows)
        draws = draws.take(pa.array(perm))
        return pa.table({"id": draws.column("id"), "weight": draws.column("weight"),
                         "pick_order": pa.array(np.arange(draws.num_rows, dtype=np.int64))})

    def _kcenter(self, n, seed, where) -> pa.Table:
        import knnsql

        parts = self._all_reads("kcenter", n, seed, where)
        ids = np.concatenate([p[0] for p in parts])
        if len(ids) == 0:
            raise ValueError("no rows to pick from")
        X = np.vstack([p[1] for p in parts])
        r = knnsql.sampling.kcenter(X, min(n, len(ids)), seed=seed, metric=self.metric)
        picks = np.asarray(r.index)
        return pa.table({"id": pa.array(ids[picks]), "weight": pa.array(np.ones(len(picks))),
                         "pick_order": pa.array(np.arange(len(picks), dtype=np.int64))})

    def _kmeans_par(self, k, seed, where, rounds) -> pa.Table:
        """k-means|| (Bahmani et al. 2012) over the shards, then weighted k-means++ on the candidates."""
        import knnsql

        first = self.sample(1, "weighted", weight="1", seed=seed, where=where)
        fid = np.asarray(first.column("id"))
        parts = self._all_reads("vectors", where, fid)
        cand_ids = np.concatenate([p[0] for p in parts])
        C = np.vstack([p[1] for p in parts])
        ell = 2.0 * k
        for r in range(rounds):
            phi = float(sum(self._all_reads("kmeans_cost", C, where)))
            if phi <= 0:
                break
            got = self._all_reads("kmeans_oversample", C, ell, phi, seed * 1009 + r + 1, where)
            new_ids = np.concatenate([g[0] for g in got])
            fresh = ~np.isin(new_ids, cand_ids)
            if fresh.any():
                cand_ids = np.concatenate([cand_ids, new_ids[fresh]])
                C = np.vstack([C] + [g[1] for g in got])[np.r_[np.ones(len(C), bool), fresh]]
        weights = np.sum(self._all_reads("kmeans_counts", C, where), axis=0).astype(np.float64)
        if len(cand_ids) <= k:
            picks = np.arange(len(cand_ids))
        else:   # weighted k-means++ (D^2 x weight) over the candidates, on the driver
            rng = np.random.default_rng([seed, 0xBEEF])
            picks = [int(rng.choice(len(C), p=weights / weights.sum()))]
            d2 = ((C - C[picks[0]]) ** 2).sum(1).astype(np.float64)
            for _ in range(1, k):
                p = weights * d2
                if p.sum() <= 0:
                    break
                nxt = int(rng.choice(len(C), p=p / p.sum()))
                picks.append(nxt)
                d2 = np.minimum(d2, ((C - C[nxt]) ** 2).sum(1))
            picks = np.asarray(picks)
        return pa.table({"id": pa.array(cand_ids[picks]), "weight": pa.array(weights[picks]),
                         "pick_order": pa.array(np.arange(len(picks), dtype=np.int64))})

    def _kernel_thinning(self, n, seed, where, bandwidth) -> pa.Table:
        """Compress++'s merge, across shards: each shard thins its rows to a share of 2n proportional to its
        size (a coreset of it), the driver thins their union to n with the same kernel."""
        import knnsql

        counts = np.asarray(self._all_reads("count", where), dtype=np.float64)
        if counts.sum() == 0:
            raise ValueError("no rows to pick from")
        if bandwidth is None:   # one kernel for every shard: the median heuristic on a uniform sample
            probe = np.asarray(self.sample(min(1000, int(counts.sum())), "weighted", weight="1", seed=seed,
                                           where=where).column("id"))
            Xs = np.vstack([p[1] for p in self._all_reads("vectors", where, probe)])
            i, j = np.triu_indices(len(Xs), 1)
            bandwidth = float(np.sqrt(np.median(((Xs[i] - Xs[j]) ** 2).sum(1)) / 2)) if len(i) else 1.0
        share = np.maximum(np.round(2 * n * counts / counts.sum()).astype(int), np.minimum(counts, 1).astype(int))
        waits = [self._read(s, "kernel_thinning", int(m), bandwidth, seed + s, where)
                 for s, m in enumerate(share) if m]
        parts = [w() for w in waits]
        ids = np.concatenate([p[0] for p in parts])
        X = np.vstack([p[1] for p in parts])
        r = knnsql.sampling.kernel_thinning(X, min(n, len(ids)), bandwidth=bandwidth, seed=seed)
        picks = np.asarray(r.index)
        return pa.table({"id": pa.array(ids[picks]), "weight": pa.array(np.full(len(picks), counts.sum() / len(picks))),
                         "pick_order": pa.array(np.arange(len(picks), dtype=np.int64))})

    def predict(self, Q: Any, target: str, k: int = 5, *, task: str = "classification",
                weighting: str = "uniform", exact: bool = True) -> list:
        """kNN predictions of ``target`` for the query rows, from the sharded training rows (exact
        neighbours by default, so the answer equals the single node's)."""
        if task not in ("classification", "regression") or weighting not in ("uniform", "distance"):
            raise ValueError("task is 'classification' or 'regression'; weighting 'uniform' or 'distance'")
        Q = np.asarray(Q, dtype=np.float32).reshape(-1, self.dim)
        ref = ray.put(Q) if Q.nbytes > 256 * 1024 else Q
        parts = self._all_reads("neighbours", ref, k, target, exact)
        return _merge.vote(parts, len(Q), k, self.id_column, target, task, weighting, self.metric == "l2")


class ShardedSearch:
    """``table.search(q)`` on a sharded table: the same builders as ``knnsql.Search``."""

    def __init__(self, table: ShardedTable, query: Any):
        Q = np.asarray(query, dtype=np.float32)
        if Q.ndim not in (1, 2) or Q.shape[-1] != table.dim:
            raise ValueError(f"the query must be a vector of {table.dim} numbers or an (nq, {table.dim}) matrix, "
                             f"got shape {Q.shape}")
        if not np.isfinite(Q).all():
            raise ValueError("the query contains NaN or Inf")
        self.table, self.single = table, Q.ndim == 1
        self.Q = np.ascontiguousarray(Q.reshape(-1, table.dim))
        self._k, self._plan = 10, {}

    def limit(self, k: int) -> "ShardedSearch":
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"limit(k) takes an integer k >= 1, got {k!r}")
        self._k = int(k)
        return self

    def where(self, condition: str) -> "ShardedSearch":
        from .._sql import filter_sql
        filter_sql(condition, [self.table.id_column, self.table.vector_column, *self.table.columns])
        self._plan["where"] = condition
        return self

    def window(self, lo: Any = None, hi: Any = None) -> "ShardedSearch":
        self._plan["window"] = (lo, hi)
        return self

    def select(self, columns: Sequence[str]) -> "ShardedSearch":
        self._plan["select"] = [columns] if isinstance(columns, str) else list(columns)
        return self

    def exact(self, on: bool = True) -> "ShardedSearch":
        self._plan["exact"] = bool(on)
        return self

    def ef(self, n: int) -> "ShardedSearch":
        self._plan["ef"] = int(n)
        return self

    def _shards(self) -> Optional[list]:
        """Range shards whose label range meets the window (all shards otherwise)."""
        t = self.table
        label = (t.spec.get("index") or {}).get("label")
        win = self._plan.get("window")
        if win is None or t.spec["shard_by"] == t.id_column or label != t.spec["shard_by"]:
            return None
        b = t.spec["boundaries"]
        lo, hi = win
        first = 0 if lo is None else int(np.searchsorted(b, lo, side="right"))
        last = t.shards - 1 if hi is None else int(np.searchsorted(b, hi, side="right"))
        return list(range(first, last + 1))

    def _run(self) -> pa.Table:
        t = self.table
        # one query goes as a vector (the shards then run the single-query plan a single table would, so
        # distances agree to the bit), inline in the call; a large batch as one object-store payload that
        # every shard reads (ray.put costs ~1 ms, more than a small argument's copy)
        ref = self.Q[0] if self.single else (ray.put(self.Q) if self.Q.nbytes > 256 * 1024 else self.Q)
        parts = t._all_reads("search", ref, self._k, self._plan, shards=self._shards())
        return _merge.top_k(parts, self._k, t.id_column)

    def to_arrow(self) -> pa.Table:
        out = self._run()
        return out.drop(["query"]) if self.single else out

    def to_pandas(self):
        return self.to_arrow().to_pandas()

    def to_list(self) -> list:
        return self.to_arrow().to_pylist()

    def to_numpy(self):
        """``(ids, distances)``: shape (k,) for one query, (nq, k) padded with -1 / inf for a matrix."""
        out = self._run()
        ids = np.asarray(out.column(self.table.id_column), dtype=np.int64)
        dist = np.asarray(out.column("distance").to_numpy(zero_copy_only=False), dtype=np.float32)
        if self.single:
            return ids, dist
        q = np.asarray(out.column("query"), dtype=np.int64)
        oi = np.full((len(self.Q), self._k), -1, dtype=np.int64)
        od = np.full((len(self.Q), self._k), np.inf, dtype=np.float32)
        pos = np.arange(len(q)) - np.searchsorted(q, q)
        oi[q, pos], od[q, pos] = ids, dist
        return oi, od
