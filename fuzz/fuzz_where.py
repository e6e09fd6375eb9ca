"""Coverage-guided fuzzing (atheris) of the Python ``where`` path: ``knnsql._sql.parse_filter`` and the
search/delete statements built around it.

Each input is either raw text or a splice of SQL fragments (quotes, comments, semicolons, keywords,
subqueries, function calls, column names). The oracle:

- ``parse_filter`` either raises ``FilterError`` or returns an expression;
- an accepted expression renders to SQL that sqlglot parses back as exactly one expression, with no
  statement, subquery, table, parameter or file-reading node and only the table's own columns;
- running ``SELECT count(*) FROM canary WHERE <rendered>`` either succeeds or raises a
  ``duckdb.Error`` (a type error, say), and afterwards the canary table and a second table the
  filter must not reach are unchanged, and no other table exists.

Run: ``bash scripts/fuzz.sh where 60`` (or ``python fuzz/fuzz_where.py -atheris_runs=N``).
"""

from __future__ import annotations

import contextlib
import sys

try:
    import atheris
except ImportError:          # the oracle also runs without atheris (tests/reliability/test_security.py)
    atheris = None

with (atheris.instrument_imports() if atheris else contextlib.nullcontext()):
    import sqlglot
    from sqlglot import exp

    from knnsql._sql import DIALECT, FilterError, parse_filter, render

import duckdb

COLUMNS = ["id", "lang", "price", "ts"]
FRAGMENTS = ["lang", "price", "id", "ts", "secret", "canary.id", "'en'", "''", "'", "\"", "--", "/*", "*/",
             ";", "DROP TABLE canary", "SELECT 1", "(SELECT id FROM hidden)", "UNION", "OR", "AND", "NOT",
             "1=1", "=", "<", ">=", "IN (1, 2)", "BETWEEN 1 AND 3", "LIKE 'e%'", "IS NULL", "(", ")", ",",
             "abs(price)", "nextval('s')", "getenv('HOME')", "read_csv('x')", "current_setting('threads')",
             "count(*)", "$1", "?", "lambda x: x", "[1, 2]", "{'a': 1}", "CAST(price AS INT)", "price::INT",
             "0x10", "1e309", "NULL", "TRUE", "ATTACH 'x'", "COPY canary TO 'x'", "PRAGMA version",
             "regexp_matches(lang, 'e')", "list_contains([1], id)", "ts > TIMESTAMP '2024-01-01'"]
FORBIDDEN = (exp.Query, exp.Subquery, exp.Table, exp.Placeholder, exp.Parameter, exp.DDL, exp.DML,
             exp.Command)


def _setup() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE canary (id BIGINT, lang VARCHAR, price DOUBLE, ts TIMESTAMP)")
    con.execute("INSERT INTO canary VALUES (1, 'en', 3.5, TIMESTAMP '2024-01-02'), (2, 'de', 7, NULL)")
    con.execute("CREATE TABLE hidden (id BIGINT, secret VARCHAR)")
    con.execute("INSERT INTO hidden VALUES (9, 's3cret')")
    con.execute("CREATE SEQUENCE s")
    return con


CON = _setup()
SNAPSHOT = (CON.execute("SELECT * FROM canary ORDER BY id").fetchall(),
            CON.execute("SELECT * FROM hidden").fetchall())


def splice(rng) -> str:
    """A random splice of fragments (for the unguided smoke run in the tests)."""
    return " ".join(FRAGMENTS[i] for i in rng.integers(0, len(FRAGMENTS), rng.integers(1, 9)))


def _text(data: bytes) -> str:
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        return fdp.ConsumeUnicodeNoSurrogates(200)
    parts = [FRAGMENTS[fdp.ConsumeIntInRange(0, len(FRAGMENTS) - 1)] for _ in range(fdp.ConsumeIntInRange(1, 8))]
    return " ".join(parts)


def check(text: str) -> None:
    try:
        tree = parse_filter(text, COLUMNS)
    except FilterError:
        return
    sql = render(tree)
    again = [t for t in sqlglot.parse(sql, dialect=DIALECT) if t is not None]
    assert len(again) == 1, (text, sql)
    for node in again[0].walk():
        assert not isinstance(node, FORBIDDEN), (text, sql, type(node).__name__)
        if isinstance(node, exp.Column):
            assert node.name in COLUMNS and not node.table, (text, sql)
    try:
        CON.execute(f"SELECT count(*) FROM canary WHERE {sql}").fetchall()
    except duckdb.Error:
        pass
    assert (CON.execute("SELECT * FROM canary ORDER BY id").fetchall(),
            CON.execute("SELECT * FROM hidden").fetchall()) == SNAPSHOT, (text, sql)
    tables = {r[0] for r in CON.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert tables == {"canary", "hidden"}, (text, sql, tables)
    used = CON.execute("SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 's'").fetchall()
    assert used == [(None,)], (text, sql, used)   # no accepted filter advanced a sequence


def TestOneInput(data: bytes) -> None:
    check(_text(data))


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
