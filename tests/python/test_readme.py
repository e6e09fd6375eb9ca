"""README and CI agree: .ci/run runs exactly the README's two commands."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ["pip install . && python examples/quickstart.py", "pip install '.[test]' && pytest -q"]:
        assert command in readme, command
        assert command in ci, command


def test_quickstart_example_runs():
    import runpy

    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")


def test_readme_dataframe_example_runs(tmp_path, monkeypatch):
    """The README's DataFrame-to-windowed-search example, run as written."""
    import re

    import numpy as np
    import pytest

    pytest.importorskip("pandas")
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python: vector tables", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip() and not line.startswith("db.close")]) <= 10
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    hits = scope["hits"]
    assert len(hits) == 10 and set(hits["lang"]) == {"en"}
    assert hits["ts"].min() >= np.datetime64("2024-01-05") and hits["ts"].max() <= np.datetime64("2024-01-20")
    assert list(hits["distance"]) == sorted(hits["distance"])


def test_vector_tables_example_runs():
    import runpy

    import pytest

    pytest.importorskip("pandas")
    runpy.run_path(str(ROOT / "examples" / "vector_tables.py"), run_name="__main__")


def test_curation_example_runs():
    import runpy

    import pytest

    pytest.importorskip("pandas")
    runpy.run_path(str(ROOT / "examples" / "curation.py"), run_name="__main__")


def _blocks(text: str, lang: str) -> list:
    import re

    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_readme_sql_block_runs_statement_by_statement():
    """Every statement of the README's SQL block, in order, in a fresh database (the LOAD line pointed at
    the built extension): a user pasting it into the DuckDB CLI sees no error."""
    import duckdb

    import knnsql

    blocks = _blocks((ROOT / "README.md").read_text(), "sql")
    assert blocks, "README.md has no SQL block"
    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    try:
        for block in blocks:
            text = block.replace("/path/to/knnsql.duckdb_extension", knnsql.extension_path().replace("'", "''"))
            statements = [s.strip() for s in text.split(";\n") if s.strip()]
            ran = 0
            for stmt in statements:
                code = "\n".join(line for line in stmt.splitlines() if not line.lstrip().startswith("--")).strip()
                if not code:
                    continue
                con.execute(code.rstrip(";")).fetchall()
                ran += 1
            assert ran >= 10
        hits = con.execute("SELECT id, lang FROM knn_search('docs_f', [0.6, 0.8], k := 5, attributes := true, "
                           "filter := 'lang IN (''en'', ''fr'') AND ts < ''2024-03-05''')").fetchall()
        assert len(hits) == 5 and {lang for _, lang in hits} <= {"en", "fr"}
        assert con.execute("SELECT count(*) FROM knn_search('docs_emb', [0.6, 0.8], k := 5)").fetchone()[0] == 5
    finally:
        con.close()


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    """The README's Python blocks run one after another, as a reader would paste them, in one session."""
    import pytest

    pytest.importorskip("pandas")
    blocks = _blocks((ROOT / "README.md").read_text(), "python")
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {i + 1}", "exec"), scope)
    assert len(scope["rows"]) == 10
    assert scope["ids"].shape[-1] == 10 and set(scope["ids"].ravel()) <= set(range(1000, 2001))  # the window
