"""Helpers shared by the benchmark suites: timing, machine facts, Markdown tables."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, List, Sequence

REPO = Path(__file__).resolve().parent.parent


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextmanager
def no_gc():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def timed(fn: Callable, *args):
    """(seconds, result) of one call, garbage collector off."""
    with no_gc():
        t0 = time.perf_counter()
        out = fn(*args)
        t = time.perf_counter() - t0
    return t, out


def settle(seconds: float = 0.2) -> None:
    """Lets spinning worker threads of the previous contender (OpenBLAS, OpenMP) go to sleep."""
    time.sleep(seconds)


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    if not s:
        return float("nan")
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def cpu_snapshot() -> dict:
    """System-wide busy/steal CPU seconds (from /proc/stat), this process's CPU seconds, and wall time."""
    snap = {"wall": time.perf_counter(), "own": sum(os.times()[:4])}
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        steal = f[7] if len(f) > 7 else 0
        snap.update(busy=(sum(f[:8]) - idle - steal) / hz, steal=steal / hz)
    except (OSError, ValueError, IndexError):
        pass
    return snap


def foreign_load(a: dict, b: dict) -> dict:
    """Average number of cores busy with *other* processes between two snapshots (noise indicator)."""
    wall = b["wall"] - a["wall"]
    if "busy" not in a or wall <= 0:
        return {}
    return {"other_processes_cores": max(0.0, ((b["busy"] - a["busy"]) - (b["own"] - a["own"])) / wall),
            "steal_cores": (b["steal"] - a["steal"]) / wall, "wall_s": wall}


def _lscpu() -> dict:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    info = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gib() -> float:
    try:
        m = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        return round(int(m.group(1)) / (1 << 20), 1) if m else float("nan")
    except OSError:
        return float("nan")


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    """CPU, memory, library versions and knnsql.debug() for the results file."""
    import duckdb
    import numpy as np

    import knnsql

    lc = _lscpu()
    info = {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cores_per_socket": lc.get("Core(s) per socket"),
        "threads_per_core": lc.get("Thread(s) per core"),
        "l2_cache": lc.get("L2 cache"),
        "l3_cache": lc.get("L3 cache"),
        "hypervisor": lc.get("Hypervisor vendor"),
        "mem_total_gib": _mem_total_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "duckdb": duckdb.__version__,
        "knnsql": knnsql.__version__,
        "knnsql_debug": knnsql.debug(),
        "KNNSQL_SIMD": os.environ.get("KNNSQL_SIMD"),
        "git_commit": _git_commit(),
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        pass
    try:
        import faiss

        info["faiss"] = faiss.__version__
        info["faiss_omp_threads"] = faiss.omp_get_max_threads()
    except ImportError:
        info["faiss"] = None
    return info


def machine_markdown(m: dict) -> str:
    dbg = m.get("knnsql_debug", {})
    return (f"Machine: {m['cpu_model']}, {m['usable_cpus']} cores ({m.get('hypervisor') or 'bare metal'}), "
            f"L3 {m.get('l3_cache')}, {m['mem_total_gib']} GiB RAM; knnsql {dbg.get('version')} "
            f"(SIMD {dbg.get('simd')}, best {dbg.get('simd_best')}), git {m['git_commit']}; "
            f"DuckDB {m['duckdb']}, numpy {m['numpy']} ({m.get('numpy_blas')}), faiss-cpu {m.get('faiss')}, "
            f"Python {m['python']}.")


def report_intro(doc: dict, title: str, explanation: str) -> list:
    """The opening lines of a suite's Markdown report: title, run line, machine, what the columns mean."""
    return [title, "", f"Run {doc['started']} ({doc['duration_s'] / 60:.1f} min), `{doc['command']}`.", "",
            machine_markdown(doc["machine"]), "", explanation, ""]


def dataset_sections(datasets: dict, render: Callable[[str, dict], list]) -> list:
    """Report lines for each dataset: a skipped one says why, the others are render(name, result)."""
    lines: list = []
    for name, r in datasets.items():
        lines += [f"### {name}: skipped", "", r["skipped"], ""] if "skipped" in r else render(name, r)
    return lines


def md_table(headers: Sequence[str], rows: Iterable[Sequence], align: str | None = None) -> str:
    """A GitHub Markdown table; align is one char per column ('l' or 'r'), default first left, rest right."""
    headers = list(headers)
    align = align or ("l" + "r" * (len(headers) - 1))
    sep = ["---" if a == "l" else "---:" for a in align]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    for r in rows:
        out.append("| " + " | ".join("" if c is None else str(c) for c in r) + " |")
    return "\n".join(out)


def fmt(x, digits: int = 3) -> str:
    """Compact number: 3 significant digits, thousands separators for big values, '-' for None/NaN."""
    if x is None:
        return "-"
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    if xf != xf:
        return "-"
    if abs(xf) >= 1000:
        return f"{xf:,.0f}"
    if xf == 0:
        return "0"
    from math import floor, log10

    dec = max(0, digits - 1 - int(floor(log10(abs(xf)))))
    return f"{xf:.{dec}f}"


def ratio(a, b) -> str:
    """'a/b' formatted as 1.23x, '-' if either is missing."""
    if a is None or b is None or not b or a != a or b != b:
        return "-"
    r = a / b
    return f"{r:.2f}x" if r < 100 else f"{r:.0f}x"


def parse_size(text) -> float | None:
    """'32 MiB (1 instance)' -> bytes."""
    m = re.match(r"\s*([\d.]+)\s*([KMG])i?B", str(text or ""))
    if not m:
        return None
    return float(m.group(1)) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]


def try_import_pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        return plt
    except Exception:
        return None


def save_figure(plt, fig, path) -> str:
    """Lays out, writes (110 dpi) and closes one figure; returns its path as a string."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


def load_dataset(args, name: str, rows: int | None = None, show_rows: bool = True):
    """(dataset, None), or (None, reason) for a dataset that is not installed when --skip-missing is given
    (without it the DatasetMissing error propagates). Logs the dataset (and its row cap) as it goes."""
    import datasets

    log(f"dataset {name}" + (f" (first {rows:,} rows)" if rows and show_rows else ""))
    try:
        return datasets.load(name, max_rows=rows), None
    except datasets.DatasetMissing as exc:
        if not args.skip_missing:
            raise
        log(f"  SKIPPED: {exc}")
        return None, str(exc)


def interleaved(contenders: dict, repeats: int, keep: Callable, note: Callable = lambda name, t, out: "") -> tuple:
    """Runs every contender (name -> zero-argument callable) once per repeat, cycling through them, each after
    settle() and timed with the collector off: ({name: [seconds, ...]}, {name: keep(last result)}). Logs
    each run with note(name, seconds, kept result)."""
    times = {c: [] for c in contenders}
    kept = {}
    for r in range(repeats):
        for name, fn in contenders.items():
            settle()
            t, out = timed(fn)
            times[name].append(t)
            kept[name] = keep(out)
            log(f"  repeat {r + 1}: {name}: {t:.2f} s{note(name, t, kept[name])}")
    return times, kept


def listing(xs: List[str]) -> str:
    return ", ".join(xs)


# ---- memory --------------------------------------------------------------------------------------

try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:
    _LIBC = None


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def trimmed_rss() -> int:
    """RSS after a GC and malloc_trim (freed heap handed back), so build deltas count what the index keeps."""
    gc.collect()
    if _LIBC is not None:
        try:
            _LIBC.malloc_trim(0)
        except Exception:
            pass
    return rss_bytes()
