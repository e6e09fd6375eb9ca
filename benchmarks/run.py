#!/usr/bin/env python
"""Benchmark entry point: python benchmarks/run.py SUITE [--quick] [--repeats N] [--datasets a,b,c] ...

Suites live in benchmarks/suites/ (one module each, see suites/__init__.py). Results go to
benchmarks/results/<suite>.json and .md (and PNG plots when matplotlib is installed).

    python benchmarks/run.py list            # the suites
    python benchmarks/run.py exact --quick   # smoke run, under a minute
    python benchmarks/run.py exact           # full run (~10 min on 2 cores)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import suites  # noqa: E402
from _common import log, machine_info  # noqa: E402


def _portable(obj):
    """The result with this machine's home directory written as ~, so no committed result names a path
    that exists only here."""
    home = str(Path.home())
    if isinstance(obj, str):
        return "~" + obj[len(home):] if home != "/" and obj.startswith(home + "/") else obj
    if isinstance(obj, dict):
        return {k: _portable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_portable(v) for v in obj]
    return obj


def _jsonable(o):
    import numpy as np

    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, Path):
        return str(o)
    return o


def main(argv=None) -> int:
    names = suites.available()
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="suite", metavar="SUITE")
    sub.add_parser("list", help="list the suites")
    mods = {}
    for name in sorted(names):
        try:
            mod = suites.load(name)
        except Exception as exc:  # a broken suite must not take the others down
            log(f"warning: suite {name!r} failed to import: {type(exc).__name__}: {exc}")
            continue
        mods[name] = mod
        p = sub.add_parser(name, help=getattr(mod, "SUMMARY", ""), description=(mod.__doc__ or ""),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--quick", action="store_true", help="small slices, few repeats: a smoke run")
        p.add_argument("--repeats", type=int, default=None, help="repeats per measurement (suite default otherwise)")
        p.add_argument("--datasets", type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
                       default=",".join(getattr(mod, "DEFAULT_DATASETS", [])),
                       help="comma-separated dataset names (default: %(default)s)")
        p.add_argument("--skip-missing", action="store_true",
                       help="skip datasets that are not installed instead of failing")
        p.add_argument("--out", type=Path, default=HERE / "results", help="results folder (default: %(default)s)")
        p.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
    args = parser.parse_args(argv)

    if args.suite in (None, "list"):
        for name, mod in mods.items():
            print(f"{name:<12} {getattr(mod, 'SUMMARY', '')}")
        return 0 if args.suite == "list" else 2

    import datasets

    for d in args.datasets:
        if d not in datasets.LOADERS:
            parser.error(f"unknown dataset {d!r}; choose from {', '.join(datasets.LOADERS)}")

    mod = mods[args.suite]
    started = dt.datetime.now().astimezone()
    t0 = time.perf_counter()
    log(f"suite {args.suite}: {'quick' if args.quick else 'full'} run, datasets {','.join(args.datasets) or '-'}")
    machine = machine_info()
    try:
        results = mod.run(args)
    except datasets.DatasetMissing as exc:
        log(f"error: {exc}\n(or pass --skip-missing, or --datasets to choose others)")
        return 2
    doc = {"suite": args.suite, "quick": bool(args.quick),
           "command": "python benchmarks/run.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
           "started": started.isoformat(timespec="seconds"), "duration_s": time.perf_counter() - t0,
           "machine": machine, "results": results}
    doc = _portable(_jsonable(doc))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = args.suite + ("-quick" if args.quick else "")
    (out / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
    md = mod.to_markdown(doc) if hasattr(mod, "to_markdown") else "```\n" + json.dumps(doc["results"], indent=1) + "\n```"
    (out / f"{stem}.md").write_text(md + "\n")
    written = [out / f"{stem}.json", out / f"{stem}.md"]
    if not args.no_plots and hasattr(mod, "plot"):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log("matplotlib not installed: no plots (pip install matplotlib)")
        else:
            plot_dir = out / (stem + "-plots") if args.quick else out
            plot_dir.mkdir(parents=True, exist_ok=True)
            written += [Path(p) for p in mod.plot(doc, plot_dir)]
    print(md)
    log("wrote " + ", ".join(str(p) for p in written))
    log(f"done in {doc['duration_s'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
