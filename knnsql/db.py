"""The database: ``connect`` opens DuckDB with knnsql loaded and returns a ``Database``, which opens
vector tables (``table.py``), restores and saves their indexes (``_catalog.py``) and rewrites kNN SQL
onto them (``rewrite.py``)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Optional

import duckdb

from sqlglot import exp

from . import _catalog, rewrite, text_index
from ._extension import load
from ._ffi import KnnError
from ._tracked import may_drop, may_update, may_write
from ._sql import quote_ident as q
from .table import VectorTable, _metric


class Database:
    """A DuckDB connection with knnsql loaded, plus vector tables and the indexes that cache them.

    ``execute`` and every other DuckDB connection method pass through to the underlying connection,
    which stays reachable as ``db.con``. ``sql`` is DuckDB's own, except that a kNN query over an
    indexed vector table is rewritten onto its index (``db.explain(sql)`` shows how). Use as a
    context manager, or call ``close()``: both save changed indexes into the database file.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, *, auto_refresh: bool = True,
                 read_consistency_interval: Optional[float] = None):
        self.con = con
        self.auto_refresh = auto_refresh
        self.read_consistency_interval = read_consistency_interval
        self._write_gen = 0
        self._update_gen = 0  # tracked writes that may change rows in place
        self._checked: dict[str, tuple[int, int, float]] = {}  # index -> (write gen, update gen, time) last checked
        self._registry = None
        self._text_gen = 0  # writes through the tables API (keyword indexes check their fingerprint after one)
        self._text_checked: dict[str, tuple[int, int]] = {}  # table -> (write gen, text gen) last checked
        self._open_tables: dict[str, tuple] = {}  # name -> (write gen, VectorTable) for db.sql's checks
        #: what connect found for each saved index: restored / rebuilt / attached, and the repairs
        self.open_report: list[dict] = []
        self._dirty: set[str] = set()
        self._index_cache: Optional[dict] = None
        self._meta_cache: dict[str, Optional[dict]] = {}
        self._seen_rows: dict[str, int] = {}
        self._closed = False
        # DuckDB finds Python variables named in a query (DataFrames, Arrow tables) in the caller's
        # frames; our sql() wrapper is one frame deeper, so let it look through all of them.
        con.execute("SET python_scan_all_frames = true").fetchall()
        if _catalog.has_meta(con):
            self._open_indexes()

    # -- plain DuckDB ------------------------------------------------------------------------------
    def execute(self, query, *args, **kwargs):
        """DuckDB's ``connection.execute``: runs a statement with optional parameters, unchanged."""
        if may_write(query):
            self._wrote(may_update(query))
        result = self.con.execute(query, *args, **kwargs)
        if may_write(query) and may_drop(query):  # a read cannot drop a table
            self._forget_dropped_tables()
        return result

    def sql(self, query: str, params: Any = None, **named: Any):
        """Runs ``query`` and returns a DuckDB relation. ``ORDER BY array_distance(col, $q) LIMIT k``
        (or the cosine / inner-product forms) over an indexed vector table runs on the index;
        anything else runs unchanged. Parameters: a dict or list, or keywords (``q=vector``).
        A statement the index answers alone (its select list plain columns the index holds and an aliased
        distance, the vector a ``$name`` parameter) returns a ``_result.IndexResult`` instead: the same
        ``fetchall`` / ``to_arrow_table`` / ``arrow`` / ``columns`` without a statement, every other
        relation method through the DuckDB relation (``.relation``), built on first use."""
        params = self._params(params, named)
        if may_write(query):
            self._wrote(may_update(query))
        result = rewrite.plan(self, query, params)
        if result.direct is not None and isinstance(params, dict) and result.direct.param in params:
            from ._result import IndexResult  # answered by one call into the index (_result.py)

            return IndexResult(self, result.table, result, params)
        rel = self.con.sql(result.sql, params=params) if params is not None else self.con.sql(result.sql)
        if may_write(query) and may_drop(query):  # a read cannot drop a table
            self._forget_dropped_tables()
        return rel

    def explain(self, query: str, params: Any = None, **named: Any) -> "rewrite.Rewrite":
        """How ``sql(query)`` would run: whether it is rewritten onto an index, why, and the SQL.
        ``str()`` of the result reads well; its fields are ``rewritten``, ``reason``, ``sql``..."""
        return rewrite.plan(self, query, self._params(params, named))

    @staticmethod
    def _params(params: Any, named: dict):
        if named:
            if params is not None:
                raise ValueError("give parameters either as one dict/list or as keywords, not both")
            params = named
        if isinstance(params, dict):
            import numpy as np
            params = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in params.items()}
        return params

    # -- vector tables -----------------------------------------------------------------------------
    def create_table(self, name: str, dim: int, metric: str = "cosine", columns: Optional[dict] = None,
                     id: str = "id", vector: str = "emb", *, replace: bool = False) -> VectorTable:
        """Creates a vector table: ``id BIGINT PRIMARY KEY``, ``vector FLOAT[dim]`` and ``columns``
        (name -> DuckDB type, e.g. ``{"title": "VARCHAR", "ts": "TIMESTAMP"}``)."""
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        metric = _metric(metric)
        columns = dict(columns or {})
        names = [id, vector, *columns]
        if len({n.lower() for n in names}) != len(names):
            raise ValueError(f"column names repeat: {names}")
        defs = [f"{q(id)} BIGINT PRIMARY KEY", f"{q(vector)} FLOAT[{dim}]"]
        for col, typ in columns.items():
            defs.append(f"{q(col)} {_column_type(typ)}")
        _catalog.ensure_meta(self.con)
        if replace:
            old = self._table_meta(name)
            if old is not None:
                self.table(name).drop_index()
            self.con.execute(f"DROP TABLE IF EXISTS {q(name)}").fetchall()
        self.con.execute(f"CREATE TABLE {q(name)} ({', '.join(defs)})").fetchall()
        self._record_table(name, id, vector, dim, metric)
        return self.table(name)

    def table(self, name: str, vector: Optional[str] = None, id: str = "id",
              metric: Optional[str] = None) -> VectorTable:
        """Opens an existing table as a vector table. Its ``FLOAT[d]`` column is found by itself
        (pass ``vector=`` when there are several); ``metric`` defaults to what was recorded, else cosine."""
        meta = self._table_meta(name)
        types = self._column_types(name)
        if types is None:
            raise ValueError(f"no table {name!r} in this database")
        if meta is None or vector is not None or metric is not None:
            arrays = [c for c, t in types.items() if _array_dim(t) is not None]
            if vector is None:
                if len(arrays) != 1:
                    raise ValueError(f"{name!r} has {len(arrays)} FLOAT[d] columns ({arrays}); pass vector=")
                vector = arrays[0]
            vector = next((c for c in types if c.lower() == vector.lower()), vector)
            if vector not in types or _array_dim(types[vector]) is None:
                raise ValueError(f"{name}.{vector} is not a FLOAT[d] column (it is "
                                 f"{types.get(vector, 'missing')}); cast it: ALTER TABLE ... ALTER ... TYPE FLOAT[d]")
            id = next((c for c in types if c.lower() == id.lower()), None) or \
                _fail(f"{name!r} has no {id!r} column; pass id= naming its integer key")
            metric = _metric(metric or (meta["metric"] if meta else "cosine"))
            _catalog.ensure_meta(self.con)
            self._record_table(name, id, vector, _array_dim(types[vector]), metric)
            meta = self._table_meta(name)
        others = {c: t for c, t in types.items() if c not in (meta["id_column"], meta["vector_column"])}
        return VectorTable(self, meta["name"], meta["id_column"], meta["vector_column"], meta["dim"],
                           meta["metric"], others)

    def tables(self) -> list[str]:
        """Names of the vector tables this database knows."""
        if not _catalog.has_meta(self.con):
            return []
        return [r[0] for r in self.con.execute("SELECT name FROM _knnsql_tables ORDER BY name").fetchall()]

    def drop_table(self, name: str, *, missing_ok: bool = False) -> None:
        """Drops a table and its index (``DROP TABLE`` through ``db.execute`` / ``db.sql`` does the same)."""
        exists = self._column_types(name) is not None
        if not exists and not missing_ok:
            raise ValueError(f"no table {name!r} in this database")
        if exists:
            self.con.execute(f"DROP TABLE {q(name)}").fetchall()
        self._forget_dropped_tables()

    def _forget_dropped_tables(self) -> list[str]:
        """Drops the indexes (and the records) of vector tables that no longer exist, after a statement
        that may have dropped or renamed one; returns the names of the indexes dropped."""
        if not _catalog.has_meta(self.con):
            return []
        alive = {r[0].lower() for r in self.con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = current_schema() "
            "AND database_name = current_database()").fetchall()}
        dropped = []
        for info in _catalog.list_indexes(self.con):
            if info.table.lower() not in alive:
                _catalog.drop_index(self.con, info)
                self._dirty.discard(info.name)
                dropped.append(info.name)
        gone = [n for n in self.tables() if n.lower() not in alive]
        for name in gone:
            self.con.execute("DELETE FROM _knnsql_tables WHERE lower(name) = lower(?)", [name]).fetchall()
            text_index.drop(self.con, name)
        if dropped or gone:
            self._meta_cache.clear()
            self._open_tables.clear()
            self._indexes_changed()
        return dropped

    def _record_table(self, name, id_column, vector, dim, metric) -> None:
        self._meta_cache.clear()
        self.con.execute("DELETE FROM _knnsql_tables WHERE lower(name) = lower(?)", [name]).fetchall()
        self.con.execute("INSERT INTO _knnsql_tables VALUES (?, ?, ?, ?, ?)", [name, id_column, vector, dim, metric]).fetchall()

    def _column_types(self, name: str) -> Optional[dict]:
        rows = self.con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
                                "AND lower(table_name) = lower(?) ORDER BY column_index", [name]).fetchall()
        return {r[0]: r[1] for r in rows} if rows else None

    def _table_meta(self, name: str) -> Optional[dict]:
        """The recorded settings of a vector table (cached until this object records a table)."""
        key = name.lower()
        if key not in self._meta_cache:
            self._meta_cache[key] = self._read_table_meta(name)
        return self._meta_cache[key]

    def _read_table_meta(self, name: str) -> Optional[dict]:
        if not _catalog.has_meta(self.con):
            return None
        row = self.con.execute("SELECT name, id_column, vector_column, dim, metric FROM _knnsql_tables "
                               "WHERE lower(name) = lower(?)", [name]).fetchall()
        if not row:
            return None
        row = row[0]
        meta = dict(zip(("name", "id_column", "vector_column", "dim", "metric"), row))
        meta["types"] = self._column_types(meta["name"]) or {}
        return meta

    # -- index lifecycle ---------------------------------------------------------------------------
    def _open_indexes(self) -> None:
        for info in _catalog.list_indexes(self.con):
            meta = self._table_meta(info.table)
            if meta is None or self._column_types(info.table) is None:
                self.open_report.append({"index": info.name, "action": "skipped", "added": 0, "removed": 0,
                                         "updated": 0, "reason": f"table {info.table!r} is gone"})
                continue
            report = _catalog.open_index(self.con, info, meta["id_column"], meta["dim"], meta["metric"])
            self._indexes_changed()
            self._note_rows(self.table(info.table), info)
            if report.action != "restored" or report.changed:
                self._dirty.add(info.name)
            self.open_report.append(report.as_dict())

    def _index_for(self, table: str, vector_column: str):
        """The index over table.vector_column (cached; our own index writes invalidate it)."""
        if self._index_cache is None:
            self._index_cache = {(i.table.lower(), i.vector_column.lower()): i
                                 for i in _catalog.list_indexes(self.con)}
        return self._index_cache.get((table.lower(), vector_column.lower()))

    def _indexes_changed(self) -> None:
        self._index_cache = None

    def _note_rows(self, table: VectorTable, info) -> None:
        """Remembers the table's row count the index was last checked or written at."""
        if info is not None:
            self._seen_rows[info.name] = self.con.execute(f"SELECT count(*) FROM {q(table.name)}").fetchall()[0][0]
            self._checked[info.name] = (self._write_gen, self._update_gen, time.monotonic())

    def _wrote(self, in_place: bool = False) -> None:
        self._write_gen += 1
        self._update_gen += bool(in_place)

    def _direct(self):
        """The index registry for searches without a statement (``_direct.Registry``), made once."""
        if self._registry is None:
            from ._direct import Registry
            self._registry = Registry(self.con)
        return self._registry

    def _auto_refresh(self, table: VectorTable, info=None) -> None:
        """Before a search: a row count that differs from the one the index last saw means another
        client wrote to the table, so repair the index first (updates in place are found by
        refresh_index, which compares every row's hash). Counted only when a statement that may write
        ran since the last check (``_tracked.py``), or ``read_consistency_interval`` seconds passed."""
        info = info or table.index
        if not self.auto_refresh or info is None:
            return
        gen, upd, at = self._checked.get(info.name, (-1, self._update_gen, 0.0))
        if upd != self._update_gen:
            table.refresh_index()  # an in-place change keeps the count: compare every row's hash
        else:
            interval = self.read_consistency_interval
            if gen == self._write_gen and (interval is None or time.monotonic() - at < interval):
                return
            try:
                rows = self.con.execute(f"SELECT count(*) FROM {q(table.name)}").fetchall()[0][0]
            except duckdb.CatalogException as exc:
                raise KnnError(f"table {table.name!r} no longer exists (dropped or renamed outside knnsql), so its "
                               f"index {info.name!r} would answer from rows that are gone; call db.refresh() to "
                               "drop the index with it, or recreate the table") from exc
            if self._seen_rows.get(info.name) != rows:
                table.refresh_index()
        self._checked[info.name] = (self._write_gen, self._update_gen, time.monotonic())

    def _auto_refresh_name(self, name: str) -> None:
        meta = self._table_meta(name)
        info = self._index_for(name, meta["vector_column"]) if meta else None
        if info is None:
            return
        gen, upd, at = self._checked.get(info.name, (-1, self._update_gen, 0.0))
        if upd == self._update_gen and gen == self._write_gen and self.read_consistency_interval is None:
            return  # nothing to check: skip opening the table (a catalog query)
        cached = self._open_tables.get(name.lower())
        if cached is None or cached[0] != self._write_gen:  # a tracked write may have changed its columns
            cached = self._open_tables[name.lower()] = (self._write_gen, self.table(name))
        self._auto_refresh(cached[1], info)

    def refresh(self) -> list[dict]:
        """Runs the freshness check on every index; returns one report per index. Indexes of tables
        dropped outside knnsql are dropped (reported with ``action`` ``"dropped"``)."""
        out = [{"index": name, "action": "dropped", "added": 0, "removed": 0, "updated": 0,
                "reason": "its table no longer exists"} for name in self._forget_dropped_tables()]
        for info in _catalog.list_indexes(self.con):
            meta = self._table_meta(info.table)
            if meta is None:
                continue
            report = _catalog.refresh(self.con, info, meta["id_column"])
            self._note_rows(self.table(info.table), info)
            if report.changed:
                self._dirty.add(info.name)
            out.append(report.as_dict())
        return out

    def checkpoint(self) -> list[str]:
        """Saves every index changed since the last save into the database file (graph bytes via
        ``knn_index_dump``), then runs DuckDB's CHECKPOINT. Returns the names saved."""
        saved = []
        for info in _catalog.list_indexes(self.con):
            if info.name in self._dirty and _catalog.registered(self.con, info.name):
                if _catalog.save(self.con, info):
                    saved.append(info.name)
        self._dirty.clear()
        try:
            self.con.execute("CHECKPOINT").fetchall()
        except duckdb.Error:
            pass  # in-memory databases have nothing to checkpoint
        return saved

    def close(self) -> None:
        """Saves changed indexes, then closes the connection. Safe to call twice."""
        if self._closed:
            return
        try:
            if self._dirty:
                self.checkpoint()
        finally:
            self._closed = True
            self.con.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getattr__(self, name: str):
        return getattr(self.con, name)

    def __repr__(self) -> str:
        return f"<knnsql.Database over {self.con!r}>"


