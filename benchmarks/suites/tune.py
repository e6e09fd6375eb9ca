"""Suite "tune": does ``create_index(target_recall=...)`` land where it is asked to?

For each dataset and target, a vector table is built through the Python tables API with
``create_index(target_recall=target)``: the build holds out up to 500 rows, tunes the default ``ef`` on them
(``knn_index_tune``) and adds them last. The tuned index is then searched, at its default width, with the
dataset's own held-out queries (never in the table), and their recall@10 is measured tie-aware against the
exact answer (knnsql's flat index). Reported: the tuned ef, the recall on the build's held-out rows, the
recall on the dataset's queries, and whether the latter lands in [target, target + 0.01].
"""

from __future__ import annotations

import time

import numpy as np

from _common import dataset_sections, fmt, load_dataset, log, md_table, report_intro

NAME = "tune"
SUMMARY = "recall auto-tuning: create_index(target_recall=t) measured on the dataset's held-out queries"
DEFAULT_DATASETS = ["fashion", "minilm", "glove"]
TARGETS = [0.9, 0.95, 0.99]
K = 10


def add_arguments(p) -> None:
    p.add_argument("--targets", default=None, help="comma-separated targets (default 0.9,0.95,0.99)")


def _recall(got_d: np.ndarray, kth: np.ndarray) -> float:
    return float(np.mean(got_d <= kth[:, None] * (1 + 1e-5) + 1e-6))


def _dataset(args, name: str, targets) -> dict:
    import knnsql

    ds, reason = load_dataset(args, name, 50_000 if args.quick else None)
    if ds is None:
        return {"skipped": reason}
    X = np.ascontiguousarray(ds.X, dtype=np.float32)
    Q = np.ascontiguousarray(ds.Q[:1000], dtype=np.float32)
    flat = knnsql.Index(X.shape[1], ds.metric)
    flat.add(X)
    _, exact_d = flat.search(Q, K)
    kth = exact_d[:, -1]
    out = {"description": ds.description, "rows": X.shape[0], "dim": X.shape[1], "metric": ds.metric, "targets": {}}
    for target in targets:
        db = knnsql.connect()
        t = db.create_table("v", dim=X.shape[1], metric=ds.metric)
        t.add({"id": np.arange(X.shape[0]), "emb": X})
        t0 = time.perf_counter()
        report = t.create_index(target_recall=target)
        build_s = time.perf_counter() - t0
        ef = db.execute("SELECT ef FROM knn_indexes()").fetchall()[0][0]
        sql = "SELECT distance FROM knn_search('v__emb', $q, k := 10)"
        got = np.array([[r[0] for r in db.execute(sql, {"q": q.tolist()}).fetchall()] for q in Q])
        r = _recall(got, kth)
        out["targets"][str(target)] = {"ef": ef, "holdout_recall": report.recall, "query_recall": r,
                                       "within": target <= r <= target + 0.01, "build_s": build_s}
        log(f"  target {target}: ef {ef}, held-out rows {report.recall:.4f}, queries {r:.4f} ({build_s:.0f} s)")
        db.close()
    return out


def run(args) -> dict:
    targets = [float(x) for x in args.targets.split(",")] if args.targets else TARGETS
    return {"targets": targets, "datasets": {n: _dataset(args, n, targets) for n in (args.datasets or DEFAULT_DATASETS)}}


def _section(name: str, r: dict) -> list:
    rows = [[t, v["ef"], fmt(v["holdout_recall"], 4), fmt(v["query_recall"], 4), "yes" if v["within"] else "no",
             fmt(v["build_s"])] for t, v in r["targets"].items()]
    return [f"### {name}: {r['description']}", "",
            md_table(["target", "tuned ef", "recall, held-out rows", "recall, queries", "lands", "build s"], rows), ""]


def to_markdown(doc: dict) -> str:
    L = report_intro(doc, "## Suite `tune` — create_index(target_recall=...), recall@10 on held-out queries",
                     "The build holds out up to 500 of the table's rows and tunes the default ef on them; *queries* "
                     "is recall@10 (tie-aware, against exact search) of 1,000 of the dataset's own held-out queries "
                     "at that default; *lands* says whether it falls in [target, target + 0.01]. ef cannot go "
                     "below k = 10, so a graph already above target + 0.01 there cannot land.")
    return "\n".join(L + dataset_sections(doc["results"]["datasets"], _section))
