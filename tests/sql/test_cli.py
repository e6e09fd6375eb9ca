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


def test_install_makes_load_by_name_work_in_python_and_the_cli(tmp_path):
    """knnsql.install() puts the file in DuckDB's extension folder of this Python's DuckDB and of the CLI's
    version; then `LOAD knnsql` (no path) works in both, with unsigned extensions allowed."""
    import duckdb

    ext = str(tmp_path / "ext")
    done = knnsql.install(extension_directory=ext)
    assert len(done) == 2 and all(p.startswith(ext) and os.path.isfile(p) for p in done.values())
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "extension_directory": ext})
    con.execute("LOAD knnsql")
    assert con.execute("SELECT count(*) FROM knn_indexes()").fetchall() == [(0,)]
    out = run_cli(f"SET extension_directory = '{ext}'; LOAD knnsql; SELECT count(*) FROM knn_indexes();")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0"


def test_knnsql_command_prints_info_and_installs(tmp_path):
    # run from elsewhere: in the repository the source folder would shadow the installed package
    info = subprocess.run([sys.executable, "-m", "knnsql", "info"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "knnsql " in info.stdout and "SIMD " in info.stdout and knnsql.extension_path() in info.stdout
    ins = subprocess.run([sys.executable, "-m", "knnsql", "install", "--extension-directory", str(tmp_path / "ext")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert ins.returncode == 0, ins.stderr
    assert "LOAD knnsql now works by name" in ins.stdout and "-unsigned" in ins.stdout
