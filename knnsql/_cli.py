"""The ``knnsql`` command: ``knnsql info``, ``knnsql install``, ``knnsql shell [database]``."""

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


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="knnsql", description="knnsql: vector search inside DuckDB")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, SIMD level, extension path")
    ins = sub.add_parser("install", help="install the extension so LOAD knnsql works by name")
    ins.add_argument("--extension-directory", default=None, help="DuckDB's extension_directory (default: DuckDB's)")
    sh = sub.add_parser("shell", help="the DuckDB CLI with knnsql loaded")
    sh.add_argument("database", nargs="?", default=None)
    args = p.parse_args(argv)
    if args.command == "info":
        return _info()
    if args.command == "install":
        return _install(args.extension_directory)
    return _shell(args.database)
