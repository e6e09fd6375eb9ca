"""Writes the small seed corpora under fuzz/corpus/ (committed; rerun after a format change).

graph_load seeds: byte 0 selects the harness mode (1: recompute the checksum after mutation), then a
serialised graph: empty, one row, labelled rows, rows with tombstones, a cosine index, and quantized graphs
(format 3: code ranges and code rows, 8- and 4-bit, l2 and cosine, empty and with tombstones).
sql seeds: a few fixed byte strings the atheris harness decodes into SQL programs.
"""

from pathlib import Path

import numpy as np

import knnsql

HERE = Path(__file__).resolve().parent


def graph_seeds():
    rng = np.random.default_rng(7)
    out = {}
    g = knnsql.Index(4, "l2", kind="graph", m=4, ef_construction=16)
    out["empty"] = g.to_bytes()
    g.add(rng.normal(size=(1, 4)).astype(np.float32))
    out["one_row"] = g.to_bytes()
    g = knnsql.Index(3, "l2", kind="graph", m=4, ef_construction=16)
    g.add(rng.normal(size=(24, 3)).astype(np.float32), labels=np.arange(24))
    out["labelled"] = g.to_bytes()
    g.delete([1, 2, 3, 5, 8])
    out["tombstones"] = g.to_bytes()
    c = knnsql.Index(5, "cosine", kind="graph", m=2, ef_construction=8)
    c.add(rng.normal(size=(12, 5)).astype(np.float32), ids=np.arange(100, 112))
    out["cosine"] = c.to_bytes()
    for bits, metric, dim in (("sq8", "l2", 6), ("sq4", "cosine", 3)):
        q = knnsql.Index(dim, metric, kind="graph", m=2, ef_construction=8, quantization=bits)
        out[f"{bits}_empty"] = q.to_bytes()
        q.add(rng.normal(size=(10, dim)).astype(np.float32), labels=np.arange(10))
        q.delete([2, 7])
        out[f"{bits}_{metric}"] = q.to_bytes()
    return out


def main():
    gdir = HERE / "corpus" / "graph_load"
    gdir.mkdir(parents=True, exist_ok=True)
    for name, raw in graph_seeds().items():
        (gdir / f"{name}_patched").write_bytes(b"\x01" + raw)
        (gdir / f"{name}_raw").write_bytes(b"\x00" + raw)
    sdir = HERE / "corpus" / "sql"
    sdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for i in range(8):
        (sdir / f"seed_{i}").write_bytes(rng.integers(0, 256, 64 + 32 * i, dtype=np.uint8).tobytes())


if __name__ == "__main__":
    main()
