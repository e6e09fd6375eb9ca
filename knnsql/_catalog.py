"""Index bookkeeping inside the database file: which table and column each index caches, its saved
bytes, and the rows it holds — so indexes survive close/reopen and stay fresh.

Tables (created on first use, in the main schema):

- ``_knnsql_tables``: vector tables made or opened by the Python layer (id column, vector column,
  dimension, metric).
- ``_knnsql_indexes``: one row per index: the table, vector and label column, kind and parameters.
- ``_knnsql_index_parts``: the index bytes from ``knn_index_dump`` as of the last save.
- ``_knnsql_index_rows``: ``(id, h)`` for every row those saved bytes hold, where ``h`` is
  ``hash(id, vector, label)``. Saved in the same transaction as the parts, so the two always agree.
- ``_knnsql_index_live``: ``(id, h)`` for every row the in-memory index holds now.

Freshness: a full outer join of the table's ``(id, hash(id, vector, label))`` against the live
rows finds rows added, removed or changed by any client (plain SQL included); only those are
written to the index. After a crash the in-memory index is gone, so the saved parts are restored
and the live rows reset to the saved rows, which describe exactly those bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Optional

import duckdb

from . import _progress
from ._sql import quote_ident as q

META_DDL = [
    "CREATE TABLE IF NOT EXISTS _knnsql_tables (name VARCHAR PRIMARY KEY, id_column VARCHAR, "
    "vector_column VARCHAR, dim INTEGER, metric VARCHAR)",
    "CREATE TABLE IF NOT EXISTS _knnsql_indexes (name VARCHAR PRIMARY KEY, table_name VARCHAR, "
    "vector_column VARCHAR, label_column VARCHAR, kind VARCHAR, params VARCHAR, saved_at TIMESTAMP)",
    "CREATE TABLE IF NOT EXISTS _knnsql_index_parts (index_name VARCHAR, part INTEGER, bytes BLOB)",
    "CREATE TABLE IF NOT EXISTS _knnsql_index_rows (index_name VARCHAR, id BIGINT, h UBIGINT)",
    "CREATE TABLE IF NOT EXISTS _knnsql_index_live (index_name VARCHAR, id BIGINT, h UBIGINT)",
]

# Builds over more rows than this insert in about 20 steps (_progress.parts), on a terminal or not, so a
# terminal can show progress and the index is the same either way.
PROGRESS_CHUNK = 10_000


@dataclass
class IndexInfo:
    """One index's bookkeeping row."""
    name: str
    table: str
    vector_column: str
    label_column: Optional[str]
    kind: str
    params: dict = field(default_factory=dict)

    @property
    def attributes(self) -> list[str]:
        """Table columns the index keeps as attribute columns, for filters it evaluates itself."""
        return list(self.params.get("attributes", []))

    def create_options(self) -> dict:
        """The ``knn_index_create`` named options (the bookkeeping keys left out)."""
        return {k: v for k, v in self.params.items() if k != "attributes"}


@dataclass
class Freshness:
    """What a freshness check found and repaired: row counts by change kind."""
    index: str
    action: str = "checked"        # restored | rebuilt | attached | built | checked
    added: int = 0
    removed: int = 0
    updated: int = 0
    reason: str = ""
    recall: Optional[float] = None   # after a graph build: recall@10 measured on a sample of the rows

    @property
    def changed(self) -> int:
        return self.added + self.removed + self.updated

    def as_dict(self) -> dict:
        return {"index": self.index, "action": self.action, "added": self.added, "removed": self.removed,
                "updated": self.updated, "reason": self.reason}


def ensure_meta(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in META_DDL:
        con.execute(ddl).fetchall()


def has_meta(con: duckdb.DuckDBPyConnection) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = '_knnsql_indexes' "
                            "AND schema_name = 'main'").fetchall()[0][0])


def list_indexes(con: duckdb.DuckDBPyConnection) -> list[IndexInfo]:
    if not has_meta(con):
        return []
    rows = con.execute("SELECT name, table_name, vector_column, label_column, kind, params "
                       "FROM _knnsql_indexes ORDER BY name").fetchall()
    return [IndexInfo(r[0], r[1], r[2], r[3], r[4], json.loads(r[5] or "{}")) for r in rows]


