"""Loading the extension into DuckDB: extension_path, load and install (``db.connect`` opens a ``Database``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Dict, Optional

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


def duckdb_cli() -> Optional[str]:
    """The DuckDB command-line client beside this Python (a venv's bin) or on PATH, or None."""
    here = os.path.dirname(sys.executable)
    return shutil.which("duckdb", path=here + os.pathsep + os.environ.get("PATH", ""))


def install(extension_directory: Optional[str] = None, cli: bool = True) -> Dict[str, str]:
    """Installs knnsql where DuckDB looks for extensions, so ``LOAD knnsql`` works by name: for this
    Python's DuckDB and, when ``cli`` and a ``duckdb`` command-line client is found, for that client's
    version too (each DuckDB version has its own extension folder). ``extension_directory``: DuckDB's
    setting of that name (default: DuckDB's, ``~/.duckdb/extensions``). Returns {DuckDB version: path}.

    knnsql is not signed by DuckDB, so every client still needs unsigned extensions allowed:
    ``duckdb -unsigned``, or ``config={"allow_unsigned_extensions": "true"}`` in Python."""
    path = _sql_string(extension_path())
    setting = f"SET extension_directory = '{_sql_string(extension_directory)}'; " if extension_directory else ""
    config = {"allow_unsigned_extensions": "true"}
    if extension_directory:
        config["extension_directory"] = extension_directory
    done = {}
    con = duckdb.connect(config=config)
    try:
        con.execute(f"FORCE INSTALL '{path}'").fetchall()
        row = con.execute("SELECT version(), install_path FROM duckdb_extensions() WHERE extension_name = 'knnsql'"
                          ).fetchall()[0]
        done[row[0]] = row[1]
    finally:
        con.close()
    exe = duckdb_cli() if cli else None
    if exe:
        out = subprocess.run([exe, "-unsigned", "-csv", "-noheader", "-c",
                              f"{setting}FORCE INSTALL '{path}'; SELECT version(), install_path FROM duckdb_extensions() "
                              "WHERE extension_name = 'knnsql'"], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"the DuckDB CLI at {exe} could not install knnsql: {out.stderr.strip()[:300]}")
        version, _, where = out.stdout.strip().splitlines()[-1].partition(",")
        done[version] = where
    return done


def _sql_string(text: str) -> str:
    return text.replace("'", "''")
