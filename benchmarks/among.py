"""Filtered search on real data: knn_among (SQL), table.search().where() (Python) and plain DuckDB SQL.

GloVe 6B 50d (399k rows, cosine; id = frequency rank) in a knnsql vector table with a graph index.
Filters, each at 10% / 1% / 0.1% of the rows:

- ``uncorrelated``: ``id % m = 0`` (spread over the whole vocabulary);
- ``correlated``: ``id < n`` (the most frequent words) queried with rare words (held-out queries of
  rank above 200k), so the matching rows lie away from each query's neighbourhood.

Per cell, the same queries run through each method in turn (interleaved), and the median latency is
reported with recall@10 against the exact answer over the matching rows. Baselines in the same run:
plain DuckDB SQL (``WHERE <filter> ORDER BY array_cosine_distance(emb, q) LIMIT 10``), and for the
unfiltered row the raw ``knn_search`` statement.

    python benchmarks/among.py [--queries 40] [--rows 399000] [--out benchmarks/results/among.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datasets  # noqa: E402

import knnsql  # noqa: E402


def _commit() -> str:
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return (time.perf_counter() - t0) * 1e3, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=40)
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "among.md")
    ap.add_argument("--batch", type=int, default=1000, help="queries of the batch cells (0: none)")
    args = ap.parse_args(argv)

    ds = datasets.load_glove(args.rows)
    X, ids = ds.X, ds.ids
    n, d = X.shape
    db = knnsql.connect()
    t = db.create_table("glove", dim=d, metric="cosine")
    t.add({"id": ids, "emb": X})
    t0 = time.perf_counter()
    t.create_index()
    build_s = time.perf_counter() - t0
    index = t.index.name
    con = db.con
    rng = np.random.default_rng(0)
    Q_all = ds.Q
    # the held-out query rows as load_glove draws them: a query's GloVe row is its frequency rank
    held = np.sort(np.random.default_rng(0).choice(400_000, size=len(Q_all), replace=False))
    rare = Q_all[held > 200_000]
    Q_uncorr = Q_all[rng.choice(len(Q_all), args.queries, replace=False)]
    Q_corr = rare[rng.choice(len(rare), min(args.queries, len(rare)), replace=False)]

    def lit(q):
        return "[" + ",".join(f"{v:.8g}" for v in q) + f"]::FLOAT[{d}]"

    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)

    def truth(q, keep):
        rows = np.flatnonzero(keep)
        dist = 1 - Xn[rows] @ (q / np.linalg.norm(q))
        return set(ids[rows[np.argsort(dist, kind="stable")[:10]]].tolist())

    cells = []
    shapes = [("uncorrelated", Q_uncorr, lambda f: (f"id % {round(1 / f)} = 0", ids % round(1 / f) == 0)),
              ("correlated", Q_corr, lambda f: (f"id < {round(n * f)}", ids < round(n * f)))]
    # unfiltered: the raw statement against the API
    raw, api = [], []
    for q in Q_uncorr:
        raw.append(timed(lambda: con.execute(f"SELECT * FROM knn_search('{index}', {lit(q)}, k := 10)").fetchall())[0])
        api.append(timed(lambda: t.search(q).limit(10).to_arrow())[0])
    cells.append(("none", "100%", {"knn_search statement": statistics.median(raw),
                                    "table.search": statistics.median(api)}, {}))
    for shape, Q, make in shapes:
        for f in (0.1, 0.01, 0.001):
            cond, keep = make(f)
            lat = {"knn_among": [], "table.search().where()": [], "DuckDB SQL": []}
            hits = {k: 0 for k in lat}
            for q in Q:
                want = truth(q, keep)
                sql_among = (f"SELECT r.id FROM (SELECT unnest(knn_among('{index}', {lit(q)}, 10, id)) AS r "
                             f"FROM glove WHERE {cond})")
                sql_plain = (f"SELECT id FROM glove WHERE {cond} ORDER BY array_cosine_distance(emb, {lit(q)}), id "
                             f"LIMIT 10")
                for name, fn in (("knn_among", lambda: [r[0] for r in con.execute(sql_among).fetchall()]),
                                 ("table.search().where()",
                                  lambda: t.search(q).where(cond).limit(10).to_numpy()[0].tolist()),
                                  ("DuckDB SQL", lambda: [r[0] for r in con.execute(sql_plain).fetchall()])):
                    ms, got = timed(fn)
                    lat[name].append(ms)
                    hits[name] += len(want & set(got))
            med = {k: statistics.median(v) for k, v in lat.items()}
            rec = {k: hits[k] / (10 * len(Q)) for k in hits}
            cells.append((shape, f"{f:.1%}", med, rec))
            print(shape, f, {k: round(v, 2) for k, v in med.items()}, rec, flush=True)

    batch_lines = []
    if args.batch:
        # a batch of queries under one filter: one call, against the same loop of plain DuckDB SQL (timed
        # on every 10th query of the batch and scaled: the loop is the slow side)
        QB = Q_all[rng.choice(len(Q_all), min(args.batch, len(Q_all)), replace=False)]
        for f in (0.1, 0.01):
            cond, keep = shapes[0][2](f)
            ms, out = timed(lambda: t.search(QB).where(cond).limit(10).to_numpy())
            got = out[0]
            hits = sum(len(truth(q, keep) & set(got[i].tolist())) for i, q in enumerate(QB[:100]))
            loop = []
            for q in QB[::10]:
                sql_plain = (f"SELECT id FROM glove WHERE {cond} ORDER BY array_cosine_distance(emb, {lit(q)}), id "
                             f"LIMIT 10")
                loop.append(timed(lambda: con.execute(sql_plain).fetchall())[0])
            loop_ms = sum(loop) * len(QB) / len(loop)
            batch_lines.append(f"| uncorrelated | {f:.1%} | {len(QB)} | {ms:.0f} | {loop_ms:.0f} | {loop_ms / ms:.1f}x | "
                               f"{hits / 1000:.3f} |")
            print("batch", f, ms, loop_ms, flush=True)

    lines = [f"# Filtered search on GloVe-{n // 1000}k (`python benchmarks/among.py --queries {args.queries}`)", "",
             f"{time.strftime('%Y-%m-%d %H:%M')} UTC, git {_commit()}; graph index built in {build_s:.1f} s; "
             f"{len(Q_uncorr)} queries a cell, median latency (ms), recall@10 against the exact answer over the "
             "matching rows; all methods interleaved per query on one machine (2 cores, shared).", "",
             "| filter | kept | method | median ms | recall@10 | vs DuckDB SQL |", "| --- | --- | --- | ---: | ---: | ---: |"]
    for shape, kept, med, rec in cells:
        base = med.get("DuckDB SQL")
        for name, ms in med.items():
            ratio = f"{base / ms:.2f}x" if base else ""
            r = f"{rec[name]:.3f}" if name in rec else ""
            lines.append(f"| {shape} | {kept} | {name} | {ms:.2f} | {r} | {ratio} |")
    if batch_lines:
        lines += ["", "A batch under one filter: `table.search(Q).where(...)` (one `knn_among_join` statement) against the "
                  "same queries looped through plain DuckDB SQL (every 10th query timed, scaled to the batch); recall@10 "
                  "over the first 100 queries.", "",
                  "| filter | kept | queries | one call ms | SQL loop ms | speed-up | recall@10 |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"] + batch_lines
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
