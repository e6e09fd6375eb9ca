"""Loading the extension into DuckDB: extension_path, load, connect."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import duckdb

from . import _ffi


def extension_path() -> str:
    """Path of the loadable ``knnsql.duckdb_extension`` file.

    SQL-only users load it from any DuckDB client started with unsigned extensions allowed::

        duckdb -unsigned -c "LOAD '<path>'; SELECT knn_debug();"
    """
    return str(_ffi.extension_file())


def load(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Loads knnsql into a DuckDB connection you created; returns the same connection.

    The connection must allow unsigned extensions (knnsql is built locally, not signed by DuckDB)::

        con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
        knnsql.load(con)
    """
    path = extension_path()
    try:
        con.execute(f"LOAD '{_sql_string(path)}'")
    except duckdb.Error as exc:
        text = str(exc)
        if "signature" in text.lower() or "unsigned" in text.lower():
            raise RuntimeError(
                "DuckDB refused knnsql because it is not signed. Create the connection with unsigned "
                "extensions allowed: duckdb.connect(path, config={'allow_unsigned_extensions': 'true'}), "
                "or use knnsql.connect(path), which does this for you. (DuckDB said: "
                f"{text.splitlines()[0]})") from exc
        raise
    return con


def _sql_string(text: str) -> str:
    return text.replace("'", "''")


class Database:
    """A DuckDB connection with knnsql loaded.

    ``sql``, ``execute`` and every other DuckDB connection method pass through to the underlying
    connection, which stays reachable as ``db.con``. Use as a context manager to close it.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    # sql/execute are DuckDB's own bound methods, not wrappers: DuckDB resolves Python variables named
    # in a query (numpy arrays, Arrow tables, DataFrames) from the caller's frame, which a wrapper
    # function would hide.
    @property
    def sql(self):
        """DuckDB's ``connection.sql``: runs a query, returns a relation."""
        return self.con.sql

    @property
    def execute(self):
        """DuckDB's ``connection.execute``: runs a statement with optional parameters."""
        return self.con.execute

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getattr__(self, name: str):
        return getattr(self.con, name)

    def __repr__(self) -> str:
        return f"<knnsql.Database over {self.con!r}>"


def connect(path: Optional[str | Path] = None, **config: Any) -> Database:
    """Opens a DuckDB database (in memory when ``path`` is None) with knnsql loaded.

    Extra keyword arguments are DuckDB configuration options (``threads=2``, ``memory_limit="4GB"``...).
    Unsigned extensions are allowed on this connection so the locally built extension can load.
    """
    settings = dict(config)
    settings["allow_unsigned_extensions"] = True
    con = duckdb.connect(str(path) if path is not None else ":memory:", config=settings)
    try:
        load(con)
    except BaseException:
        con.close()
        raise
    return Database(con)