def index_for(con, table: str, vector_column: str) -> Optional[IndexInfo]:
    for info in list_indexes(con):
        if info.table.lower() == table.lower() and info.vector_column.lower() == vector_column.lower():
            return info
    return None


def registered(con, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM knn_indexes() WHERE name = ?", [name]).fetchall()[0][0])


def _row_hash(info: IndexInfo, id_column: str, alias: str = "t") -> str:
    parts = [f"{alias}.{q(id_column)}", f"{alias}.{q(info.vector_column)}"]
    if info.label_column:
        parts.append(f"{alias}.{q(info.label_column)}")
    parts += [f"{alias}.{q(c)}" for c in info.attributes]  # an attribute change re-inserts the row
    return f"hash({', '.join(parts)})"


def _live_rows(info: IndexInfo, id_column: str) -> str:
    """The table's rows an index can hold, with their change hash."""
    return (f"SELECT t.{q(id_column)} AS id, {_row_hash(info, id_column)} AS h FROM {q(info.table)} t "
            f"WHERE t.{q(id_column)} IS NOT NULL AND t.{q(info.vector_column)} IS NOT NULL")


def _insert_args(info: IndexInfo, id_column: str, alias: str = "t") -> str:
    args = [f"{alias}.{q(id_column)}", f"{alias}.{q(info.vector_column)}"]
    if info.label_column:
        args.append(f"{alias}.{q(info.label_column)}")
    if info.attributes:
        fields = ", ".join("'" + c.replace("'", "''") + f"': {alias}.{q(c)}" for c in info.attributes)
        args.append("{" + fields + "}")
    return ", ".join(args)


def create_index(con, info: IndexInfo, id_column: str, dim: int, metric: str, hold_out: Optional[str] = None,
                 measure: Optional[Callable[[], None]] = None) -> Freshness:
    """Creates the index in the registry, fills it from the table, and records it. ``hold_out`` names a table
    of ids built in last: ``measure()`` runs before they go in, so they are queries the graph has not seen."""
    ensure_meta(con)
    named = ", ".join(f"{key} := {_sql_value(value)}" for key, value in info.create_options().items())
    con.execute(f"SELECT * FROM knn_index_create(?, dim := {int(dim)}, metric := ?, kind := ?, source := ?"
                f"{', ' + named if named else ''})", [info.name, metric, info.kind, info.table]).fetchall()
    try:
        total = con.execute(f"SELECT count(*) FROM ({_live_rows(info, id_column)})").fetchall()[0][0]
        with _progress.quiet(con), _progress.Bar(f"building {info.name}", total,
                                                 on=total > PROGRESS_CHUNK) as bar:
            fill(con, info, id_column, hold_out, bar)
            if hold_out is not None:
                if measure is not None:
                    bar.break_line()   # measure() may warn about recall
                    measure()
                bar.advance(_count(con.execute(
                    f"SELECT knn_index_insert(?, {_insert_args(info, id_column)}) FROM {q(info.table)} t "
                    f"SEMI JOIN {q(hold_out)} h ON t.{q(id_column)} = h.id", [info.name]).fetchall()))
        con.execute("DELETE FROM _knnsql_indexes WHERE name = ?", [info.name]).fetchall()
        con.execute("INSERT INTO _knnsql_indexes VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    [info.name, info.table, info.vector_column, info.label_column, info.kind,
                     json.dumps(info.params)]).fetchall()
    except BaseException:
        con.execute("SELECT * FROM knn_index_drop(?)", [info.name]).fetchall()
        raise
    return Freshness(info.name, action="built",
                     added=con.execute("SELECT count(*) FROM _knnsql_index_live WHERE index_name = ?",
                                       [info.name]).fetchall()[0][0])


def _sql_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"index parameter value {value!r} must be a number, bool or string")


def _count(rows) -> int:
    """The rows a ``knn_index_insert`` statement added (NULL over no rows)."""
    return int(rows[0][0] or 0) if rows else 0


