"""Builds the loadable DuckDB extension file ``knnsql.duckdb_extension``.

Steps: find DuckDB's C extension headers (``KNNSQL_DUCKDB_INCLUDE``, a per-user cache, or the
``duckdb`` source distribution fetched with pip), compile ext/core and ext/duckdb into one shared
object, then append the metadata trailer DuckDB checks on ``LOAD``. Python loads the same file with
cffi (ABI mode), so SQL and numpy run one core.

Run directly for development::

    python ext/build.py knnsql/knnsql.duckdb_extension
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

EXT_DIR = Path(__file__).resolve().parent
# Headers of this DuckDB release declare the stable C extension API v1.2.0 we target.
HEADERS_FROM = "1.3.2"
C_API_VERSION = "v1.2.0"
HEADERS = ("duckdb.h", "duckdb_extension.h")


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "knnsql" / f"duckdb-{HEADERS_FROM}-include"


def duckdb_include_dir() -> Path:
    """Directory holding duckdb.h and duckdb_extension.h, fetching them once if needed."""
    override = os.environ.get("KNNSQL_DUCKDB_INCLUDE")
    if override:
        path = Path(override)
        missing = [h for h in HEADERS if not (path / h).is_file()]
        if missing:
            raise RuntimeError(f"KNNSQL_DUCKDB_INCLUDE={override} lacks {', '.join(missing)}")
        return path
    cache = _cache_dir()
    if all((cache / h).is_file() for h in HEADERS):
        return cache
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"duckdb=={HEADERS_FROM}", "-d", tmp, "-q"]
        try:
            subprocess.run(cmd, check=True)
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            raise RuntimeError(
                "could not fetch DuckDB's C headers with pip (duckdb source distribution "
                f"{HEADERS_FROM}); set KNNSQL_DUCKDB_INCLUDE to a directory holding "
                "duckdb.h and duckdb_extension.h") from exc
        archive = next(Path(tmp).glob("duckdb-*.tar.gz"))
        staging = Path(tmp) / "include"
        staging.mkdir()
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in HEADERS and member.name.endswith(f"src/include/{name}"):
                    src = tar.extractfile(member)
                    assert src is not None
                    (staging / name).write_bytes(src.read())
        missing = [h for h in HEADERS if not (staging / h).is_file()]
        if missing:
            raise RuntimeError(f"duckdb {HEADERS_FROM} source distribution lacks {', '.join(missing)}")
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp_cache = Path(tempfile.mkdtemp(dir=cache.parent))
        for h in HEADERS:
            shutil.copy(staging / h, tmp_cache / h)
        if cache.exists():
            shutil.rmtree(tmp_cache)
        else:
            os.replace(tmp_cache, cache)
    return cache


def duckdb_platform() -> str:
    """Platform string as DuckDB's ``PRAGMA platform`` prints it."""
    override = os.environ.get("KNNSQL_DUCKDB_PLATFORM")
    if override:
        return override
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    system = {"linux": "linux", "darwin": "osx", "windows": "windows"}.get(sys.platform.rstrip("0123456789"),
                                                                          sys.platform)
    return f"{system}_{arch}"


def metadata_trailer(version: str, plat: str) -> bytes:
    """The signature section DuckDB reads from the end of an extension file."""
    def field(text: str) -> bytes:
        raw = text.encode()
        if len(raw) > 32:
            raise ValueError(f"extension metadata field too long: {text!r}")
        return raw.ljust(32, b"\0")

    fields = ["", "", "", "C_STRUCT", version, C_API_VERSION, plat, "4"]
    out = b"\x00\x93\x04\x10" + b"duckdb_signature" + b"\x80\x04"
    out += b"".join(field(f) for f in fields)
    out += b"\0" * 256
    return out


def sources() -> list[Path]:
    files = sorted((EXT_DIR / "core").rglob("*.c")) + sorted((EXT_DIR / "duckdb").glob("*.c"))
    return files


def version() -> str:
    text = (EXT_DIR / "core" / "base" / "knn_version.h").read_text()
    return text.split('KNN_VERSION "')[1].split('"')[0]


def compile_flags(include: Path) -> list[str]:
    """The compiler, then its flags for every source (scripts/mutate.py compiles with the same)."""
    cc = os.environ.get("CC", "cc")
    extra = os.environ.get("KNNSQL_CFLAGS", "").split()
    return [cc, "-std=c11", "-O3", "-fPIC", "-Wall", "-Wextra", "-Werror=implicit-function-declaration",
            "-D_POSIX_C_SOURCE=200809L", f"-I{EXT_DIR / 'core'}", f"-I{EXT_DIR / 'duckdb'}", f"-I{include}", *extra]


def write_extension(so: Path, out: Path) -> Path:
    """The shared object plus DuckDB's metadata trailer, written to ``out`` atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    data = so.read_bytes() + metadata_trailer(version(), duckdb_platform())
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_bytes(data)
    os.replace(tmp_out, out)
    return out


def build(out: Path, include: Path | None = None) -> Path:
    """Compiles and writes the extension file to ``out``; returns ``out``."""
    include = include or duckdb_include_dir()
    with tempfile.TemporaryDirectory() as tmp:
        so = Path(tmp) / "knnsql.so"
        cmd = [*compile_flags(include), "-shared", "-o", str(so), *map(str, sources()), "-lm", "-lpthread"]
        subprocess.run(cmd, check=True)
        return write_extension(so, out)


def cffi_cdef(header: str = "knn_api.h", seen: set | None = None) -> str:
    """The cffi declarations of the public header: its cffi blocks (between the cffi markers) and, where
    it includes another header of the core, that header's blocks, in the order the text names them."""
    seen = set() if seen is None else seen
    if header in seen:
        return ""
    seen.add(header)
    parts = []
    inside = False
    for line in (EXT_DIR / "core" / header).read_text().splitlines(keepends=True):
        if "/* cffi-begin */" in line:
            inside = True
        elif "/* cffi-end */" in line:
            inside = False
        elif inside:
            parts.append(line)
        else:
            m = re.match(r'\s*#\s*include\s+"([^"]+)"', line)
            if m and (EXT_DIR / "core" / m.group(1)).is_file():
                parts.append(cffi_cdef(m.group(1), seen))
    return "".join(parts)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else EXT_DIR.parent / "knnsql" / "knnsql.duckdb_extension")
    build(target)
    (target.parent / "_cdef.h").write_text(cffi_cdef())
    print(target)
