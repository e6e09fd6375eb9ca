"""The ``knnsql`` command: ``knnsql info``, ``knnsql install``, ``knnsql shell [database]``,
``knnsql text-index database table column`` (the keyword index SQL clients then query)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from . import _extension


def _info() -> int:
    import duckdb

    from . import __version__, debug

    d = debug()
    print(f"knnsql {__version__}")
    print(f"DuckDB (Python) {duckdb.__version__}")
    print(f"SIMD {d.get('simd')} (CPU best {d.get('simd_best', d.get('cpu_best', '?'))})")
    print(f"extension {_extension.extension_path()}")
    cli = _extension.duckdb_cli()
    print(f"DuckDB CLI {cli or 'not found (pip install duckdb-cli)'}")
    return 0


def _install(directory: Optional[str]) -> int:
    for version, path in _extension.install(directory).items():
        print(f"DuckDB {version}: {path}")
    print("LOAD knnsql now works by name in these clients, started with unsigned extensions allowed "
          "(duckdb -unsigned; Python: config={'allow_unsigned_extensions': 'true'}).")
    return 0


def _shell(database: Optional[str]) -> int:
    exe = _extension.duckdb_cli()
    if exe is None:
        print("knnsql shell needs the DuckDB command-line client: pip install duckdb-cli", file=sys.stderr)
        return 1
    path = _extension.extension_path().replace("'", "''")
    args = [exe, "-unsigned", "-cmd", f"LOAD '{path}'"] + ([database] if database else [])
    os.execv(exe, args)
    return 1  # pragma: no cover - execv does not return


def _text_index(database: str, table: str, column: str, id_column: str, engine: str, stopwords: str) -> int:
    import duckdb

    from . import text_index

    try:
        con = duckdb.connect(database)
    except duckdb.Error as exc:
        print(f"cannot open {database!r}: {exc}", file=sys.stderr)
        return 1
    try:
        info = text_index.create(con, table, id_column, column, engine=engine, stopwords=stopwords)
    except (duckdb.Error, text_index.TextIndexError) as exc:
        print(f"no keyword index built: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()
    print(f"{info.engine} BM25 index on {table}.{column}: SELECT * FROM {info.schema}.bm25('words') "
          f"or {info.schema}.match_bm25({id_column}, 'words')")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="knnsql", description="knnsql: vector search inside DuckDB")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, SIMD level, extension path")
    ins = sub.add_parser("install", help="install the extension so LOAD knnsql works by name")
    ins.add_argument("--extension-directory", default=None, help="DuckDB's extension_directory (default: DuckDB's)")
    sh = sub.add_parser("shell", help="the DuckDB CLI with knnsql loaded")
    sh.add_argument("database", nargs="?", default=None)
    ti = sub.add_parser("text-index", help="build a BM25 keyword index SQL clients can query (hybrid search)")
    ti.add_argument("database")
    ti.add_argument("table")
    ti.add_argument("column", help="the text column")
    ti.add_argument("--id", default="id", help="the table's integer key column (default: id)")
    ti.add_argument("--engine", default="auto", choices=["auto", "fts", "sql"])
    ti.add_argument("--stopwords", default="english", choices=["english", "none"])
    args = p.parse_args(argv)
    if args.command == "text-index":
        return _text_index(args.database, args.table, args.column, args.id, args.engine, args.stopwords)
    if args.command == "info":
        return _info()
    if args.command == "install":
        return _install(args.extension_directory)
    return _shell(args.database)
