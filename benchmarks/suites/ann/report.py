"""The ann suite's Markdown report and plots."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from _common import fmt, machine_markdown, md_table, ratio, save_figure, try_import_pyplot

from .config import EF_CONSTRUCTION, K, LABELS, M, SWEEP_KEYS, THRESHOLDS
from .measure import qps_at_recall


TARGETS = [  # key, label, goal, higher is better?
    ("qps_vs_hnswlib@0.95", "knnsql Index QPS / hnswlib QPS at recall >= 0.95 (1 thread; best sweep point)", 1.5, True),
    ("qps_vs_hnswlib_interp@0.95", "same, both interpolated to recall = 0.95 exactly (see below)", 1.5, True),
    ("build_vs_hnswlib", "knnsql Index build time / hnswlib build time", 1.0, False),
    ("memory_vs_hnswlib_reported", "knnsql Index.memory_bytes / hnswlib's own allocations (formula)", 1.3, False),
    ("memory_vs_hnswlib_rss", "knnsql / hnswlib, process RSS growth over the build", 1.3, False),
    ("sql_batch_vs_numpy", "SQL batch knn(...) QPS / Index.search QPS, all cores, at the ef reaching 0.95", 0.7, True),
    ("sql_qps_vs_vss", "knnsql SQL QPS / DuckDB vss QPS, one statement per query, at recall >= 0.95*", 10.0, True),
    ("build_vs_vss", "DuckDB vss build time / knnsql SQL build time", 5.0, True),
    ("restore_sql_speedup", "knnsql SQL build time / knn_index_restore time", 20.0, True),
    ("restore_numpy_speedup", "knnsql Index build time / Index.from_bytes time", 20.0, True),
]


def _target_value(T: dict, key: str, r: Optional[dict] = None):
    if key == "qps_vs_hnswlib_interp@0.95" and r is not None:
        st = r["single_thread"]
        if "hnswlib" not in st:
            return None
        a, b = qps_at_recall(st["knnsql"], 0.95), qps_at_recall(st["hnswlib"], 0.95)
        return a / b if a and b else None
    return T.get(key)


def _x(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}x" if v < 100 else f"{v:.0f}x"


def _mib(b) -> str:
    return "-" if b is None else fmt(b / 2**20)


def _pt(p, field="qps") -> str:
    return "-" if p is None else f"{fmt(p[field])} (ef {p['ef']}, r {p['recall']:.3f})"


def vss_markdown(v: dict, sm: dict) -> List[str]:
    """One dataset's DuckDB vss paragraph and ef table (or why it was not measured)."""
    if "error" in v:
        return [f"DuckDB vss: **not measured**: {v['error']}", ""]
    rows = [[p["ef"], f"{p['recall']:.4f}", fmt(p["qps"]), fmt(p["median_ms"]), fmt(p["p90_ms"])] for p in v["points"]]
    vf = v.get("floors", {})
    L = [f"DuckDB vss {v.get('duckdb')} (extension {v.get('extension_version')}), {v['queries']} queries, "
         f"1 statement each (`{v.get('query_form')}`), threads {v.get('threads_search')} (build: "
         f"{v.get('threads_build')} threads, {fmt(v['build_s'])} s; plan uses HNSW_INDEX_SCAN: "
         f"{v.get('plan_uses_index')}). Per-statement floor: literal only {fmt(vf.get('literal_only_median_ms'))} ms; "
         f"binding a `$q` parameter instead would cost {fmt(vf.get('param_bind_only_median_ms'))} ms.", "",
         md_table(["hnsw_ef_search", "recall@10", "QPS", "median ms", "p90 ms"], rows)]
    vc = sm.get("vss_compare")
    if vc:
        L += ["", f"Compared at recall ≥ {vc['recall_level']:.3f}: knnsql SQL {_pt(vc['knnsql_sql'])} vs vss "
                  f"{_pt(vc['vss'])}."]
    return L + [""]


