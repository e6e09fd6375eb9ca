"""The result of a ``db.sql`` statement that the index answers alone.

``db.sql`` returns a DuckDB relation. A statement rewritten onto an index whose select list is plain
columns the index holds (and the distance) needs no SQL at all: one call into the core gives the rows
(``rewrite.Direct``, ``_direct.Registry``). DuckDB 2.0's relation layer alone costs ~1.5 ms a statement
(bind, prepare, submit), several times the search, so such a statement returns this object instead: it
answers ``fetchall``, ``to_arrow_table`` / ``arrow`` / ``to_arrow_reader``, ``to_dicts`` and
``columns`` from the index on every call (a relation keeps no result between calls either), and hands
every other relation method (``df``, ``pl``, ``filter``, ``show``, ...) to the DuckDB relation of the
rewritten statement, built on first use. ``relation`` gives that relation itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from ._direct import arrow_type


class IndexResult:
    """Relation-compatible result of a statement answered by one index call (see the module doc)."""

    def __init__(self, db: Any, table: str, plan: Any, params: dict):
        self._db, self._table, self._plan, self._params = db, table, plan, params
        self._rel = None

    @property
    def relation(self):
        """The DuckDB relation of the rewritten statement (what ``db.sql`` returns for any other one)."""
        if self._rel is None:
            self._rel = self._db.con.sql(self._plan.sql, params=self._used_params())
        return self._rel

    def _used_params(self) -> dict:
        return {k: v for k, v in self._params.items() if f"${k}" in self._plan.sql}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.relation, name)

    def __repr__(self) -> str:
        return repr(self.relation)

    # -- answered by the index -----------------------------------------------------------------------
    @property
    def columns(self) -> list:
        return [o[0] for o in self._plan.direct.outputs]

    def to_arrow_table(self) -> pa.Table:
        d = self._plan.direct
        self._db._auto_refresh_name(self._table)  # writes since db.sql() are seen, as a relation would
        vec = np.ascontiguousarray(np.asarray(self._params[d.param], dtype=np.float32).reshape(1, d.dim))
        reg = self._db._direct()
        ids, dists, found = reg.query(d.index, vec, d.k, None, d.filter)
        n = int(found[0])
        ids = ids[0, :n]
        out = {}
        for name, src, sql_type in d.outputs:
            to = arrow_type(sql_type)
            if src == "":
                dist = dists[0, :n]
                out[name] = pa.array(np.sqrt(np.maximum(dist, 0)) if d.squared else dist, type=pa.float32())
            elif src == "id":
                out[name] = pa.array(ids).cast(to) if to != pa.int64() else pa.array(ids)
            else:
                out[name] = reg.column(d.index, ids, src, to)
        return pa.table(out)

    def fetchall(self) -> list:
        tbl = self.to_arrow_table()
        return list(zip(*(col.to_pylist() for col in tbl.columns))) if tbl.num_columns else []

    def to_dicts(self) -> list:
        return self.to_arrow_table().to_pylist()

    def arrow(self) -> pa.RecordBatchReader:
        tbl = self.to_arrow_table()
        return pa.RecordBatchReader.from_batches(tbl.schema, tbl.to_batches())

    to_arrow_reader = arrow

    def fetch_arrow_table(self) -> pa.Table:
        return self.to_arrow_table()
