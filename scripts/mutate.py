"""Mutation testing of the C core: does the test suite notice when an algorithm is broken?

Each mutant (scripts/mutants.json) is one small textual change to one C file: a bound moved by one, a
comparison flipped, a sampling weight or acceptance rule altered, a plan threshold shifted. For each,
this script rebuilds the extension in a scratch copy of the repository (only the changed file is
recompiled) and runs the tests the mutant names; the mutant is *killed* when they fail. The score is
killed / (killed + survived); a mutant that does not compile is reported apart and not scored.
The working tree is never touched.

    python scripts/mutate.py                 # every mutant (~15-25 min on 2 cores)
    python scripts/mutate.py --only W1,F3    # some of them
    python scripts/mutate.py --list          # what they are
    python scripts/mutate.py --markdown      # the result table for docs/RELIABILITY.md
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_mutants(path: Path = ROOT / "scripts" / "mutants.json") -> list[dict]:
    """The mutants, their test groups expanded to test files ("driver" stays: the C driver)."""
    doc = json.loads(path.read_text())
    groups = doc["groups"]
    out = []
    for m in doc["mutants"]:
        tests = []
        for name in m["tests"]:
            tests += groups.get(name, [name])
        out.append(dict(m, tests=tests, why=m.get("why", "")))
    return out


MUTANTS = load_mutants()


def load_build(work: Path):
    spec = importlib.util.spec_from_file_location("knnsql_build", work / "ext" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Scratch:
    """A copy of the tracked files, with one object file per C source so a mutant recompiles one."""

    def __init__(self, root: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="knnsql-mutate-"))
        files = subprocess.run(["git", "ls-files"], cwd=root, check=True, capture_output=True, text=True).stdout.split()
        for rel in files:
            src = root / rel
            if src.is_file():
                dst = self.dir / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
        self.build = load_build(self.dir)
        self.flags = self.build.compile_flags(self.build.duckdb_include_dir())
        self.objdir = self.dir / "_obj"
        self.objdir.mkdir()
        self.sources = self.build.sources()
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
            list(pool.map(self.compile, self.sources))
        (self.dir / "knnsql" / "_cdef.h").write_text(self.build.cffi_cdef())
        self.link()

    def obj(self, src: Path) -> Path:
        return self.objdir / (str(src.relative_to(self.dir / "ext")).replace("/", "__") + ".o")

    def compile(self, src: Path) -> None:
        subprocess.run([*self.flags, "-c", str(src), "-o", str(self.obj(src))], check=True, capture_output=True)

    def link(self) -> None:
        so = self.dir / "_obj" / "knnsql.so"
        subprocess.run([self.flags[0], "-shared", "-o", str(so), *map(str, map(self.obj, self.sources)), "-lm",
                        "-lpthread"], check=True, capture_output=True)
        self.build.write_extension(so, self.dir / "knnsql" / "knnsql.duckdb_extension")

    def recompile(self, path: Path) -> None:
        """After a change to one file: that source, or every source when it is a header."""
        if path.suffix == ".h":
            with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2) as pool:
                list(pool.map(self.compile, self.sources))
        else:
            self.compile(path)
        self.link()

    def run_driver(self, timeout: float) -> tuple[int, str]:
        """tests/core/core_driver.c linked against the (mutated) core objects, and run."""
        exe = self.objdir / "core_driver"
        core = [str(self.obj(s)) for s in self.sources if "/ext/core/" in str(s)]
        try:
            subprocess.run([*self.flags, "-O1", str(self.dir / "tests" / "core" / "core_driver.c"), *core, "-lm",
                            "-lpthread", "-o", str(exe)], check=True, capture_output=True)
        except subprocess.CalledProcessError as exc:
            return 1, "core_driver does not build: " + (exc.stderr or b"").decode()[-120:]
        try:
            out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, "core_driver timeout"
        tail = (out.stdout + out.stderr).strip().splitlines()
        return out.returncode, tail[-1] if tail else "core_driver: no output"

    def run_tests(self, tests: list[str], timeout: float) -> tuple[int, str]:
        if "driver" in tests:
            rc, last = self.run_driver(timeout)
            if rc != 0:
                return rc, last
            tests = [t for t in tests if t != "driver"]
            if not tests:
                return rc, last
        env = dict(os.environ, PYTHONPATH=str(self.dir), KNNSQL_MUTATION="1")
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not slow", *tests]
        try:
            out = subprocess.run(cmd, cwd=self.dir, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return -1, "timeout"
        tail = (out.stdout + out.stderr).strip().splitlines()
        return out.returncode, tail[-1] if tail else ""

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def run(mutants: list, scratch: Scratch) -> list[dict]:
    # the tests must pass on the unmutated build, and import this copy of knnsql
    where = subprocess.run([sys.executable, "-c", "import knnsql; print(knnsql.__file__)"], cwd=scratch.dir,
                           env=dict(os.environ, PYTHONPATH=str(scratch.dir)), capture_output=True, text=True)
    if not where.stdout.strip().startswith(str(scratch.dir)):
        raise SystemExit(f"the scratch copy's knnsql is not the one imported: {where.stdout or where.stderr}")
    suites = sorted({t for m in mutants for t in m["tests"]}, key=lambda t: (t != "driver", t))
    t0 = time.perf_counter()
    rc, last = scratch.run_tests(suites, timeout=1800)
    base = time.perf_counter() - t0
    if rc != 0:
        raise SystemExit(f"the tests fail without any mutant ({last}); fix them first")
    print(f"baseline: {len(suites)} test files pass on the unmutated build ({base:.0f} s)", flush=True)
    results = []
    for m in mutants:
        path = scratch.dir / m["file"]
        text = path.read_text()
        count = text.count(m["find"])
        if count != 1:
            results.append(dict(m, status="stale", detail=f"the text to change occurs {count} times"))
            print(f"{m['id']:>4}  STALE      {m['file']}: the text to change occurs {count} times", flush=True)
            continue
        path.write_text(text.replace(m["find"], m["replace"]))
        t0 = time.perf_counter()
        try:
            try:
                scratch.recompile(path)
            except subprocess.CalledProcessError as exc:
                results.append(dict(m, status="stillborn", detail=(exc.stderr or b"").decode()[-200:]))
                print(f"{m['id']:>4}  STILLBORN  {m['what']}", flush=True)
                continue
            rc, last = scratch.run_tests(m["tests"], timeout=max(300.0, 3 * base))
            status = "survived" if rc == 0 else "killed"
            results.append(dict(m, status=status, detail=last, seconds=round(time.perf_counter() - t0, 1)))
            print(f"{m['id']:>4}  {status.upper():<9}  {m['what']}  ({last}; {time.perf_counter() - t0:.0f} s)",
                  flush=True)
        finally:
            path.write_text(text)
            scratch.recompile(path)
    return results


def score(results: list[dict]) -> tuple[int, int, float]:
    killed = sum(r["status"] == "killed" for r in results)
    survived = sum(r["status"] == "survived" for r in results)
    return killed, survived, killed / max(1, killed + survived)


def markdown(results: list[dict]) -> str:
    killed, survived, s = score(results)
    lines = [f"Mutation score {s:.1%}: {killed} killed, {survived} survived"
             + "".join(f", {sum(r['status'] == k for r in results)} {k}" for k in ("stillborn", "stale")
                       if any(r["status"] == k for r in results)) + ".", "",
             "| id | area | mutant | file | status | note |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        note = r.get("why", "") if r["status"] == "survived" else r.get("detail", "")
        lines.append(f"| {r['id']} | {r['area']} | {r['what']} | `{r['file'].split('/')[-1]}` | {r['status']} | "
                     f"{note.replace('|', '/')} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="comma-separated mutant ids")
    p.add_argument("--list", action="store_true", help="list the mutants and stop")
    p.add_argument("--markdown", action="store_true", help="print the result table as markdown")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    mutants = MUTANTS
    if args.only:
        keep = set(args.only.split(","))
        mutants = [m for m in MUTANTS if m["id"] in keep]
    if args.list:
        for m in mutants:
            print(f"{m['id']:>4}  {m['area']:<10} {m['file']}: {m['what']}")
        return
    scratch = Scratch(ROOT)
    try:
        results = run(mutants, scratch)
    finally:
        scratch.close()
    killed, survived, s = score(results)
    print(f"\nmutation score {s:.1%}: {killed} killed, {survived} survived, "
          f"{sum(r['status'] == 'stillborn' for r in results)} stillborn, {sum(r['status'] == 'stale' for r in results)} stale")
    for r in results:
        if r["status"] == "survived":
            print(f"  survived {r['id']}: {r['what']}" + (f" -- {r['why']}" if r.get("why") else ""))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        print()
        print(markdown(results))


if __name__ == "__main__":
    main()