def fill(con, info: IndexInfo, id_column: str, hold_out: Optional[str] = None,
         bar: Optional[_progress.Bar] = None) -> None:
    """Inserts every table row into an empty index, but those whose id is in the table ``hold_out`` (the
    caller adds them later); records every row as live. Over ``PROGRESS_CHUNK`` rows the insert runs in
    about 20 steps, each a pseudo-random part of the rows (by a hash of the id, so rows that arrive
    grouped, e.g. sorted by a label, still reach the graph mixed), and ``bar`` advances after each."""
    con.execute("DELETE FROM _knnsql_index_live WHERE index_name = ?", [info.name]).fetchall()
    skip = f" AND {q(id_column)} NOT IN (SELECT id FROM {q(hold_out)})" if hold_out else ""
    src = (f"(SELECT * FROM {q(info.table)} WHERE {q(id_column)} IS NOT NULL "
           f"AND {q(info.vector_column)} IS NOT NULL{skip})")
    total = con.execute(f"SELECT count(*) FROM {src}").fetchall()[0][0]
    steps = _progress.parts(total, PROGRESS_CHUNK)
    for step in range(steps):
        part = f" WHERE hash(t.{q(id_column)}) % {steps} = {step}" if steps > 1 else ""
        added = _count(con.execute(f"SELECT knn_index_insert(?, {_insert_args(info, id_column)}) FROM {src} t{part}",
                                   [info.name]).fetchall())
        if bar is not None:
            bar.advance(added)
    con.execute(f"INSERT INTO _knnsql_index_live SELECT ?, id, h FROM ({_live_rows(info, id_column)})",
                [info.name]).fetchall()


def refresh(con, info: IndexInfo, id_column: str, action: str = "checked") -> Freshness:
    """Brings the index in line with its table; returns what changed."""
    report = Freshness(info.name, action=action)
    con.execute("CREATE OR REPLACE TEMP TABLE _knnsql_diff AS "
                f"SELECT coalesce(t.id, l.id) AS id, t.id IS NULL AS gone, l.id IS NULL AS new "
                f"FROM ({_live_rows(info, id_column)}) t "
                "FULL JOIN (SELECT id, h FROM _knnsql_index_live WHERE index_name = ?) l ON t.id = l.id "
                "WHERE t.h IS DISTINCT FROM l.h", [info.name]).fetchall()
    try:
        report.removed, report.added, report.updated = con.execute(
            "SELECT count(*) FILTER (WHERE gone), count(*) FILTER (WHERE new), "
            "count(*) FILTER (WHERE NOT gone AND NOT new) FROM _knnsql_diff").fetchall()[0]
        if report.changed == 0:
            return report
        if report.removed:
            con.execute("SELECT knn_index_delete(?, id) FROM _knnsql_diff WHERE gone", [info.name]).fetchall()
        if report.added or report.updated:
            with _progress.watch(con, f"updating {info.name}"):
                con.execute(f"SELECT knn_index_insert(?, {_insert_args(info, id_column)}) FROM {q(info.table)} t "
                            f"SEMI JOIN (SELECT id FROM _knnsql_diff WHERE NOT gone) d ON t.{q(id_column)} = d.id",
                            [info.name]).fetchall()
        con.execute("DELETE FROM _knnsql_index_live WHERE index_name = ? AND id IN (SELECT id FROM _knnsql_diff)",
                    [info.name]).fetchall()
        con.execute(f"INSERT INTO _knnsql_index_live SELECT ?, t.id, t.h FROM ({_live_rows(info, id_column)}) t "
                    "SEMI JOIN (SELECT id FROM _knnsql_diff WHERE NOT gone) d ON t.id = d.id", [info.name]).fetchall()
    finally:
        con.execute("DROP TABLE IF EXISTS _knnsql_diff").fetchall()
    return report


