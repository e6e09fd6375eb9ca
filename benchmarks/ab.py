#!/usr/bin/env python
"""Interleaved A/B of the benchmark suites between two revisions of knnsql: only the library differs.

Each side is a copy of one revision outside the repository (``git archive REV``, or for ``WORKTREE`` the
working tree's tracked and untracked, not ignored, files), with its extension built by that copy's own
``python ext/build.py <copy>/knnsql/knnsql.duckdb_extension`` (which writes ``_cdef.h`` beside it). The
suites run from one copy of the *working tree's* benchmarks/ for both sides, as subprocesses whose
PYTHONPATH is the side's copy (each run prints the ``knnsql.__file__`` it imported; the harness stops if
it is not the side's). Runs alternate A, B, A, B, ... round after round (within a round: every suite, A
then B), each writing its JSON to a temporary folder (``--out``). The table gives per cell (dataset and
parameters) the median QPS of A and of B over the rounds, B / A, and the median recall of each side.

    python benchmarks/ab.py                                   # 5ff316e vs the working tree, ann+window+api
    python benchmarks/ab.py --base HEAD~3 --head HEAD --suites ann --rounds 5
    python benchmarks/ab.py --suite-args "ann=--quick --datasets glove" --out benchmarks/results/x-ab.md

The default suite options (``DEFAULT_ARGS``) and four rounds keep the whole A/B of the three suites near
20 minutes on 2 cores; ``--suite-args SUITE=ARGS`` replaces a suite's. Rows marked *(peer)* run no knnsql
code (hnswlib, numpy, plain DuckDB SQL): their B / A is the noise of the machine over the same runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKTREE = "WORKTREE"
DEFAULT_BASE = "5ff316e"
SUITES = ("ann", "window", "api")
DEFAULT_ARGS = {  # ~1 min a run each on 2 cores: four rounds of the three suites take ~20 min
    "ann": "--quick --datasets glove,fashion --contenders hnswlib --no-vss --queries 1000 --repeats 3 --sql-queries 200",
    "window": "--quick --datasets glove,fashion,adversarial --rows 30000 --plain-graph none --queries 200 "
              "--cell-budget 0.15 --repeats 3 --methods knnsql,knnsql_ffi,prefilter_flat,prefilter_slice,postfilter,"
              "knnsql_sql,knnsql_sql_batch",
    "api": "--quick --queries 40 --duck-queries 10",
}
# the child: reports which knnsql it imported, then runs benchmarks/run.py as its own main
CHILD = ("import runpy, sys, knnsql; print('ab: knnsql from ' + knnsql.__file__, file=sys.stderr, flush=True); "
         "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


# ---- the two sides -------------------------------------------------------------------------------

def describe(rev: str) -> str:
    """A revision as the report names it: short hash (+ '-dirty' working tree)."""
    if rev == WORKTREE:
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return "working tree at " + git("rev-parse", "--short", "HEAD") + (" (with uncommitted changes)" if dirty else "")
    return git("rev-parse", "--short", rev)


def copy_worktree(dest: Path) -> None:
    """The working tree's tracked files and its untracked, not ignored ones (as they are now) into dest."""
    names = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, names):
        src = REPO / name
        if src.is_file():  # tracked but deleted in the working tree: left out
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def checkout(rev: str, dest: Path) -> Path:
    """A copy of `rev` (or the working tree) at dest with its own extension built into dest/knnsql. A copy of
    the same commit left in dest by an earlier run (--workdir) is used again."""
    commit = None if rev == WORKTREE else git("rev-parse", rev + "^{commit}")
    marker = dest / ".ab-commit"
    if commit and marker.is_file() and marker.read_text() == commit:
        log(f"ab: using the copy of {describe(rev)} in {dest}")
        return dest
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if rev == WORKTREE:
        copy_worktree(dest)
    else:
        with tempfile.TemporaryFile() as tar:
            subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit], stdout=tar, check=True)
            tar.seek(0)
            with tarfile.open(fileobj=tar) as t:
                t.extractall(dest, filter="data")
    target = dest / "knnsql" / "knnsql.duckdb_extension"
    log(f"ab: building {describe(rev)} into {target}")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(dest / "ext" / "build.py"), str(target)], cwd=dest, check=True,
                   stdout=subprocess.DEVNULL)
    if not (target.parent / "_cdef.h").is_file():
        raise SystemExit(f"ab: {dest / 'ext' / 'build.py'} did not write _cdef.h beside the extension")
    log(f"ab:   built in {time.perf_counter() - t0:.0f} s")
    if commit:
        marker.write_text(commit)
    return dest


