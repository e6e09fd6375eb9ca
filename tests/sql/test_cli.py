"""SQL-only use: the real DuckDB command-line client (PyPI duckdb-cli, a 1.5.x release) loads the file."""

import os
import shutil
import subprocess
import sys

import pytest

import knnsql


def duckdb_cli():
    here = os.path.dirname(sys.executable)
    return shutil.which("duckdb", path=here + os.pathsep + os.environ.get("PATH", ""))


def run_cli(sql, script=False):
    """Runs sql with -c (stops at the first error) or, with script=True, fed on standard input."""
    exe = duckdb_cli()
    if exe is None:
        pytest.fail("the DuckDB CLI is missing: pip install duckdb-cli (it is in the test extras)")
    if script:
        return subprocess.run([exe, "-unsigned", "-csv"], input=sql, capture_output=True, text=True, timeout=120)
    return subprocess.run([exe, "-unsigned", "-csv", "-c", sql], capture_output=True, text=True, timeout=120)


def test_cli_loads_extension_and_runs_knn_exact():
    path = knnsql.extension_path()
    out = run_cli(f"""LOAD '{path}';
        SELECT version() AS v;
        CREATE TABLE t AS SELECT i AS id, [i, i * 2]::FLOAT[2] AS vec FROM range(1000) r(i);
        SELECT r.id, r.distance FROM (SELECT unnest(knn_exact(id, vec, [10, 20]::FLOAT[2], 3)) AS r FROM t);""")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    version = lines[1]
    assert version.startswith("v1."), f"expected a 1.x CLI, got {version}"
    assert lines[-3:] == ["10,0.0", "9,5.0", "11,5.0"]


def test_cli_reports_errors_without_crashing():
    path = knnsql.extension_path()
    out = run_cli(f"""LOAD '{path}';
        SELECT knn_exact(1, [1, 2]::FLOAT[2], [1]::FLOAT[1], 3);
        SELECT 'still alive';""", script=True)
    assert "dimension mismatch" in out.stderr
    assert "still alive" in out.stdout
