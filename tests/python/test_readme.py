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
