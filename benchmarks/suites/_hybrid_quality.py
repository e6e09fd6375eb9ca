"""Hybrid search quality on a labelled real set, for suite "integrations" (dataset ``minilm``).

Data: the MiniLM embeddings of Debian package short descriptions (datasets.load_minilm), the texts
themselves, and each package's Debian Section (58 categories; ``datasets.debian_sections``) as the
relevance label. Queries: held-out packages (not in the table): the query text is the package's
description and the query vector its embedding. A returned row is relevant when its Section is the
query package's.

Methods, each asked for the top 10 of the same table: ``vector`` (graph index, target_recall 0.95),
``keyword`` (BM25 over the descriptions: knnsql's SQL engine, or fts where it loads), ``hybrid rrf``
(k = 60, 50 candidates a side) and ``hybrid weighted`` (alpha = 0.5). Reported: precision@10 and
nDCG@10 with binary relevance (means over the queries, with their standard errors), the median
latency of one query through ``table.search``, the queries with no hit, and each method's P@10 minus the
vector search's on the same queries (paired mean and standard error).
"""

from __future__ import annotations

import time

import numpy as np

from _common import fmt, log, md_table, median

K, QUERIES = 10, 300


def _ndcg(rel: np.ndarray) -> float:
    gains = rel / np.log2(np.arange(2, len(rel) + 2))
    n_rel = int(rel.sum())
    ideal = (1.0 / np.log2(np.arange(2, min(n_rel, K) + 2))).sum() if n_rel else 0.0
    return float(gains.sum() / ideal) if ideal else 0.0


def run(ds) -> dict:
    import knnsql
    import datasets

    sections = datasets.debian_sections()
    lines = open(ds.info["packages_tsv"]).read().splitlines()
    pkgs = [ln.split("\t")[0] for ln in lines]
    texts = [ln.split("\t")[2] for ln in lines]
    ids = np.asarray(ds.ids)
    held = np.setdiff1d(np.arange(len(lines)), ids)[:QUERIES]
    Q = ds.Q[:QUERIES]
    label = np.array([sections.get(p, "?") for p in pkgs])
    db = knnsql.connect()
    t = db.create_table("packages", dim=ds.X.shape[1], metric="cosine",
                        columns={"package": "VARCHAR", "descr": "VARCHAR", "section": "VARCHAR"})
    t.add({"id": ids, "emb": ds.X, "package": [pkgs[i] for i in ids], "descr": [texts[i] for i in ids],
           "section": [label[i] for i in ids]})
    log("  hybrid: graph index (target_recall 0.95) and text index")
    t.create_index(target_recall=0.95)
    info = t.create_text_index("descr")
    methods = {
        "vector": lambda i: t.search(Q[i]).limit(K).select(["id"]),
        "keyword": lambda i: t.search(text=texts[held[i]]).limit(K).select(["id"]),
        "hybrid rrf": lambda i: t.search(vector=Q[i], text=texts[held[i]]).limit(K).select(["id"]),
        "hybrid weighted": lambda i: t.search(vector=Q[i], text=texts[held[i]]).fusion("weighted", alpha=0.5)
        .limit(K).select(["id"]),
    }
    out = {"engine": info.engine, "stemmer": info.stemmer, "queries": len(held), "rows": len(ids),
           "sections": int(len(set(label[ids]))), "methods": {}}
    per_query: dict = {}
    for name, make in methods.items():
        prec, ndcg, ms, empty = [], [], [], 0
        for i in range(len(held)):
            t0 = time.perf_counter()
            got = make(i).to_arrow()
            ms.append((time.perf_counter() - t0) * 1e3)
            hit = np.asarray(got.column("id")).astype(np.int64)
            rel = np.zeros(K)
            rel[: len(hit)] = label[hit] == label[held[i]]
            empty += len(hit) == 0
            prec.append(rel.sum() / K)
            ndcg.append(_ndcg(rel))
        se = lambda xs: float(np.std(xs, ddof=1) / np.sqrt(len(xs)))  # noqa: E731
        out["methods"][name] = {"p10": float(np.mean(prec)), "p10_se": se(prec), "ndcg10": float(np.mean(ndcg)),
                                "ndcg10_se": se(ndcg), "ms": median(ms), "empty": empty}
        per_query[name] = np.asarray(prec)
        if name != "vector":  # paired against the vector search on the same queries
            diff = per_query[name] - per_query["vector"]
            out["methods"][name].update(p10_vs_vector=float(diff.mean()), p10_vs_vector_se=se(diff))
        log(f"  {name}: P@10 {np.mean(prec):.3f}, nDCG@10 {np.mean(ndcg):.3f}, {median(ms):.2f} ms")
    db.close()
    return out


def section(r: dict) -> list:
    rows = [[name, f"{fmt(m['p10'], 3)} ± {fmt(m['p10_se'], 3)}",
             f"{m['p10_vs_vector']:+.3f} ± {m['p10_vs_vector_se']:.3f}" if "p10_vs_vector" in m else "",
             f"{fmt(m['ndcg10'], 3)} ± {fmt(m['ndcg10_se'], 3)}", fmt(m["ms"]), str(m["empty"])]
            for name, m in r["methods"].items()]
    return [f"Hybrid search quality: {r['queries']} held-out Debian packages as queries (description text + its "
            f"MiniLM vector) over {r['rows']:,} packages; relevant = same Debian Section ({r['sections']} sections). "
            f"Keyword engine: {r['engine']} (stemmer {r['stemmer']}); hybrid = 50 candidates a side.", "",
            md_table(["method", "P@10 (± s.e.)", "P@10 − vector's (paired ± s.e.)", "nDCG@10 (± s.e.)", "1-query ms",
                      "queries with no hit"], rows), ""]
