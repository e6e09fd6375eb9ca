"""Loading paths: knnsql.connect, knnsql.load into a user's connection, extension_path, versions."""

import os

import duckdb
import pytest

import knnsql


def test_connect_loads_extension_and_exposes_duckdb():
    with knnsql.connect() as db:
        assert isinstance(db.con, duckdb.DuckDBPyConnection)
        text = db.execute("SELECT knn_debug()").fetchall()[0][0]
        assert text.startswith(f"knnsql {knnsql.__version__}; duckdb_c_api v1.2.0; simd ")
        # unknown attributes pass through to the DuckDB connection
        assert db.execute("SELECT 42").fetchall()[0] == (42,)
        assert db.sql("SELECT 1 AS x").fetchall() == [(1,)]


def test_connect_file_with_config(tmp_path):
    path = tmp_path / "a.duckdb"
    with knnsql.connect(path, threads=1) as db:
        assert db.execute("SELECT current_setting('threads')").fetchall()[0][0] == 1
        db.execute("CREATE TABLE t AS SELECT 1 AS id, [1, 2]::FLOAT[2] AS v")
    with knnsql.connect(str(path)) as db:
        res = db.execute("SELECT knn_exact(id, v, [1, 2]::FLOAT[2], 1) FROM t").fetchall()[0][0]
        assert res == [{"id": 1, "distance": 0.0}]


def test_load_into_user_connection():
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    assert knnsql.load(con) is con
    assert con.execute("SELECT knn_debug()").fetchall()[0][0].startswith("knnsql")


def test_load_without_unsigned_permission_explains_the_fix():
    con = duckdb.connect()
    with pytest.raises(RuntimeError, match="allow_unsigned_extensions"):
        knnsql.load(con)


def test_extension_path_is_loadable_file():
    path = knnsql.extension_path()
    assert os.path.isfile(path) and path.endswith("knnsql.duckdb_extension")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{path}'")
    assert con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name LIKE 'knn%'").fetchall()[0][0] >= 3


# kNN analytics (sql/reference/knn_analytics.md)
ANALYTICS = {"knn_predict", "knn_impute", "knn_smote", "knn_lid", "knn_lid_estimate", "knn_divergence",
             "knn_precision_recall", "knn_iid_test", "knn_iid_scores", "knn_importance_sample", "knn_density_sample", "knn_recall",
             "knn_depth", "knn_depth_test", "knn_entropy", "knn_kde", "knn_prototype", "knn_interpolate"}


def test_api_surface():
    """Every SQL function knnsql registers, listed once (a new function must be added here and documented)."""
    with knnsql.connect() as db:
        names = {r[0] for r in db.execute(
            "SELECT DISTINCT function_name FROM duckdb_functions() WHERE function_name LIKE 'knn%'").fetchall()}
    # every function has a reference page that runs as a test
    from pathlib import Path
    docs = Path(__file__).resolve().parents[2] / "sql" / "reference"
    documented = {p.stem for p in docs.glob("*.md")}
    missing = {n for n in names if not any(n in (docs / f"{d}.md").read_text() for d in documented)}
    assert not missing, f"functions without a reference page: {sorted(missing)}"
    assert names == {"knn_debug", "knn_exact", "knn_exact_join", "knn_index_create", "knn_index_drop",
                     "knn_index_optimize", "knn_indexes", "knn_index_ids", "knn_index_insert", "knn_index_delete", "knn_index_recall", "knn_index_tune",
                     "knn_index_dump", "knn_index_restore", "knn_index_restore_vectors", "knn_search", "knn", "knn_among", "knn_among_join",
                     "knn_sample_agg", "knn_sample_weighted", "knn_sample", "knn_registry_handle"} | ANALYTICS


def test_versions_agree():
    assert knnsql.debug()["version"] == knnsql.__version__


def test_simd_env_caps_level(monkeypatch):
    monkeypatch.setenv("KNNSQL_SIMD", "scalar")
    assert knnsql.debug()["simd"] == "scalar"
    with knnsql.connect() as db:
        assert "simd scalar" in db.execute("SELECT knn_debug()").fetchall()[0][0]


def test_core_is_independent_of_duckdb_and_python():
    """House rule: only ext/duckdb sees DuckDB's headers; the core includes libc and its own files."""
    from pathlib import Path
    import re

    core = Path(__file__).resolve().parents[2] / "ext" / "core"
    for path in core.rglob("*.[ch]"):
        for line in path.read_text().splitlines():
            m = re.match(r'\s*#\s*include\s*[<"]([^>"]+)[>"]', line)
            if m:
                assert not re.search(r"duckdb|Python", m.group(1)), f"{path.name} includes {m.group(1)}"
