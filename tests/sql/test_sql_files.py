"""The SQL docs execute: sql/test/*.test (sqllogictest subset) and every example in sql/reference/*.md."""

import re
from pathlib import Path

import duckdb
import pytest

import knnsql

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def render(con, sql):
    """Runs a query and renders rows as tab-separated text, values as DuckDB casts them to VARCHAR."""
    sql = sql.strip().rstrip(";")
    rel = con.execute(f"SELECT COLUMNS(*)::VARCHAR FROM ({sql})").fetchall()
    return ["\t".join("NULL" if v is None else v for v in row) for row in rel]


def parse_test(path):
    """Yields (kind, sql, expected_lines, line_no) records of a sqllogictest file."""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if not line or line.startswith("#") or line.startswith("require"):
            i += 1
            continue
        start = i + 1
        head = line.split()
        i += 1
        body = []
        while i < len(lines) and lines[i].strip() and lines[i].strip() != "----":
            body.append(lines[i])
            i += 1
        expected = []
        if i < len(lines) and lines[i].strip() == "----":
            i += 1
            while i < len(lines) and lines[i].strip():
                expected.append(lines[i])
                i += 1
        yield head, "\n".join(body), expected, start


TEST_FILES = sorted((SQL_DIR / "test").glob("*.test"))


@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_sqllogictest_file(path):
    assert TEST_FILES, "no sql/test files found"
    with knnsql.connect() as db:
        for head, sql, expected, line in parse_test(path):
            where = f"{path.name}:{line}"
            if head[:2] == ["statement", "ok"]:
                db.execute(sql).fetchall()
            elif head[:2] == ["statement", "error"]:
                with pytest.raises(duckdb.Error) as err:
                    db.execute(sql).fetchall()
                assert "\n".join(expected) in str(err.value), where
            elif head[0] == "query":
                got = render(db.con, sql)
                if "rowsort" in head:
                    got, expected = sorted(got), sorted(expected)
                assert got == expected, where
            else:
                raise AssertionError(f"{where}: unknown record {head}")


DOC_FILES = sorted((SQL_DIR / "reference").glob("*.md"))
BLOCK = re.compile(r"```(sql|text)\n(.*?)```|<!-- test-(setup): (.*?) -->", re.S)


def split_statements(sql):
    return [s.strip() for s in sql.split(";\n") if s.strip()]


def doc_setup(db, words):
    """A page's setup step outside SQL: ``text_index <table> <id> <column>`` builds knnsql's BM25 index as
    ``knnsql text-index`` does from a shell (no SQL statement can)."""
    from knnsql import text_index

    assert words[0] == "text_index", words
    text_index.create(db.con, *words[1:4], engine="sql")


@pytest.mark.parametrize("path", DOC_FILES, ids=[p.name for p in DOC_FILES])
def test_reference_examples_run(path):
    from knnsql import text_index

    blocks = [(kind or setup, text if kind else words) for kind, text, setup, words in BLOCK.findall(path.read_text())]
    assert any(kind == "sql" for kind, _ in blocks), f"{path.name} has no runnable example"
    with knnsql.connect() as db:
        for i, (kind, text) in enumerate(blocks):
            if kind == "setup":
                doc_setup(db, text.split())
                continue
            if kind != "sql":
                assert i > 0 and blocks[i - 1][0] == "sql", f"{path.name}: a text block must follow an sql block"
                continue
            if "create_fts_index" in text and not text_index.load_fts(db.con):
                return  # the rest of the page needs DuckDB's fts (CI runs it where fts loads)
            statements = split_statements(text)
            shows_result = i + 1 < len(blocks) and blocks[i + 1][0] == "text"
            for stmt in statements[:-1] if shows_result else statements:
                db.execute(stmt).fetchall()
            if shows_result:  # run the last statement once, rendered, and compare
                expected = blocks[i + 1][1].strip("\n").splitlines()
                assert render(db.con, statements[-1]) == expected, f"{path.name}: {statements[-1][:60]}"
