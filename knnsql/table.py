"""Vector tables: a DuckDB table with an integer id key and a ``FLOAT[d]`` column, plus the index
that caches it. Writes through this API keep the index current; writes from plain SQL are found by
the freshness check (``refresh_index``, run on connect and before a search sees a changed row count).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Protocol, Sequence

import numpy as np

from . import _catalog, _progress, text_index
from ._catalog import Freshness, IndexInfo
from ._filter import attribute_kind
from ._ingest import DataError, batches, to_arrow
from ._sql import bound_literal, parse_filter, quote_ident as q, render
from .hybrid import HybridSearch
from .query import Search

METRICS = {"l2": "l2", "l2sq": "l2", "cosine": "cosine", "ip": "ip"}


def _metric(name: str) -> str:
    try:
        return METRICS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; use 'l2' (squared Euclidean), 'cosine' or 'ip'") from None


class TableOwner(Protocol):
    """What a vector table uses of its database (``db.Database`` is one; this module does not import
    it): the connection and the index bookkeeping its writes keep current."""
    con: Any
    _dirty: set

    def _index_for(self, table: str, vector_column: str) -> Optional[IndexInfo]: ...

    def _indexes_changed(self) -> None: ...

    def _note_rows(self, table: "VectorTable", info: Optional[IndexInfo]) -> None: ...

    def _auto_refresh(self, table: "VectorTable", info: Optional[IndexInfo] = None) -> None: ...


class VectorTable:
    """A table of vectors in a knnsql database. Get one from ``db.create_table`` or ``db.table``.

    Vectors are stored as given (no normalisation in the table); a ``cosine`` index normalises its
    own copy, and ``cosine`` rejects zero vectors on ``add``. Distances are the metric's: ``l2`` is
    squared Euclidean, ``cosine`` is ``1 - cos``, ``ip`` the negative inner product.
    """

    def __init__(self, db: TableOwner, name: str, id_column: str, vector_column: str, dim: int,
                 metric: str, columns: Mapping[str, str]):
        self.db = db
        self.name = name
        self.id_column = id_column
        self.vector_column = vector_column
        self.dim = dim
        self.metric = metric
        #: the other columns: name -> DuckDB type
        self.columns = dict(columns)

    def __repr__(self) -> str:
        return (f"<knnsql.VectorTable {self.name!r}: {len(self)} rows, {self.vector_column} FLOAT[{self.dim}], "
                f"metric {self.metric}, index {self.index.name if self.index else None}>")

    def __len__(self) -> int:
        return self.db.con.execute(f"SELECT count(*) FROM {q(self.name)}").fetchall()[0][0]

    @property
    def all_columns(self) -> list[str]:
        return [self.id_column, self.vector_column, *self.columns]

    @property
    def index(self) -> Optional[IndexInfo]:
        """The index caching this table's vectors, or None."""
        return self.db._index_for(self.name, self.vector_column)

    # -- writes ------------------------------------------------------------------------------------
    def _batch(self, data: Any):
        return to_arrow(data, id_column=self.id_column, vector_column=self.vector_column, dim=self.dim,
                        columns=self.columns, metric=self.metric)

    def _existing(self, batch_name: str) -> list[int]:
        return [r[0] for r in self.db.con.execute(
            f"SELECT b.{q(self.id_column)} FROM {batch_name} b SEMI JOIN {q(self.name)} t "
            f"ON t.{q(self.id_column)} = b.{q(self.id_column)} LIMIT 5").fetchall()]

    def add(self, data: Any) -> int:
        """Appends rows; returns how many. ``data``: a pandas DataFrame, an Arrow table, a dict of
        numpy arrays (the vector column as an (n, d) array) or a list of dicts. Columns must be the
        table's; the id and vector columns are required. Raises ``DataError`` (nothing written) on a
        wrong dimension, NaN/Inf, a zero vector under cosine, or an id that exists or repeats."""
        batch, ids = self._batch(data)
        con = self.db.con
        con.register("_knnsql_batch", batch)
        try:
            clash = self._existing("_knnsql_batch")
        finally:
            con.unregister("_knnsql_batch")
        if clash:
            raise DataError(f"ids {clash} already exist in {self.name!r}; use update() to change rows")
        names = ", ".join(q(c) for c in batch.column_names)
        # a large input goes in ~20 slices (zero-copy), each into the table and the index, with a
        # progress line on a terminal; checked whole first, so a bad row writes nothing
        for part in batches(batch, f"adding to {self.name}", con):
            con.register("_knnsql_batch", part)
            try:
                con.execute(f"INSERT INTO {q(self.name)} ({names}) SELECT {names} FROM _knnsql_batch").fetchall()
                part_ids = np.asarray(part.column(self.id_column))
                self._index_upsert("_knnsql_batch", (part_ids.min(), part_ids.max()) if len(part_ids) else None)
            finally:
                con.unregister("_knnsql_batch")
        self.db._note_rows(self, self.index)
        self.db._text_gen += 1
        return len(ids)

    def update(self, data: Any) -> int:
        """Replaces the given columns of existing rows, matched by id (every id must exist). The
        vector column is required, as in ``add``. Returns the rows changed."""
        batch, ids = self._batch(data)
        con = self.db.con
        con.register("_knnsql_batch", batch)
        try:
            missing = con.execute(f"SELECT b.{q(self.id_column)} FROM _knnsql_batch b ANTI JOIN {q(self.name)} t "
                                  f"ON t.{q(self.id_column)} = b.{q(self.id_column)} LIMIT 5").fetchall()
            if missing:
                raise DataError(f"ids {[m[0] for m in missing]} are not in {self.name!r}; add() them first")
            sets = ", ".join(f"{q(c)} = b.{q(c)}" for c in batch.column_names if c != self.id_column)
            con.execute(f"UPDATE {q(self.name)} AS t SET {sets} FROM _knnsql_batch b "
                        f"WHERE t.{q(self.id_column)} = b.{q(self.id_column)}").fetchall()
            self._index_upsert("_knnsql_batch")
        finally:
            con.unregister("_knnsql_batch")
        self.db._text_gen += 1
        return len(ids)

    def delete(self, ids: Optional[Iterable[int]] = None, *, where: Optional[str] = None) -> int:
        """Deletes rows by id, or those matching a ``where`` filter; returns how many."""
        if (ids is None) == (where is None):
            raise ValueError("delete() takes ids or where=, exactly one of them")
        con = self.db.con
        if ids is not None:
            arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
            if arr.size and arr.dtype.kind not in "iu":
                raise DataError(f"ids must be integers, got dtype {arr.dtype}")
            import pyarrow as pa
            con.register("_knnsql_del", pa.table({"id": pa.array(arr.astype(np.int64).reshape(-1))}))
            cond = f"{q(self.id_column)} IN (SELECT id FROM _knnsql_del)"
        else:
            cond = render(parse_filter(where, self.all_columns, what="delete"))
        try:
            doomed = f"SELECT {q(self.id_column)} AS id FROM {q(self.name)} WHERE {cond}"
            info = self.index
            if info is not None:
                con.execute(f"SELECT knn_index_delete(?, id) FROM ({doomed})", [info.name]).fetchall()
                con.execute(f"DELETE FROM _knnsql_index_live WHERE index_name = ? AND id IN ({doomed})",
                            [info.name]).fetchall()
            count = con.execute(f"DELETE FROM {q(self.name)} WHERE {cond}").fetchall()[0][0]
            if info is not None:
                self.db._dirty.add(info.name)
        finally:
            if ids is not None:
                con.unregister("_knnsql_del")
        self.db._note_rows(self, self.index)
        self.db._text_gen += 1
        return int(count)

    def _index_upsert(self, batch_name: str, id_range: Optional[tuple] = None) -> None:
        info = self.index
        if info is None:
            return
        con = self.db.con
        # the batch's id range lets DuckDB skip row groups (zone maps) instead of reading the whole table
        near = f" WHERE {q(self.id_column)} BETWEEN {int(id_range[0])} AND {int(id_range[1])}" if id_range else ""
        t = f"(SELECT * FROM {q(self.name)} SEMI JOIN {batch_name} b USING ({q(self.id_column)}){near})"
        con.execute(f"SELECT knn_index_insert(?, {_catalog._insert_args(info, self.id_column)}) FROM {t} t",
                    [info.name]).fetchall()
        con.execute(f"DELETE FROM _knnsql_index_live WHERE index_name = ? AND id IN "
                    f"(SELECT {q(self.id_column)} FROM {batch_name})", [info.name]).fetchall()
        con.execute(f"INSERT INTO _knnsql_index_live SELECT ?, t.id, t.h FROM ({_catalog._live_rows(info, self.id_column)}) t "
                    f"SEMI JOIN {batch_name} b ON t.id = b.{q(self.id_column)}", [info.name]).fetchall()
        self.db._dirty.add(info.name)

    # -- index -------------------------------------------------------------------------------------
    def create_index(self, label: Optional[str] = None, *, kind: str = "graph", replace: bool = False,
                     attributes: Optional[Sequence[str]] = None, name: Optional[str] = None,
                     target_recall: Optional[float] = None, **params: Any) -> Freshness:
        """Builds an index over the vector column (``kind='graph'``: HNSW; ``'flat'``: exact).

        ``label`` names a numeric, TIMESTAMP or DATE column for window searches. ``attributes`` names
        the columns a graph index keeps next to its vectors so that ``search().where(...)`` filters
        on them run inside the index (default: every column of a type it can hold: integers, FLOAT,
        DOUBLE, DECIMAL, BOOLEAN, DATE, TIMESTAMP, VARCHAR; ``[]`` for none); filters on other
        columns still work, through DuckDB. ``params`` are ``knn_index_create`` options: ``m``,
        ``ef_construction``, ``ef``, ``seed``; for ``kind='flat'``, ``quantization='sq8'`` keeps 8-bit codes
        in memory and the float rows in a file (``vectors_dir``, default DuckDB's temp_directory), with
        exact results. ``name``: the index's name in SQL (``knn_search(name,
        ...)``), by default ``<table>__<vector column>``; a name another index already uses is an error.
        The index is saved in the database file on ``db.checkpoint()`` and ``db.close()``.

        Recall: a graph over 1,000 rows or more is built without a sample of its rows (up to 500), which then
        serve as queries it has not seen: recall@10 against exact search is measured on them (a warning
        under 0.9 says how to raise it; ``report.recall``), and with ``target_recall=0.95`` the smallest
        default search width ``ef`` reaching it is chosen (``knn_index_tune``; shown in ``knn_indexes()``).
        The sample is added last."""
        if kind not in ("graph", "flat"):
            raise ValueError(f"unknown index kind {kind!r}; use 'graph' or 'flat'")
        if label is not None:
            match = [c for c in self.columns if c.lower() == str(label).lower()]
            if not match:
                raise ValueError(f"label column {label!r} is not in {self.name!r}; columns are {list(self.columns)}")
            label = match[0]
        unknown = set(params) - {"m", "ef_construction", "ef", "seed", "quantization", "vectors_dir"}
        if unknown:
            raise ValueError(f"unknown index options {sorted(unknown)}; use m, ef_construction, ef, seed, "
                             "quantization, vectors_dir")
        existing = self.index
        if existing is not None:
            if not replace:
                raise ValueError(f"{self.name!r} already has index {existing.name!r}; pass replace=True "
                                 "to rebuild it")
            _catalog.drop_index(self.db.con, existing)
            self.db._indexes_changed()
        attrs = self._attribute_columns(attributes, kind)
        index_name = self._index_name(name)
        info = IndexInfo(index_name, self.name, self.vector_column, label, kind,
                         dict(params, attributes=attrs) if attrs else dict(params))
        if target_recall is not None and kind != "graph":
            raise ValueError("target_recall applies to kind='graph'; a flat index is exact")
        if target_recall is not None and not (0 < float(target_recall) <= 1):
            raise ValueError(f"target_recall must be in (0, 1], e.g. 0.95; got {target_recall!r}")
        hold_out = self._hold_out(target_recall is not None) if kind == "graph" else None
        measured: dict = {}
        try:
            report = _catalog.create_index(
                self.db.con, info, self.id_column, self.dim, self.metric, hold_out=hold_out,
                measure=lambda: measured.update(recall=self._held_out_recall(info, hold_out, target_recall)))
        finally:
            if hold_out is not None:
                self.db.con.execute(f"DROP TABLE IF EXISTS {q(hold_out)}").fetchall()
        report.recall = measured.get("recall")
        self.db._indexes_changed()
        self.db._note_rows(self, info)
        self.db._dirty.add(info.name)
        return report

    HOLD_OUT = 500          # rows held out of a graph build, then used as unseen queries
    RECALL_WARN = 0.9       # recall@10 under this warns

    def _hold_out(self, always: bool) -> Optional[str]:
        """A temporary table of the ids held out of the build: up to HOLD_OUT rows (a tenth of the table at
        most), drawn reproducibly; None under 1,000 rows unless ``always``."""
        con = self.db.con
        rows = con.execute(f"SELECT count(*) FROM {q(self.name)} WHERE {q(self.vector_column)} IS NOT NULL "
                           f"AND {q(self.id_column)} IS NOT NULL").fetchall()[0][0]
        if rows < 1000 and not (always and rows >= 20):
            return None
        size = min(self.HOLD_OUT, max(10, rows // 10))
        name = "_knnsql_hold_out"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT {q(self.id_column)} AS id FROM {q(self.name)} "
                    f"WHERE {q(self.vector_column)} IS NOT NULL AND {q(self.id_column)} IS NOT NULL "
                    f"USING SAMPLE {size} ROWS (reservoir, 7)").fetchall()
        return name

    def _held_out_recall(self, info: IndexInfo, hold_out: str, target: Optional[float]) -> Optional[float]:
        """recall@10 over the held-out rows (exact top 10 of the built rows against the graph's, ties counted);
        with a target, first the smallest default ef reaching it (knn_index_tune). Warns under 0.9."""
        con = self.db.con
        rows = (f"FROM {q(self.name)} t SEMI JOIN {q(hold_out)} h ON t.{q(self.id_column)} = h.id")
        emb = f"t.{q(self.vector_column)}"
        if target is not None:
            con.execute(f"SELECT knn_index_tune(?, {emb}, ?) {rows}", [info.name, float(target)]).fetchall()
        recall = con.execute(f"SELECT avg(knn_recall(?, {emb}, 10)) {rows}", [info.name]).fetchall()[0][0]
        ef = con.execute("SELECT ef FROM knn_indexes() WHERE name = ?", [info.name]).fetchall()[0][0]
        if recall is not None and recall < self.RECALL_WARN:
            import warnings

            warnings.warn(f"index {info.name!r}: recall@10 is about {recall:.2f} at ef={ef} (measured on "
                          f"held-out rows); search with a larger ef (search(q).ef(256)), rebuild with "
                          f"create_index(replace=True, target_recall=0.95), or with m=32 for this data",
                          stacklevel=5)
        return None if recall is None else float(recall)

    def tune(self, target_recall: float, queries: Any) -> int:
        """Sets the graph index's default search width ``ef`` to the smallest reaching ``target_recall``
        (recall@10 against exact search) over ``queries``, an (n, d) array of vectors the index does not
        hold (its own rows are far easier queries and would tune ef too low). Returns the ef chosen."""
        info = self._require_index()
        if info.kind != "graph":
            raise ValueError("tune applies to graph indexes; a flat index is exact")
        Q = np.asarray(queries, dtype=np.float32)
        if Q.ndim != 2 or Q.shape[1] != self.dim or Q.shape[0] == 0:
            raise ValueError(f"queries must be an (n, {self.dim}) array with n >= 1, got shape {Q.shape}")
        from ._arrow import vectors_table

        con = self.db.con
        con.register("_knnsql_tune_q", vectors_table(Q))
        try:
            ef = con.execute("SELECT knn_index_tune(?, emb, ?) FROM _knnsql_tune_q",
                             [info.name, float(target_recall)]).fetchall()[0][0]
        finally:
            con.unregister("_knnsql_tune_q")
        self.db._dirty.add(info.name)
        return int(ef)

    def _index_name(self, name: Optional[str]) -> str:
        """The new index's name, checked: within the core's 128 bytes, and used by no other index
        (``a__b.emb`` and ``a.b__emb`` both default to ``a__b__emb``)."""
        chosen = f"{self.name}__{self.vector_column}" if name is None else name
        if not isinstance(chosen, str) or not chosen.strip():
            raise ValueError(f"index name must be a non-empty string, got {name!r}")
        if len(chosen.encode()) > 128:
            raise ValueError(f"index name {chosen[:40]!r}... is {len(chosen.encode())} bytes, over the limit of 128; "
                             f"choose a shorter one: create_index(..., name='{self.name[:20]}_idx')")
        con = self.db.con
        owner = [i for i in _catalog.list_indexes(con) if i.name.lower() == chosen.lower()]
        if owner:
            o = owner[0]
            raise ValueError(f"index name {chosen!r} is taken by the index on {o.table}.{o.vector_column}; choose "
                             f"another: create_index(..., name='{self.name}_{self.vector_column}_idx')")
        if con.execute("SELECT count(*) FROM knn_indexes() WHERE lower(name) = lower(?)", [chosen]).fetchone()[0]:
            raise ValueError(f"index name {chosen!r} is taken by an index created in SQL (knn_index_create); "
                             f"drop it (SELECT * FROM knn_index_drop('{chosen}')) or choose another: "
                             f"create_index(..., name='{self.name}_{self.vector_column}_idx')")
        return chosen

    def _attribute_columns(self, attributes: Optional[Sequence[str]], kind: str) -> list[str]:
        holdable = {c: t for c, t in self.columns.items()
                    if c != self.vector_column and attribute_kind(t) is not None}
        if attributes is None:
            return list(holdable) if kind == "graph" else []
        if isinstance(attributes, str):
            attributes = [attributes]
        if attributes and kind != "graph":
            raise ValueError("attribute columns need a graph index (kind='graph')")
        known = {c.lower(): c for c in self.columns}
        out = []
        for name in attributes:
            col = known.get(str(name).lower())
            if col is None:
                raise ValueError(f"attribute column {name!r} is not in {self.name!r}; columns are {list(self.columns)}")
            if col not in holdable:
                raise ValueError(f"attribute column {col!r} has type {self.columns[col]}, which an index cannot "
                                 "hold (integers, FLOAT, DOUBLE, DECIMAL, BOOLEAN, DATE, TIMESTAMP, VARCHAR); "
                                 "filters on it still run, through DuckDB")
            if col not in out:
                out.append(col)
        return out

    def drop_index(self) -> None:
        info = self.index
        if info is not None:
            _catalog.drop_index(self.db.con, info)
            self.db._indexes_changed()

    def refresh_index(self) -> Freshness:
        """Checks the index against the table (rows added, removed or changed by any client, plain
        SQL included) and repairs only what changed. Returns the counts."""
        info = self._require_index()
        live = {r[0] for r in self.db.con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = ?",
            [self.name]).fetchall()}
        gone = [c for c in info.attributes if c not in live]
        if gone:  # attribute columns dropped from the table: rebuild the index without them
            for c in gone:
                self.columns.pop(c, None)
            options = info.create_options()
            report = self.create_index(info.label_column, kind=info.kind, replace=True,
                                       attributes=[c for c in info.attributes if c in live], **options)
            report.reason = f"attribute columns {gone} were dropped from the table; rebuilt without them"
            return report
        report = _catalog.refresh(self.db.con, info, self.id_column)
        self.db._note_rows(self, info)
        if report.changed:
            self.db._dirty.add(info.name)
        return report

    def optimize_index(self) -> None:
        """Rebuilds the graph from its live rows (reclaims deleted rows' tombstones)."""
        info = self._require_index()
        self.db.con.execute("SELECT * FROM knn_index_optimize(?)", [info.name]).fetchall()
        self.db._dirty.add(info.name)

    def _require_index(self) -> IndexInfo:
        info = self.index
        if info is None:
            raise ValueError(f"{self.name!r} has no index; call create_index() first")
        return info

    # -- keyword index -----------------------------------------------------------------------------
    def create_text_index(self, column: str, *, engine: str = "auto", stemmer: str = "porter",
                          stopwords: str = "english", replace: bool = False) -> "text_index.TextIndex":
        """Builds a BM25 keyword index over a text column, for ``search(text=...)`` (keyword and
        hybrid search; ``knnsql.text_index``). ``engine='auto'`` uses DuckDB's fts extension when it
        loads (stemming), else the same BM25 in plain SQL without stemming; ``'fts'`` / ``'sql'`` insist.
        Rows written later are indexed before the next text search (the index is rebuilt)."""
        match = [c for c in self.columns if c.lower() == str(column).lower()]
        if not match:
            raise ValueError(f"text column {column!r} is not in {self.name!r}; columns are {list(self.columns)}")
        if not self.columns[match[0]].upper().startswith(("VARCHAR", "TEXT", "STRING")):
            raise ValueError(f"column {match[0]!r} is {self.columns[match[0]]}, not text (VARCHAR)")
        if text_index.get(self.db.con, self.name) is not None and not replace:
            raise ValueError(f"{self.name!r} already has a text index; pass replace=True to rebuild it")
        info = text_index.create(self.db.con, self.name, self.id_column, match[0], engine=engine,
                                 stemmer=stemmer, stopwords=stopwords)
        self.db._text_checked[self.name.lower()] = (self.db._write_gen, self.db._text_gen)
        return info

    @property
    def text_index(self) -> "Optional[text_index.TextIndex]":
        """The table's keyword index (engine, column, options), or None."""
        return text_index.get(self.db.con, self.name)

    def drop_text_index(self) -> None:
        text_index.drop(self.db.con, self.name)

    # -- reads -------------------------------------------------------------------------------------
    def search(self, query: Any = None, *, text: Any = None, vector: Any = None):
        """Starts a search: one vector (shape (d,)) or a matrix of queries (shape (nq, d); the result
        gets a ``query`` column, 0-based). Chain ``.where() .window() .limit() .select() .exact()
        .ef()`` then ``.to_pandas() / .to_arrow() / .to_list() / .to_numpy()``.

        With ``text=`` (a string, or a list of strings paired with a matrix): a keyword search ranked by
        BM25 over the table's text index (``create_text_index``), or, with ``vector=`` too, a hybrid
        search fusing both rankings (``.fusion("rrf" | "weighted")``; ``knnsql.hybrid``)."""
        if query is not None and vector is not None:
            raise ValueError("give the query vector once: search(v) or search(vector=v)")
        vector = query if vector is None else vector
        if text is not None:
            return HybridSearch(self, text, vector)
        if vector is None:
            raise ValueError("search() needs a query vector, text=, or both")
        return Search(self, vector)

    def sample(self, n: int, method: str = "kcenter", *, seed: int = 0, where: Optional[str] = None,
               window: Optional[tuple] = None, weight: Optional[str] = None, replace: bool = False,
               **options: Any):
        """Selects ``n`` rows (diverse subsets, coresets, weighted draws; ``knnsql.sampling.METHODS``)
        and returns them as a pandas DataFrame: the row's columns (not the vector) plus ``weight``,
        ``pick_order``, ``score`` and ``cluster``, in pick order. ``where`` filters rows like
        ``search().where``; ``window=(lo, hi)`` keeps rows whose index label lies in the range.
        Same seed, same picks. ``options`` are the method's (``iters=``, ``variant=``, ``start=``...)."""
        from . import sampling

        conds = []
        if where is not None:
            conds.append("(" + render(parse_filter(where, self.all_columns)) + ")")
        if window is not None:
            info = self.index
            if info is None or info.label_column is None:
                raise ValueError(f"window= needs an index with a label on {self.name!r}: "
                                 "table.create_index(label='<column>')")
            lo, hi = window
            typ = self.columns[info.label_column]
            for bound, op in ((lo, ">="), (hi, "<=")):
                if bound is not None:
                    conds.append(f"{q(info.label_column)} {op} CAST({bound_literal(bound)} AS {typ})")
        if weight is not None and weight not in self.columns:
            raise ValueError(f"weight column {weight!r} is not in {self.name!r}; columns are {list(self.columns)}")
        picks = sampling.sample_sql(self.name, n, method, seed=seed, where=" AND ".join(conds) or None,
                                    id=self.id_column, vec=self.vector_column, weight=weight, replace=replace,
                                    **sampling._normalised_options(options))
        cols = ", ".join(f"t.{q(c)}" for c in [self.id_column, *self.columns])
        sql = (f"SELECT {cols}, p.weight, p.pick_order, p.score, p.cluster FROM ({picks}) p "
               f"JOIN {q(self.name)} t ON t.{q(self.id_column)} = p.id ORDER BY p.pick_order")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"n must be an integer, got {type(n).__name__}")
        with _progress.watch(self.db.con, f"sampling {method}"):
            return self.db.con.execute(sql, {"n": int(n), "seed": int(seed)}).df()

    def to_pandas(self):
        """The whole table as a pandas DataFrame."""
        return self.db.con.execute(f"SELECT * FROM {q(self.name)}").df()
