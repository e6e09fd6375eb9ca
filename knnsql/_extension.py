"""Loading the extension into DuckDB: extension_path and load (``db.connect`` opens a ``Database``)."""

from __future__ import annotations

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
        con.execute(f"LOAD '{_sql_string(path)}'").fetchall()
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