def to_markdown(doc: dict) -> str:
    res = doc["results"]
    opts = res["options"]
    dss = res["datasets"]
    L = [f"## Suite `ann` — approximate k-NN (HNSW), k = {K}", "",
         f"Run {doc['started']} ({doc['duration_s'] / 60:.1f} min), `{doc['command']}`.", "",
         machine_markdown(doc["machine"]) + " Peers: " +
         ", ".join(f"{k} {v}" for k, v in opts["versions"].items()) + ".", "",
         f"Every library builds an HNSW graph with M = {M} (2M links on the bottom layer), ef_construction = "
         f"{EF_CONSTRUCTION}, on all cores, once; then answers {opts['queries']} queries per ef on **one thread** "
         f"(QPS = queries / median of {opts['repeats']} interleaved repeats). recall@10 is tie-aware against "
         "exact results from knnsql's flat index, which are cross-checked against numpy on a sample. "
         f"knnsql SQL and DuckDB vss are timed one SQL statement per query ({opts['sql_queries']} and "
         f"{opts['vss_queries']} queries per ef, the same first queries; QPS = statements / median total time of "
         f"{opts['repeats']} sweeps), DuckDB threads = 1, each passing the query vector the faster way for its "
         "client (see the per-statement floors).", ""]

    # targets ------------------------------------------------------------------------------------
    L += ["### Targets", "",
          "Value per dataset; **met** / *missed* against the goal.", ""]
    rows = []
    for key, label, goal, higher in TARGETS:
        cells = []
        for name, r in dss.items():
            v = _target_value(r["summary"]["targets"], key, r)
            if v is None:
                cells.append("-")
            else:
                met = v >= goal if higher else v <= goal
                cells.append(f"{_x(v)} " + ("**met**" if met else "*missed*"))
        rows.append([label, ("≥ " if higher else "≤ ") + _x(goal)] + cells)
    L.append(md_table(["target", "goal"] + list(dss), rows, "ll" + "r" * len(dss)))
    L += ["", "\\* when vss never reaches 0.95, at the highest recall vss reaches (see the vss table). "
          "*Best sweep point* = the highest QPS among the ef values whose recall is ≥ 0.95 (as in ann-benchmarks); "
          "it jumps when one library's ef lands just above 0.95 and the other's just below. *Interpolated* = "
          "log(QPS) interpolated linearly in recall between the two ef values that bracket 0.95, for each library.", ""]

    for name, r in dss.items():
        sm = r["summary"]
        L += [f"### {name}: {r['description']}", ""]
        # builds
        rows = []
        hb = r["builds"].get("hnswlib", {})
        for key in ["knnsql", "knnsql_sql", "hnswlib", "faiss", "usearch", "vss"]:
            b = r["builds"].get(key)
            if not b:
                continue
            rows.append([LABELS[key], fmt(b["build_s"]), b.get("build_threads"),
                         ratio(b["build_s"], hb.get("build_s")) if hb else "-",
                         _mib(b.get("memory_bytes")), b.get("memory_method", ""),
                         _mib(b.get("rss_delta_bytes")),
                         ratio(b.get("memory_bytes"), hb.get("memory_bytes")) if hb else "-",
                         ratio(b.get("rss_delta_bytes"), hb.get("rss_delta_bytes")) if hb else "-"])
        L.append(md_table(["library", "build s", "threads", "build / hnswlib", "memory MiB", "(how)",
                           "RSS delta MiB", "mem / hnswlib", "RSS / hnswlib"], rows, "lrrrrlrrr"))
        if hb.get("index_file_bytes"):
            L += ["", f"hnswlib's serialised index (vectors + links + labels, no maps or locks) is "
                      f"{_mib(hb['index_file_bytes'])} MiB; knnsql / that = "
                      f"{_x(sm['targets'].get('memory_vs_hnswlib_index_file'))}."]
        L.append("")
        # best QPS at recall
        rows = []
        best = sm["best"]
        for key in ["knnsql", "hnswlib", "faiss", "usearch", "knnsql_sql", "vss"]:
            if key not in best:
                continue
            cells = [LABELS[key] + (" (1 stmt/query)" if key in ("knnsql_sql", "vss") else "")]
            for t in THRESHOLDS:
                p = best[key][str(t)]
                hp = best.get("hnswlib", {}).get(str(t))
                cells += [_pt(p), ratio(p["qps"], hp["qps"]) if p and hp else "-"]
            cells.append(f"{best[key]['max_recall']:.4f}")
            curve = (r["sql_single"]["points"] if key == "knnsql_sql" else
                     (r["vss"]["points"] if key == "vss" else r["single_thread"][key]))
            qi = qps_at_recall(curve, 0.95)
            qh = qps_at_recall(r["single_thread"]["hnswlib"], 0.95) if "hnswlib" in r["single_thread"] else None
            cells += [fmt(qi), ratio(qi, qh) if qi and qh else "-"]
            rows.append(cells)
        L.append(md_table(["contender", "best QPS at recall ≥ 0.95", "vs hnswlib", "best QPS at recall ≥ 0.9",
                           "vs hnswlib", "max recall", "QPS at 0.95, interpolated", "vs hnswlib"], rows, "lrrrrrrr"))
        L.append("")
        # sweep table
        L += [f"Recall@10 / QPS per ef, 1 thread, {r['queries']} queries:", ""]
        st = r["single_thread"]
        keys = [k for k in ["knnsql", "hnswlib", "faiss", "usearch"] if k in st]
        rows = []
        for i, ef in enumerate(p["ef"] for p in st["knnsql"]):
            cells = [ef]
            for k in keys:
                p = st[k][i]
                cells.append(f"{p['recall']:.4f} / {fmt(p['qps'])}")
            sq = r["sql_single"]["points"]
            p = next((x for x in sq if x["ef"] == ef), None)
            cells.append(f"{p['recall']:.4f} / {fmt(p['qps'])} ({fmt(p['median_ms'])} ms)" if p else "-")
            rows.append(cells)
        L.append(md_table(["ef"] + [LABELS[k] for k in keys] + ["knnsql SQL, 1 stmt/query (median ms)"], rows))
        fl = r["sql_single"]["floors"]
        L += ["", f"knnsql SQL passes the query as a parameter `$q::FLOAT[{r['dim']}]`; a statement that only binds it "
                  f"(`SELECT $q::FLOAT[{r['dim']}] IS NULL`) takes {fmt(fl['param_bind_only_median_ms'])} ms (median), "
                  f"the per-statement floor (as a literal: {fmt(fl['literal_only_median_ms'])} ms).", ""]
        rc = r.get("reachability")
        if rc:
            L += [f"Reachability: {rc['rows']:,} base vectors searched for themselves (k=10, ef={rc['ef']}); not found "
                  "at distance 0: " + ", ".join(f"{LABELS[k]} {rc[k]}" for k in ["knnsql", "hnswlib", "faiss", "usearch"]
                                                if k in rc) + ".", ""]
        # batch
        b = r["batch_all_cores"]
        rows = [[x["ef"], f"{x['recall']:.4f}", fmt(x["qps"]), f"{y['recall']:.4f}", fmt(y["qps"]), _x(y["qps"] / x["qps"])]
                for x, y in zip(b["knnsql"], b["knnsql_sql"])]
        L += [f"All cores, {r['queries']} queries in one call: knnsql `Index.search` vs SQL "
              f"`SELECT id, {r.get('knn_sql_form', 'knn(name, emb, 10, ef)')} AS r FROM queries` (ef reaching 0.95 on 1 thread: "
              f"{sm.get('ef_at_0.95')}):", ""]
        L.append(md_table(["ef", "Index recall", "Index QPS", "SQL recall", "SQL QPS", "SQL / Index"], rows))
        L.append("")
        # restore
        rs = r["restore"]
        L += [md_table(["path", "build s", "restore s", "faster than rebuild", "bytes MiB", "identical results"], [
            [path, fmt(x["build_s"]), fmt(x[restore_s]), _x(x["speedup"]), _mib(x["bytes"]), x["identical_results"]]
            for path, x, restore_s in (("SQL: knn_index_dump -> table -> knn_index_restore", rs["sql"], "restore_s"),
                                       ("numpy: Index.to_bytes -> Index.from_bytes", rs["numpy"], "from_bytes_s"))
        ], "lrrrrl"), "",
            f"(dump {fmt(rs['sql']['dump_s'])} s into {rs['sql']['parts']} parts; to_bytes {fmt(rs['numpy']['to_bytes_s'])} s; "
            "restore times are medians of "
            f"{len(rs['numpy']['from_bytes_samples_s'])}.)", ""]
        if r.get("vss") is not None:
            L += vss_markdown(r["vss"], sm)
        noise = r.get("cpu_noise", {})
        gi = r["ground_truth"]
        L += [f"Ground truth: knnsql flat index ({fmt(gi['flat_search_s'])} s for {r['queries']} queries), agreeing "
              f"with numpy on {gi['numpy_checked_queries']} sampled queries (tie-aware 1.0, strict id overlap "
              f"{gi['numpy_agreement_strict']:.4f}). Other processes kept "
              f"{fmt(noise.get('other_processes_cores'))} cores busy on average during this dataset "
              f"({fmt(r.get('wall_s', 0) / 60)} min).", ""]
    if res["skipped"]:
        L += ["Skipped datasets: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items()), ""]
    if res["warnings"]:
        L += ["**Warnings:**", ""] + [f"- {w}" for w in res["warnings"]] + [""]
    return "\n".join(L)


STYLE = {"knnsql": ("#2ca02c", "-", "o"), "hnswlib": ("#ff7f0e", "-", "s"), "faiss": ("#d62728", "-", "^"),
         "usearch": ("#9467bd", "-", "v"), "knnsql_sql": ("#1f77b4", "--", "o"), "vss": ("#7f7f7f", "--", "D"),
         "knnsql_all": ("#2ca02c", ":", "."), "knnsql_sql_all": ("#1f77b4", ":", ".")}


def plot_dataset(plt, name: str, r: dict, outdir) -> str:
    """ann-<dataset>.png: recall (x) against QPS (y, log), one curve per contender and setting."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    curves = [(k, LABELS[k] + " (1 thread)", r["single_thread"][k]) for k in SWEEP_KEYS if k in r["single_thread"]]
    curves.append(("knnsql_sql", "knnsql SQL knn_search, 1 statement/query", r["sql_single"]["points"]))
    if r.get("vss") and r["vss"].get("points"):
        curves.append(("vss", "DuckDB vss, 1 statement/query", r["vss"]["points"]))
    curves.append(("knnsql_all", "knnsql Index, all cores", r["batch_all_cores"]["knnsql"]))
    curves.append(("knnsql_sql_all", "knnsql SQL knn(...) batch, all cores", r["batch_all_cores"]["knnsql_sql"]))
    for key, label, pts in curves:
        c, ls, mk = STYLE[key]
        ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts], ls, marker=mk, color=c, label=label,
                markersize=4, linewidth=1.4)
    ax.set_yscale("log")
    ax.set_xlabel("recall@10")
    ax.set_ylabel("queries per second (log)")
    lo = min(p["recall"] for _, _, pts in curves for p in pts)
    ax.set_xlim(max(0.0, min(lo, 0.85) - 0.02), 1.005)
    ax.axvline(0.95, color="#bbbbbb", linewidth=0.8, zorder=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(f"{name}: {r['n']:,} x {r['dim']}, {r['metric']}, k={K}, M={M}, ef_construction={EF_CONSTRUCTION}")
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(plt, fig, Path(outdir) / f"ann-{name}.png")


def plot(doc: dict, outdir) -> List[str]:
    plt = try_import_pyplot()
    return [plot_dataset(plt, name, r, outdir) for name, r in doc["results"]["datasets"].items()] if plt else []
