"""Hybrid search: keyword (BM25) and vector results fused into one ranking.

``table.search(vector=v, text="...")`` runs two searches over the same filtered rows, each asked for
``candidates`` rows (default max(50, 4k)): the vector search (``query.Search``: index or exact, with
the same ``where`` / ``window`` pushed down) and the BM25 search of the table's text index
(``text_index.py``), then fuses them:

- ``rrf`` (default; Cormack, Clarke & Büttcher, "Reciprocal Rank Fusion outperforms Condorcet and
  individual Rank Learning Methods", SIGIR 2009): score = sum over the lists holding the row of
  weight / (k + rank), ranks from 1, k = 60. Needs no score calibration.
- ``weighted``: alpha * vector similarity + (1 - alpha) * BM25, each min-max normalised over its own
  candidate list (the vector side as 1 - normalised distance); a row missing from a list gets 0 there,
  as its last candidate does.
  LanceDB's linear-combination reranker has this shape.

Only the text (``vector=None``) gives a keyword search ranked by BM25; only a vector is
``query.Search``. Rows come back best first with the selected columns, ``score`` (the fused score),
``distance`` (NULL when the vector search did not return the row) and ``bm25`` (NULL when the keyword
search did not), ties broken by id.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pyarrow as pa

from . import text_index
from ._sql import filter_sql, quote_ident as q
from .query import Search, _arrow

FUSIONS = ("rrf", "weighted")


class HybridSearch:
    """A keyword, or keyword + vector, search over one ``VectorTable``; built by
    ``table.search(text=..., vector=...)``. Methods chain; ``to_arrow / to_pandas / to_polars /
    to_list`` run it."""

    def __init__(self, table: Any, text: Any, vector: Any = None):
        texts = [text] if isinstance(text, str) else list(text) if isinstance(text, (list, tuple)) else None
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("text= takes a string (or a list of strings, one per query vector)")
        self.table = table
        self.single = isinstance(text, str)
        self.texts = texts
        self.vectors = None
        if vector is not None:
            V = np.asarray(vector, dtype=np.float32)
            if V.ndim != (1 if self.single else 2) or (V.ndim == 2 and len(V) != len(texts)):
                raise ValueError(f"text= and vector= must pair up: one string with one vector, or a list of "
                                 f"{len(texts)} strings with a ({len(texts)}, {table.dim}) matrix; got vector "
                                 f"shape {V.shape}")
            Search(table, V)  # validates dimension, NaN/Inf, zero cosine vectors now
            self.vectors = V.reshape(-1, table.dim)
        self._k = 10
        self._candidates: Optional[int] = None
        self._where: Optional[str] = None
        self._window: Optional[tuple] = None
        self._select: Optional[list] = None
        self._exact = False
        self._ef: Optional[int] = None
        self._fusion = ("rrf", {"k": 60.0, "weights": (1.0, 1.0)})
        self._last_sql: Optional[str] = None

    # -- builders ----------------------------------------------------------------------------------
    def limit(self, k: int) -> "HybridSearch":
        """Rows per query (default 10)."""
        self._probe().limit(k)
        self._k = int(k)
        return self

    def candidates(self, n: int) -> "HybridSearch":
        """Rows each side (vector, keyword) contributes before fusion (default max(50, 4 * limit))."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"candidates(n) takes an integer n >= 1, got {n!r}")
        self._candidates = int(n)
        return self

    def where(self, condition: str) -> "HybridSearch":
        """A SQL filter over the table's columns, applied to both sides (see ``Search.where``)."""
        self._probe().where(condition)
        self._where = condition
        return self

    def window(self, lo: Any = None, hi: Any = None) -> "HybridSearch":
        """Rows whose index label lies in ``[lo, hi]``, on both sides (see ``Search.window``)."""
        s = self._probe().window(lo, hi)
        self._window = s._window
        return self

    def select(self, columns: Sequence[str]) -> "HybridSearch":
        """Columns to return (default: every column but the vector), plus score, distance, bm25."""
        s = self._probe().select(columns)
        clash = [c for c in s._select if c.lower() in ("score", "bm25")]
        if clash:
            raise ValueError(f"column {clash[0]!r} has the name of a hybrid search output; leave it out of select()")
        self._select = s._select
        return self

    def exact(self, on: bool = True) -> "HybridSearch":
        """Exact vector search (ignores the vector index)."""
        self._exact = bool(on)
        return self

    def ef(self, n: int) -> "HybridSearch":
        """Search beam of the graph index on the vector side."""
        self._probe().ef(n)
        self._ef = int(n)
        return self

    def fusion(self, method: str = "rrf", *, k: float = 60.0, alpha: float = 0.5,
               weights: Sequence[float] = (1.0, 1.0)) -> "HybridSearch":
        """``"rrf"`` (``k``, and ``weights`` for the (vector, keyword) lists) or ``"weighted"``
        (``alpha``: the vector side's share, 0..1)."""
        if method not in FUSIONS:
            raise ValueError(f"unknown fusion {method!r}; use one of {FUSIONS}")
        if method == "rrf":
            w = tuple(float(x) for x in weights)
            if not (k >= 0) or len(w) != 2 or min(w) < 0:
                raise ValueError("rrf takes k >= 0 and two weights >= 0 (vector, keyword)")
            self._fusion = ("rrf", {"k": float(k), "weights": w})
        else:
            if not (0.0 <= alpha <= 1.0):
                raise ValueError(f"weighted fusion takes alpha in [0, 1] (the vector side's share), got {alpha!r}")
            self._fusion = ("weighted", {"alpha": float(alpha)})
        return self

    # -- running -----------------------------------------------------------------------------------
    def _probe(self) -> Search:
        """A throwaway vector search used to validate arguments exactly as ``Search`` does."""
        return Search(self.table, np.ones(self.table.dim, dtype=np.float32))

    def _depth(self) -> int:
        return self._candidates or max(50, 4 * self._k)

    def _vector_hits(self, v: np.ndarray, depth: int):
        t = self.table
        s = Search(t, v).limit(depth).select([t.id_column]).exact(self._exact)
        if self._where is not None:
            s.where(self._where)
        if self._window is not None:
            s.window(*self._window)
        if self._ef is not None:
            s.ef(max(self._ef, depth))
        out = s.to_arrow()
        return (np.asarray(out.column(t.id_column).to_numpy(zero_copy_only=False), dtype=np.int64),
                np.asarray(out.column("distance").to_numpy(zero_copy_only=False), dtype=np.float64))

    def _text_hits(self, info, text: str, depth: int):
        t = self.table
        conds = []
        params: dict = {"knn_text": text}
        if self._where is not None:
            conds.append("(" + filter_sql(self._where, t.all_columns) + ")")
        if self._window is not None:
            s = self._probe().window(*self._window)
            s._info = t.index
            conds.append(s._window_only())
            params.update(s._params(True))
        where = (" AND " + " AND ".join(conds)) if conds else ""
        sql = (f"SELECT m.id, m.score FROM ({info.matches_sql('knn_text')}) m JOIN {q(t.name)} t "
               f"ON t.{q(t.id_column)} = m.id WHERE true{where} ORDER BY m.score DESC, m.id LIMIT {depth}")
        self._last_sql = sql
        rows = _arrow(t.db.con, sql, {k: v for k, v in params.items() if f"${k}" in sql})
        return (np.asarray(rows.column("id").to_numpy(zero_copy_only=False), dtype=np.int64),
                np.asarray(rows.column("score").to_numpy(zero_copy_only=False), dtype=np.float64))

    def _fuse(self, vec, txt):
        """(ids, fused scores, distances, bm25) best first, cut to k."""
        vid, vdist = vec
        tid, tscore = txt
        ids = np.union1d(vid, tid)
        dist = np.full(len(ids), np.nan)
        bm25 = np.full(len(ids), np.nan)
        dist[np.searchsorted(ids, vid)] = vdist
        bm25[np.searchsorted(ids, tid)] = tscore
        method, opt = self._fusion
        score = np.zeros(len(ids))
        if method == "rrf":
            wv, wt = opt["weights"]
            score[np.searchsorted(ids, vid)] += wv / (opt["k"] + np.arange(1, len(vid) + 1))
            score[np.searchsorted(ids, tid)] += wt / (opt["k"] + np.arange(1, len(tid) + 1))
        else:
            a = opt["alpha"]
            if len(vid):
                span = vdist.max() - vdist.min()
                score[np.searchsorted(ids, vid)] += a * (1.0 - ((vdist - vdist.min()) / span if span > 0 else 0.0))
            if len(tid):
                span = tscore.max() - tscore.min()
                score[np.searchsorted(ids, tid)] += (1 - a) * ((tscore - tscore.min()) / span if span > 0 else 1.0)
        order = np.lexsort((ids, -score))[: self._k]
        return ids[order], score[order], dist[order], bm25[order]

    def _text_index(self):
        t = self.table
        db = t.db
        info = text_index.get(db.con, t.name)
        if info is None:
            raise ValueError(f"text search needs a keyword index on {t.name!r}: "
                             f"table.create_text_index('<text column>')")
        text_index.ensure_loaded(db.con, info)
        gen = (db._write_gen, db._text_gen)
        if getattr(db, "_text_checked", {}).get(t.name.lower()) != gen or db.read_consistency_interval is not None:
            if not info.fresh(db.con):   # rows written since the build: rebuild before answering
                info = text_index.create(db.con, t.name, info.id_column, info.column, engine=info.engine,
                                         stemmer=info.stemmer, stopwords=info.stopwords)
            db._text_checked[t.name.lower()] = gen
        return info

    def _run(self) -> pa.Table:
        t = self.table
        info = self._text_index()
        depth = self._depth()
        picked = []
        for i, text in enumerate(self.texts):
            txt = self._text_hits(info, text, depth)
            vec = self._vector_hits(self.vectors[i], depth) if self.vectors is not None else \
                (np.zeros(0, np.int64), np.zeros(0))
            picked.append(self._fuse(vec, txt))
        return self._rows(picked)

    def _rows(self, picked) -> pa.Table:
        """The table rows of the fused ids, in fused order, with score, distance, bm25."""
        t = self.table
        cols = self._select if self._select is not None else \
            [c for c in t.all_columns if c != t.vector_column]
        all_ids = np.unique(np.concatenate([p[0] for p in picked])) if picked else np.zeros(0, np.int64)
        sel = [t.id_column] + [c for c in cols if c != t.id_column]
        in_list = ", ".join(str(int(i)) for i in all_ids) or "NULL"
        rows = _arrow(t.db.con, f"SELECT {', '.join(q(c) for c in sel)} FROM {q(t.name)} "
                                f"WHERE {q(t.id_column)} IN ({in_list})", {})
        rid = np.asarray(rows.column(t.id_column).to_numpy(zero_copy_only=False), dtype=np.int64)
        order = np.argsort(rid, kind="stable")
        take, query, score, dist, bm25 = [], [], [], [], []
        for qi, (ids, s, d, b) in enumerate(picked):
            pos = np.minimum(np.searchsorted(rid, ids, sorter=order), max(len(rid) - 1, 0))
            found = (rid[order[pos]] == ids) if len(rid) else np.zeros(len(ids), dtype=bool)
            take.append(order[pos[found]])
            query.append(np.full(int(found.sum()), qi, dtype=np.int64))
            score.append(s[found]), dist.append(d[found]), bm25.append(b[found])
        at = np.concatenate(take) if take else np.zeros(0, np.int64)
        chosen = rows.take(pa.array(at))
        out = {} if self.single else {"query": pa.array(np.concatenate(query))}
        for c in cols:
            out[c] = chosen.column(c)
        cat = (lambda xs: np.concatenate(xs) if xs else np.zeros(0))
        out["score"] = pa.array(cat(score))
        d, b = cat(dist), cat(bm25)
        out["distance"] = pa.array(d, mask=np.isnan(d))
        out["bm25"] = pa.array(b, mask=np.isnan(b))
        return pa.table(out)

    def to_arrow(self) -> pa.Table:
        """Results as a ``pyarrow.Table``: [query,] the selected columns, score, distance, bm25."""
        return self._run()

    def to_pandas(self):
        return self._run().to_pandas()

    def to_polars(self):
        import polars as pl

        return pl.from_arrow(self._run())

    def to_list(self) -> list:
        return self._run().to_pylist()

    def sql(self) -> str:
        """The keyword side's SQL of the last run (the vector side is ``Search.sql()``)."""
        if self._last_sql is None:
            self._run()
        return self._last_sql

    def __repr__(self) -> str:
        kind = "hybrid" if self.vectors is not None else "keyword"
        return (f"<knnsql.HybridSearch ({kind}) on {self.table.name!r}: {len(self.texts)} queries, k={self._k}, "
                f"fusion={self._fusion[0]}, where={self._where!r}>")
