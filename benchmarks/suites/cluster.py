"""Suite "cluster": sharded tables on Ray (knnsql.cluster) against the single-node table, same run.

For 1, 2 and 4 shards (one replica each; every shard an actor in its own process on this machine) and a
single-node ``VectorTable``: ingest time of the dataset (one ``add`` of the whole frame), index build time
(``create_index()``, defaults), batch throughput of 10,000 queries (the held-out queries repeated to
10,000, one ``search(Q).limit(10)`` call), single-query latency p50/p99 over the held-out queries (one
``search(q).limit(10).to_numpy()`` per query, interleaved round robin over the contenders), recall@10
against exact search, and memory per shard (the index's bytes as ``knn_indexes()`` reports them; the
actor's resident set). The fan-out cost is the cluster's p50 minus the single table's p50.

On one 2-core machine shards share the cores: throughput cannot grow with shards here; the figures show
what the fan-out and merge cost, which is what a real cluster adds per query.
"""

from __future__ import annotations

import tempfile
import time

import numpy as np

from _common import dataset_sections, fmt, load_dataset, log, md_table, report_intro

NAME = "cluster"
SUMMARY = "sharded tables on Ray: 1/2/4 shards vs the single-node table (ingest, build, throughput, fan-out latency)"
DEFAULT_DATASETS = ["glove"]
K, BATCH, SINGLE_QUERIES = 10, 10_000, 300


def add_arguments(p) -> None:
    p.add_argument("--shards", default="1,2,4", help="comma-separated shard counts (default 1,2,4)")


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _dataset(args, name: str) -> dict:
    import knnsql
    from knnsql import cluster

    ds, reason = load_dataset(args, name, 50_000 if args.quick else None)
    if ds is None:
        return {"skipped": reason}
    X = np.ascontiguousarray(ds.X, dtype=np.float32)
    Q = np.ascontiguousarray(ds.Q, dtype=np.float32)
    ids = np.asarray(ds.ids, dtype=np.int64)
    data = {"id": ids, "emb": X}
    batch = np.ascontiguousarray(np.resize(Q, (BATCH, Q.shape[1])))
    shard_counts = [int(s) for s in args.shards.split(",")]
    c = cluster.connect(root=tempfile.mkdtemp(prefix="knnsql-bench-cluster-"))
    db = knnsql.connect()
    tables, out = {}, {"description": ds.description, "rows": len(X), "contenders": {}}
    exact = db.create_table("truth", dim=X.shape[1], metric=ds.metric)
    exact.add(data)
    exact.create_index(kind="flat")
    truth = exact.search(Q[:SINGLE_QUERIES]).limit(K).to_numpy()[1]
    for name_, make in [("single node", None)] + [(f"{s} shard{'s' if s > 1 else ''}", s) for s in shard_counts]:
        log(f"  {name_}: ingest and build")
        t0 = time.perf_counter()
        if make is None:
            t = db.create_table("single", dim=X.shape[1], metric=ds.metric)
        else:
            t = c.create_table(f"s{make}", dim=X.shape[1], metric=ds.metric, shards=make)
            t.stats()   # actors started before the clock runs on the ingest
            t0 = time.perf_counter()
        t.add(data)
        ingest = time.perf_counter() - t0
        t0 = time.perf_counter()
        t.create_index()
        build = time.perf_counter() - t0
        tables[name_] = t
        r = {"ingest_s": ingest, "build_s": build}
        if make is None:
            r["index_mb"] = [db.execute("SELECT memory_bytes FROM knn_indexes() WHERE name = 'single__emb'")
                             .fetchall()[0][0] / 2 ** 20]
        else:
            st = t.stats()
            r["index_mb"] = [s["index_bytes"] / 2 ** 20 for s in st]
            r["rss_mb"] = [_rss_mb(s["pid"]) for s in st]
        out["contenders"][name_] = r
    log("  batch throughput")
    for name_, t in tables.items():
        t.search(batch[:100]).limit(K).to_numpy()
        t0 = time.perf_counter()
        t.search(batch).limit(K).to_numpy()
        out["contenders"][name_]["batch_qps"] = BATCH / (time.perf_counter() - t0)
    log("  single queries, interleaved")
    lat = {n: [] for n in tables}
    found = {n: np.zeros((SINGLE_QUERIES, K)) for n in tables}
    for i in range(SINGLE_QUERIES):
        for n, t in tables.items():
            t0 = time.perf_counter()
            _, d = t.search(Q[i]).limit(K).to_numpy()
            lat[n].append((time.perf_counter() - t0) * 1e3)
            found[n][i, :len(d)] = d
    base = float(np.median(lat["single node"]))
    for n in tables:
        ms = np.asarray(lat[n])
        rec = float(np.mean(found[n] <= truth[:, K - 1:K] * (1 + 1e-5) + 1e-6))
        out["contenders"][n].update(p50_ms=float(np.median(ms)), p99_ms=float(np.quantile(ms, 0.99)),
                                    fanout_ms=float(np.median(ms)) - base, recall=rec)
    c.shutdown()
    db.close()
    return out


def run(args) -> dict:
    return {"datasets": {n: _dataset(args, n) for n in (args.datasets or DEFAULT_DATASETS)}}


def _section(name: str, r: dict) -> list:
    rows = []
    for n, c in r["contenders"].items():
        rows.append([n, fmt(c["ingest_s"]), fmt(c["build_s"]), fmt(c["batch_qps"]), fmt(c["p50_ms"]), fmt(c["p99_ms"]),
                     "" if n == "single node" else f"{c['fanout_ms']:+.2f}", fmt(c["recall"], 3),
                     " / ".join(fmt(x) for x in c["index_mb"]),
                     " / ".join(fmt(x) for x in c.get("rss_mb", [])) or ""])
    return [f"### {name}: {r['description']} ({r['rows']:,} rows)", "",
            md_table(["contender", "ingest s", "build s", f"batch QPS ({BATCH:,} q)", "1-query p50 ms",
                      "p99 ms", "fan-out ms", "recall@10", "index MiB per shard", "actor RSS MiB"], rows), ""]


def to_markdown(doc: dict) -> str:
    L = report_intro(doc, "## Suite `cluster` — sharded tables on Ray vs the single-node table",
                     "Every shard is a Ray actor in its own process on this 2-core machine (one replica). Batch: "
                     f"{BATCH:,} queries in one search call. Single queries: {SINGLE_QUERIES} held-out queries, one "
                     "call each, interleaved over the contenders; *fan-out ms* = the contender's p50 minus the single "
                     "table's. recall@10 tie-aware against exact search. Indexes: create_index() defaults.")
    return "\n".join(L + dataset_sections(doc["results"]["datasets"], _section))
