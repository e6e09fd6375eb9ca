"""Build hook: compiles the DuckDB extension (ext/build.py) into the knnsql package."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

ROOT = Path(__file__).resolve().parent


def _ext_build():
    spec = importlib.util.spec_from_file_location("knnsql_ext_build", ROOT / "ext" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithExtension(build_py):
    """Runs the normal build_py, then builds knnsql.duckdb_extension and the cffi declarations."""

    def run(self):
        super().run()
        ext = _ext_build()
        targets = [Path(self.build_lib) / "knnsql"]
        if getattr(self, "editable_mode", False):
            targets = [ROOT / "knnsql"]
        for target in targets:
            ext.build(target / "knnsql.duckdb_extension")
            (target / "_cdef.h").write_text(ext.cffi_cdef())


class BinaryDistribution(Distribution):
    """The wheel carries a compiled file, so it is platform-specific."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildPyWithExtension}, distclass=BinaryDistribution)
