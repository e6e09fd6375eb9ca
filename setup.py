"""Build hook: compiles the DuckDB extension (ext/build.py) into the knnsql package."""

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

try:  # setuptools >= 70.1 carries bdist_wheel; older ones use the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover
    from wheel.bdist_wheel import bdist_wheel

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


class PlatformWheel(bdist_wheel):
    """Tags the wheel py3-none-<platform>: one wheel per platform serves every Python 3.

    The compiled file is not a CPython extension module: DuckDB loads it through DuckDB's C extension API
    (any DuckDB >= the API version it targets), and Python opens it with cffi in ABI mode (dlopen, no
    libpython symbols, no Python headers at build time). So it depends on the OS and CPU (platform tag) but
    on neither the Python version nor its ABI; a cp3X-cp3X tag would force one identical wheel per Python."""

    def get_tag(self):
        _, _, plat = super().get_tag()
        return "py3", "none", plat


setup(cmdclass={"build_py": BuildPyWithExtension, "bdist_wheel": PlatformWheel}, distclass=BinaryDistribution)
