"""Security review of the Python layer, as tests: the extension that gets loaded is the package's own
file, its path cannot inject SQL into LOAD, and names given to SQL functions are data, never SQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

import knnsql
from knnsql import _ffi


def test_extension_path_is_the_packages_own_file(monkeypatch, tmp_path):
    path = Path(knnsql.extension_path())
    assert path.parent == Path(knnsql.__file__).resolve().parent and path.is_file()
    # neither the working directory nor the environment can substitute another file
    (tmp_path / "knnsql.duckdb_extension").write_bytes(b"not an extension")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KNNSQL_EXTENSION", str(tmp_path / "knnsql.duckdb_extension"))
    monkeypatch.setenv("LD_LIBRARY_PATH", str(tmp_path))
    assert Path(knnsql.extension_path()) == path


def test_a_quote_in_the_install_path_cannot_inject_sql(monkeypatch, tmp_path):
    evil = tmp_path / "it's'; CREATE TABLE pwned(x INT); --"
    evil.mkdir()
    shutil.copy(knnsql.extension_path(), evil / "knnsql.duckdb_extension")
    monkeypatch.setattr(_ffi, "_PACKAGE", evil)
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    try:
        knnsql.load(con)  # the quoted path is one string literal: it loads, and nothing else runs
        assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'pwned'").fetchone()[0] == 0
        assert con.execute("SELECT knn_debug() IS NOT NULL").fetchone()[0]
    finally:
        con.close()


@pytest.mark.parametrize("name", ["x'); DROP TABLE t; --", "a\"b", "é 名前", "semi;colon", "back\\slash"])
def test_index_names_are_data(db, name):
    db.execute("CREATE TABLE t AS SELECT i AS id, [i, 1]::FLOAT[2] AS emb FROM range(10) r(i)")
    literal = "'" + name.replace("'", "''") + "'"
    db.execute(f"SELECT * FROM knn_index_create({literal}, dim := 2)")
    assert db.execute("SELECT knn_index_insert($n, id, emb) FROM t", {"n": name}).fetchone()[0] == 10
    assert db.execute("SELECT name FROM knn_indexes()").fetchall() == [(name,)]
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 10  # the table is untouched
    db.execute(f"CREATE TABLE d AS SELECT * FROM knn_index_dump({literal})")
    db.execute(f"SELECT * FROM knn_index_drop({literal})")
    assert db.execute("SELECT knn_index_restore($n, part, bytes) FROM d", {"n": name}).fetchone()[0] == 10


def test_overlong_names_are_refused_with_the_limit(db):
    with pytest.raises(duckdb.Error, match="index name is 129 bytes; the limit is 128"):
        db.execute(f"SELECT * FROM knn_index_create('{'n' * 129}', dim := 2)")


def test_where_filter_oracle_smoke():
    """The fuzz/fuzz_where.py oracle over 2,000 random splices of hostile SQL fragments (the
    coverage-guided run is scripts/fuzz.sh where)."""
    import sys

    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuzz"))
    import fuzz_where

    rng = np.random.default_rng(11)
    accepted = 0
    for _ in range(2000):
        text = fuzz_where.splice(rng)
        try:
            fuzz_where.parse_filter(text, fuzz_where.COLUMNS)
            accepted += 1
        except fuzz_where.FilterError:
            pass
        fuzz_where.check(text)
    assert accepted > 20      # the splices do reach the accepting paths


def test_sql_helpers_refuse_statements_in_where(tmp_path):
    """knnsql.sampling.sample and the knnsql.analytics SQL helpers take a where condition: it must be
    one expression, never a second statement or a subquery."""
    from knnsql import analytics, sampling
    from knnsql._sql import FilterError

    with knnsql.connect() as db:
        db.execute("CREATE TABLE pts AS SELECT i AS id, [i, i % 3]::FLOAT[2] AS emb, i % 2 AS y FROM range(50) r(i)")
        for where in ["1=1; DROP TABLE pts", "id IN (SELECT id FROM pts)"]:
            with pytest.raises(FilterError):
                sampling.sample(db, "pts", 3, where=where)
            with pytest.raises(FilterError):
                analytics.sql_smote(db, "pts", 3, where=where)
        assert db.execute("SELECT count(*) FROM pts").fetchone()[0] == 50
        assert len(sampling.sample(db, "pts", 3, where="y = 1")) == 3
