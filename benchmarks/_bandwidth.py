"""Single-core memory read bandwidth, measured with a small C kernel compiled through cffi.

The kernel sums a float32 array with 8 independent 64-byte vector accumulators (GCC/Clang vector
extensions, ``-O3 -march=native``), so one core issues as many loads as it can and the result is bound
by memory, not by the add latency. The array is much larger than the last-level cache. The compiled
module is cached under the benchmark cache directory (see datasets.cache_dir()).

    python benchmarks/_bandwidth.py [--mib 1024] [--repeats 7]
"""

from __future__ import annotations

import hashlib
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np

_SRC = r"""
#include <stddef.h>
#include <string.h>

typedef float v16f __attribute__((vector_size(64)));

/* Sum of x[0..n). 8 accumulators of 16 floats = 512 bytes in flight per iteration. */
float knnbench_read_sum(const float *x, size_t n) {
    v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
    size_t i = 0;
    for (; i + 128 <= n; i += 128) {
        v16f b0, b1, b2, b3, b4, b5, b6, b7;
        memcpy(&b0, x + i, 64);       memcpy(&b1, x + i + 16, 64);
        memcpy(&b2, x + i + 32, 64);  memcpy(&b3, x + i + 48, 64);
        memcpy(&b4, x + i + 64, 64);  memcpy(&b5, x + i + 80, 64);
        memcpy(&b6, x + i + 96, 64);  memcpy(&b7, x + i + 112, 64);
        a0 += b0; a1 += b1; a2 += b2; a3 += b3; a4 += b4; a5 += b5; a6 += b6; a7 += b7;
    }
    v16f s = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
    float r = 0.0f;
    for (int j = 0; j < 16; j++) r += s[j];
    for (; i < n; i++) r += x[i];
    return r;
}
"""

_CDEF = "float knnbench_read_sum(const float *x, size_t n);"
_FLAGS = ["-O3", "-march=native"]


def _module(build_dir: Path):
    """Compiles (once) and imports the cffi module holding knnbench_read_sum."""
    import cffi

    tag = hashlib.sha1((_SRC + " ".join(_FLAGS) + sys.version).encode()).hexdigest()[:10]
    name = f"_knnbench_bw_{tag}"
    build_dir.mkdir(parents=True, exist_ok=True)
    built = sorted(build_dir.glob(f"{name}*.so")) + sorted(build_dir.glob(f"{name}*.pyd"))
    if not built:
        ffi = cffi.FFI()
        ffi.cdef(_CDEF)
        ffi.set_source(name, _SRC, extra_compile_args=_FLAGS)
        ffi.compile(tmpdir=str(build_dir), verbose=False)
        built = sorted(build_dir.glob(f"{name}*.so")) + sorted(build_dir.glob(f"{name}*.pyd"))
    spec = importlib.util.spec_from_file_location(name, built[0])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure(mib: int = 1024, repeats: int = 7, build_dir: Path | None = None) -> dict:
    """Median single-thread read bandwidth in GB/s (1 GB = 1e9 bytes) over ``repeats`` passes.

    Falls back to ``numpy.sum`` (reported as such) when the C kernel cannot be compiled.
    """
    if build_dir is None:
        from datasets import cache_dir  # benchmarks/ is on sys.path when run through run.py

        build_dir = cache_dir() / "build"
    n = mib * (1 << 20) // 4
    x = np.empty(n, dtype=np.float32)
    x.fill(1.0)  # touch every page before timing
    method = "cffi C kernel, 8x64-byte accumulators, " + " ".join(_FLAGS)
    try:
        mod = _module(Path(build_dir))
        ptr = mod.ffi.cast("const float *", mod.ffi.from_buffer(x))

        def once() -> float:
            return mod.lib.knnbench_read_sum(ptr, n)
    except Exception as exc:  # no compiler, no cffi...
        method = f"numpy.sum fallback (C kernel unavailable: {type(exc).__name__}: {exc})"

        def once() -> float:
            return float(x.sum())

    once()  # warm-up
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        s = once()
        samples.append(time.perf_counter() - t0)
    if abs(s - n) > 1e-3 * n:
        method += f" [checksum mismatch: {s} != {n}]"
    gbps = [n * 4 / t / 1e9 for t in samples]
    del x
    return {"gbps_median": statistics.median(gbps), "gbps_max": max(gbps), "gbps_samples": gbps,
            "array_mib": mib, "repeats": repeats, "threads": 1, "method": method}


if __name__ == "__main__":
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args()
    r = measure(a.mib, a.repeats)
    print(f"single-core read bandwidth: {r['gbps_median']:.2f} GB/s median, {r['gbps_max']:.2f} max "
          f"({r['array_mib']} MiB, {r['method']})")