def _fail(message: str):
    raise ValueError(message)


def _array_dim(duck_type: str) -> Optional[int]:
    """d for FLOAT[d] (DuckDB prints it as FLOAT[d]); None for anything else."""
    t = duck_type.upper().replace(" ", "")
    for prefix in ("FLOAT[", "REAL["):
        if t.startswith(prefix) and t.endswith("]") and t[len(prefix):-1].isdigit():
            return int(t[len(prefix):-1])
    return None


def _column_type(text: str) -> str:
    """A DuckDB type name, checked by sqlglot so it cannot carry anything else."""
    text = str(text)
    balanced = text.count("(") == text.count(")") and text.count("[") == text.count("]")
    if not balanced or not re.fullmatch(r"[A-Za-z0-9_ ,()\[\]]+", text):
        raise ValueError(f"{text!r} is not a DuckDB column type")
    try:
        parsed = exp.DataType.build(text, dialect="duckdb")
    except Exception:
        raise ValueError(f"{text!r} is not a DuckDB column type") from None
    return parsed.sql(dialect="duckdb")


def connect(path: Optional[str | Path] = None, *, auto_refresh: bool = True,
            read_consistency_interval: Optional[float] = None, **config: Any) -> Database:
    """Opens a DuckDB database (in memory when ``path`` is None) with knnsql loaded.

    Indexes saved in the file are restored (or rebuilt when their bytes are unusable) and checked
    against their tables; ``db.open_report`` says what happened to each. Extra keyword arguments are
    DuckDB configuration options (``threads=2``, ``memory_limit="4GB"``...). Unsigned extensions are
    allowed on this connection so the locally built extension can load. ``auto_refresh``: repair an
    index before a search when its table changed behind its back. Every write through this database is
    seen by the next search: the tables API, and any statement through ``db.execute`` / ``db.sql`` that may
    write (a row count then, or a hash comparison of every row after an UPDATE). Writes that bypass it
    (``db.con`` used directly, another connection to the same file) are seen after ``db.refresh()``, or on
    their own with ``read_consistency_interval`` (LanceDB's knob): 0 counts rows before every search
    (~0.4 ms a search), a number of seconds at least that often; None (default) trusts the writes it sees.
    """
    settings = dict(config)
    settings["allow_unsigned_extensions"] = True
    con = duckdb.connect(str(path) if path is not None else ":memory:", config=settings)
    try:
        load(con)
        return Database(con, auto_refresh=auto_refresh, read_consistency_interval=read_consistency_interval)
    except BaseException:
        con.close()
        raise
