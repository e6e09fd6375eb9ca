"""README and CI agree: .ci/run runs exactly the README's two commands."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_readme_commands():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ["pip install . && python examples/quickstart.py", "pip install '.[test]' && pytest -q"]:
        assert command in readme, command
        assert command in ci, command


def test_quickstart_example_runs():
    import runpy

    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