def side_env(copy: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(copy) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("KNNSQL_FUZZ_EXTENSION", None)
    return env


def check_import(copy: Path) -> str:
    out = subprocess.run([sys.executable, "-c", "import knnsql; print(knnsql.__file__); print(knnsql.extension_path()); "
                          "print(knnsql.debug()['version'])"], env=side_env(copy), cwd=tempfile.gettempdir(),
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"ab: `import knnsql` fails in {copy}:\n{out.stderr[-3000:]}")
    pkg, ext, version = out.stdout.split("\n")[:3]
    for p in (pkg, ext):
        if not Path(p).resolve().is_relative_to(copy.resolve()):
            raise SystemExit(f"ab: PYTHONPATH={copy} imports knnsql from {p}, not from the copy")
    return version


# ---- runs ----------------------------------------------------------------------------------------

def run_once(bench: Path, copy: Path, suite: str, args: list, out: Path) -> dict:
    """One suite run for one side: returns the results document it wrote."""
    out.mkdir(parents=True)
    cmd = [sys.executable, "-c", CHILD, str(bench / "run.py"), suite, *args, "--out", str(out), "--no-plots"]
    with open(out / "stderr.log", "w") as err:
        p = subprocess.run(cmd, env=side_env(copy), cwd=out, stdout=subprocess.DEVNULL, stderr=err)
    text = (out / "stderr.log").read_text()
    if p.returncode != 0:
        raise SystemExit(f"ab: {suite} failed (status {p.returncode}) with {copy}:\n{text[-3000:]}")
    imported = next((ln.split("knnsql from ", 1)[1] for ln in text.splitlines() if ln.startswith("ab: knnsql from ")), "")
    if not imported or not Path(imported).resolve().is_relative_to(copy.resolve()):
        raise SystemExit(f"ab: the {suite} run imported knnsql from {imported or '?'}, not from {copy}")
    docs = sorted(out.glob(f"{suite}*.json"))
    if len(docs) != 1:
        raise SystemExit(f"ab: expected one {suite} JSON in {out}, found {docs}")
    return json.loads(docs[0].read_text())


# ---- cells: (name, qps, recall, peer) per suite --------------------------------------------------

def cells_ann(doc: dict) -> dict:
    out = {}
    for name, r in doc["results"]["datasets"].items():
        for key, pts in r["single_thread"].items():
            label = {"knnsql": "Index.search, 1 thread"}.get(key, f"{key}, 1 thread")
            for p in pts:
                out[(name, label, f"ef {p['ef']}")] = (p["qps"], p["recall"], key != "knnsql")
        for p in r["sql_single"]["points"]:
            out[(name, "SQL knn_search, 1 stmt/query", f"ef {p['ef']}")] = (p["qps"], p["recall"], False)
        for key, label in (("knnsql", "Index.search, all cores"), ("knnsql_sql", "SQL knn() batch, all cores")):
            for p in r["batch_all_cores"][key]:
                out[(name, label, f"ef {p['ef']}")] = (p["qps"], p["recall"], False)
        for key, b in r["builds"].items():
            out[(name, f"build {key} (rows/s)", "")] = (r["n"] / b["build_s"], None, key not in ("knnsql", "knnsql_sql"))
    return out


WINDOW_PEERS = ("prefilter_slice", "hnswlib", "duckdb_sql")


def cells_window(doc: dict) -> dict:
    out = {}
    for w, r in doc["results"]["workloads"].items():
        for f in r["fractions"]:
            frac = "1 cluster" if f["exp"] == "cluster" else f"2^-{f['exp']}"
            for key, b in f["methods"].items():
                for p in b["points"]:
                    out[(w, key, frac + ("" if p["ef"] is None else f", ef {p['ef']}"))] = (
                        p["qps"], p["recall"], key in WINDOW_PEERS)
        wg = r["build"].get("window_graph")
        if wg:
            out[(w, "build window graph (rows/s)", "")] = (r["n"] / wg["build_s"], None, False)
    return out


def cells_api(doc: dict) -> dict:
    out = {}
    for r in doc["results"]["datasets"]:
        name = f"{r['dataset']} {r['n'] // 1000}k"
        out[(name, "raw knn_search", "")] = (1e3 / r["raw_ms"], None, False)
        for c in r["rows"]:
            for key, label in (("api", "table.search"), ("api_exact", "table.search .exact()"), ("sql", "db.sql"),
                               ("duck", "DuckDB SQL")):
                if key + "_ms" not in c:  # the .exact() contender left the suite with the filter-shape rewrite
                    continue
                out[(name, label, "filter keeps " + c["selectivity"])] = (1e3 / c[key + "_ms"], c[key + "_recall"],
                                                                          key == "duck")
    return out


CELLS = {"ann": cells_ann, "window": cells_window, "api": cells_api}


def foreign_cores(doc: dict):
    """Mean of the run's cpu_noise.other_processes_cores (cores kept busy by other processes), if recorded."""
    found = []

    def walk(o):
        if isinstance(o, dict):
            noise = o.get("cpu_noise")
            if isinstance(noise, dict) and noise.get("other_processes_cores") is not None:
                found.append(noise["other_processes_cores"])
            for x in o.values():
                walk(x)
        elif isinstance(o, list):
            for x in o:
                walk(x)
    walk(doc["results"])
    return statistics.fmean(found) if found else None


# ---- the table -----------------------------------------------------------------------------------

def _med(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else None


def _num(x) -> str:
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def table(suite: str, runs: dict, noise: dict) -> tuple:
    """Markdown lines for one suite from runs = {"A": [cells, ...], "B": [...]}, and its summary row; noise =
    {"A": [cores busy with other processes per run], "B": [...]}."""
    keys = []
    for side in ("A", "B"):
        for c in runs[side]:
            keys += [k for k in c if k not in keys]
    lines = [f"### {suite}", "", "| cell | A QPS | B QPS | B / A | A recall | B recall | runs A/B |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    ratios, peer_ratios, recall_diff = [], [], []
    for k in keys:
        got = {s: [c[k] for c in runs[s] if k in c] for s in ("A", "B")}
        qa, qb = _med([x[0] for x in got["A"]]), _med([x[0] for x in got["B"]])
        ra, rb = _med([x[1] for x in got["A"]]), _med([x[1] for x in got["B"]])
        peer = any(x[2] for x in got["A"] + got["B"])
        r = qb / qa if qa and qb else None
        if r:
            (peer_ratios if peer else ratios).append(r)
        if ra is not None and rb is not None and abs(ra - rb) > 0.01:
            recall_diff.append(k)
        name = " / ".join(x for x in k if x) + (" *(peer)*" if peer else "")
        lines.append(f"| {name} | {_num(qa)} | {_num(qb)} | {'-' if r is None else f'{r:.2f}x'} | "
                     f"{'-' if ra is None else f'{ra:.4f}'} | {'-' if rb is None else f'{rb:.4f}'} | "
                     f"{len(got['A'])}/{len(got['B'])} |")
    gm = lambda xs: math.exp(statistics.fmean(math.log(x) for x in xs)) if xs else None  # noqa: E731
    summary = {"suite": suite, "cells": len(ratios), "geomean": gm(ratios), "min": min(ratios, default=None),
               "max": max(ratios, default=None), "peer_cells": len(peer_ratios), "peer_geomean": gm(peer_ratios),
               "recall_diff": recall_diff, "noise": {side: [x for x in noise[side] if x is not None] for side in noise}}
    return lines, summary


def summary_lines(sums: list) -> list:
    f = lambda x: "-" if x is None else f"{x:.2f}x"  # noqa: E731
    cores = lambda xs: ", ".join(f"{x:.2f}" for x in xs) or "-"  # noqa: E731
    out = ["| suite | knnsql cells | B / A geomean | min | max | peer cells | peer B / A geomean | cells with recall A vs B "
           "> 0.01 apart | other processes' cores per run, A | ... B |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in sums:
        out.append(f"| {s['suite']} | {s['cells']} | {f(s['geomean'])} | {f(s['min'])} | {f(s['max'])} | "
                   f"{s['peer_cells']} | {f(s['peer_geomean'])} | {len(s['recall_diff'])} | {cores(s['noise']['A'])} | "
                   f"{cores(s['noise']['B'])} |")
    return out


def report(meta: dict, work: Path) -> str:
    """The Markdown report from a work folder's runs/<suite>-<round>-<side>/*.json and the run facts in meta."""
    runs = {s: {"A": [], "B": []} for s in meta["suites"]}
    noise = {s: {"A": [], "B": []} for s in meta["suites"]}
    for s in meta["suites"]:
        for r in range(meta["rounds"]):
            for side in ("A", "B"):
                for path in sorted((work / "runs" / f"{s}-{r + 1}-{side}").glob(f"{s}*.json")):
                    doc = json.loads(path.read_text())
                    runs[s][side].append(CELLS[s](doc))
                    noise[s][side].append(foreign_cores(doc))
    L = [f"A/B `{meta['command']}`, {meta['started']}, {meta['minutes']:.0f} min, {meta['rounds']} rounds (A, B "
         "alternating; medians over the rounds).", ""]
    L += [f"- {side}: {meta['revs'][side]} = {meta['names'][side]} (knnsql {meta['versions'][side]})" for side in "AB"]
    L += [f"- {s}: `benchmarks/run.py {s} {' '.join(meta['suite_args'][s])}`" for s in meta["suites"]]
    sums, body = [], []
    for s in meta["suites"]:
        lines, sm = table(s, runs[s], noise[s])
        sums.append(sm)
        body += [""] + lines
    L += ["", "QPS: ann and window as the suites report them; api 1000 / median latency ms; builds rows / build "
          "second. *(peer)* rows run no knnsql code: their spread is the machine's noise, as are the cores other "
          "processes kept busy during each run (from the suites' cpu_noise; the api suite records none).", ""]
    return "\n".join(L + summary_lines(sums) + body) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/ab.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", default=DEFAULT_BASE, help="revision A (default %(default)s)")
    p.add_argument("--head", default=WORKTREE, help=f"revision B, or {WORKTREE} (default: the working tree)")
    p.add_argument("--suites", default=",".join(SUITES), help="comma-separated, from ann,window,api (default all)")
    p.add_argument("--rounds", type=int, default=4, help="A, B pairs per suite (default %(default)s)")
    p.add_argument("--suite-args", action="append", default=[], metavar="SUITE=ARGS",
                   help="replace a suite's options, e.g. 'ann=--quick --datasets glove' (repeatable)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="folder for the copies and the runs' JSON (default: a new temporary folder, removed at the end)")
    p.add_argument("--report-only", type=Path, default=None, metavar="WORKDIR",
                   help="run nothing: the report of the A/B whose --workdir this was")
    p.add_argument("--out", type=Path, default=None, help="also write the report (Markdown) to this file")
    a = p.parse_args(argv)

    if a.report_only:
        text = report(json.loads((a.report_only / "ab.json").read_text()), a.report_only)
    else:
        suites = [s.strip() for s in a.suites.split(",") if s.strip()]
        for s in suites:
            if s not in SUITES:
                p.error(f"unknown suite {s!r}; choose from {', '.join(SUITES)}")
        sargs = {s: shlex.split(v) for s, v in DEFAULT_ARGS.items()}
        for item in a.suite_args:
            s, _, v = item.partition("=")
            if s not in SUITES:
                p.error(f"--suite-args: unknown suite {s!r}")
            sargs[s] = shlex.split(v)
        meta = {"command": "python benchmarks/ab.py " + " ".join(shlex.quote(x) for x in
                                                                 (argv if argv is not None else sys.argv[1:])),
                "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"), "rounds": a.rounds,
                "suites": suites, "suite_args": sargs, "revs": {"A": a.base, "B": a.head},
                "names": {"A": describe(a.base), "B": describe(a.head)}}
        t_start = time.perf_counter()
        work = a.workdir or Path(tempfile.mkdtemp(prefix="knnsql-ab-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            bench = work / "benchmarks"  # the working tree's suites, for both sides
            shutil.rmtree(bench, ignore_errors=True)
            shutil.copytree(HERE, bench, ignore=shutil.ignore_patterns("results", "__pycache__"))
            shutil.rmtree(work / "runs", ignore_errors=True)
            copies = {"A": checkout(a.base, work / "A"), "B": checkout(a.head, work / "B")}
            meta["versions"] = {side: check_import(c) for side, c in copies.items()}
            for r in range(a.rounds):
                for s in suites:
                    for side in ("A", "B"):
                        t0 = time.perf_counter()
                        run_once(bench, copies[side], s, sargs[s], work / "runs" / f"{s}-{r + 1}-{side}")
                        log(f"ab: round {r + 1}/{a.rounds} {s} {side}: {time.perf_counter() - t0:.0f} s")
            meta["minutes"] = (time.perf_counter() - t_start) / 60
            (work / "ab.json").write_text(json.dumps(meta, indent=1) + "\n")
            text = report(meta, work)
        finally:
            if a.workdir is None:
                shutil.rmtree(work, ignore_errors=True)
    print(text)
    if a.out:
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
