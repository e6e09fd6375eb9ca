"""Benchmark suites. Every module here not starting with "_" is a suite named after the module.

A suite module provides:

    NAME: str                       # = module name; `python benchmarks/run.py NAME`
    SUMMARY: str                    # one line for `run.py --help` / `run.py list`
    DEFAULT_DATASETS: list[str]     # used when --datasets is not given (may be [])
    add_arguments(parser)           # optional: suite-specific command-line options
    run(args) -> dict               # does the work; returns JSON-serialisable results
    to_markdown(doc) -> str         # Markdown report from the full results document
    plot(doc, outdir) -> list[str]  # optional: writes PNGs (matplotlib may be missing: return [])

run.py adds the common options (--quick, --repeats, --datasets, --skip-missing, --out, --no-plots) and
writes results/<suite>.json (document: suite, command, times, machine info, results) and
results/<suite>.md.
"""

import importlib
import pkgutil
from pathlib import Path


def available() -> dict:
    """name -> module path (not imported), for every suite module in this folder."""
    here = Path(__file__).resolve().parent
    return {m.name: f"suites.{m.name}" for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")}


def load(name: str):
    mods = available()
    if name not in mods:
        raise KeyError(name)
    return importlib.import_module(mods[name])