def save(con, info: IndexInfo) -> bool:
    """Writes the index bytes and the rows they hold in one transaction. Flat indexes are not saved
    (a rebuild is a copy). Returns whether bytes were written."""
    if info.kind != "graph":
        return False
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        con.execute("DELETE FROM _knnsql_index_parts WHERE index_name = ?", [info.name]).fetchall()
        con.execute("DELETE FROM _knnsql_index_rows WHERE index_name = ?", [info.name]).fetchall()
        con.execute("INSERT INTO _knnsql_index_parts SELECT ?, part, bytes FROM knn_index_dump(?)",
                    [info.name, info.name]).fetchall()
        con.execute("INSERT INTO _knnsql_index_rows SELECT index_name, id, h FROM _knnsql_index_live "
                    "WHERE index_name = ?", [info.name]).fetchall()
        con.execute("UPDATE _knnsql_indexes SET saved_at = current_timestamp::TIMESTAMP WHERE name = ?",
                    [info.name]).fetchall()
        con.execute("COMMIT").fetchall()
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise
    return True


def open_index(con, info: IndexInfo, id_column: str, dim: int, metric: str) -> Freshness:
    """Makes a recorded index usable after connect: attach if this process already has it, restore
    its saved bytes, or rebuild it; then repair it against the table."""
    if registered(con, info.name):
        return refresh(con, info, id_column, action="attached")
    parts = con.execute("SELECT count(*) FROM _knnsql_index_parts WHERE index_name = ?",
                        [info.name]).fetchall()[0][0]
    if info.kind == "graph" and parts:
        try:
            con.execute("SELECT knn_index_restore(?, part, bytes, ?, ?) FROM "
                        "(SELECT * FROM _knnsql_index_parts WHERE index_name = ? ORDER BY part)",
                        [info.name, info.table, info.params.get("vectors_dir"), info.name]).fetchall()
            _restore_vectors(con, info, id_column)
        except duckdb.Error as exc:
            if registered(con, info.name):  # restored, but its float rows were not given back
                con.execute("SELECT * FROM knn_index_drop(?)", [info.name]).fetchall()
            reason = f"saved bytes unusable ({str(exc).splitlines()[0]}); rebuilt from the table"
        else:
            con.execute("DELETE FROM _knnsql_index_live WHERE index_name = ?", [info.name]).fetchall()
            con.execute("INSERT INTO _knnsql_index_live SELECT * FROM _knnsql_index_rows WHERE index_name = ?",
                        [info.name]).fetchall()
            return refresh(con, info, id_column, action="restored")
    else:
        reason = "no saved bytes (flat index, or never saved); rebuilt from the table"
    con.execute("DELETE FROM _knnsql_indexes WHERE name = ?", [info.name]).fetchall()
    report = create_index(con, info, id_column, dim, metric)
    report.action, report.reason = "rebuilt", reason
    return report


def _restore_vectors(con, info: IndexInfo, id_column: str) -> None:
    """A quantized graph's saved bytes hold its codes, not its float rows: those come back from the table,
    for the rows unchanged since the save (the saved rows' hashes say which); the freshness check then
    re-inserts the changed rows and deletes the gone ones, so every live row has its float row again."""
    quant = con.execute("SELECT quantization FROM knn_indexes() WHERE name = ?", [info.name]).fetchall()
    if not quant or quant[0][0] == "none":
        return
    con.execute(f"SELECT knn_index_restore_vectors(?, t.{q(id_column)}, t.{q(info.vector_column)}) "
                f"FROM {q(info.table)} t SEMI JOIN (SELECT id, h FROM _knnsql_index_rows WHERE index_name = ?) r "
                f"ON t.{q(id_column)} = r.id AND {_row_hash(info, id_column)} = r.h", [info.name, info.name]).fetchall()


def drop_index(con, info: IndexInfo) -> None:
    if registered(con, info.name):
        con.execute("SELECT * FROM knn_index_drop(?)", [info.name]).fetchall()
    for table, key in (("_knnsql_indexes", "name"), ("_knnsql_index_parts", "index_name"),
                       ("_knnsql_index_rows", "index_name"), ("_knnsql_index_live", "index_name")):
        con.execute(f"DELETE FROM {table} WHERE {key} = ?", [info.name]).fetchall()
