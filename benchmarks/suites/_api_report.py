"""Suite "api", report: the targets (met / not met with the measured worst case) and the tables."""

from __future__ import annotations

from _common import fmt, machine_markdown, md_table, ratio
from ._api_data import K, SHAPE_TEXT, SHAPES
from ._api_lance import LADDER, setting_text

RECALL_MIN = 0.95
KNNSQL = ("api", "sql", "db.sql")


def lance_ref(cell: dict):
    """(name, method dict) of the LanceDB setting the API is judged against: the defaults when they reach
    recall 0.95 on the measured queries, else the tuned setting (when there is one)."""
    m = cell["methods"]
    if "lance" not in m:
        return None, None
    if m["lance"]["recall"] >= RECALL_MIN or "lance tuned" not in m:
        return "lance", m["lance"]
    return "lance tuned", m["lance tuned"]


def _where(r, c) -> str:
    return f"{r['dataset']} {c['key']}"


def targets(doc: dict) -> list:
    """[(target, worst case text, met bool, detail)]"""
    ds = doc["results"]["datasets"]
    rows = []
    # 1. recall
    worst = None
    for r in ds:
        for c in r["cells"]:
            for name in KNNSQL:
                v = c["methods"][name]["recall"]
                if worst is None or v < worst[0]:
                    worst = (v, f"{name}, {_where(r, c)}")
        for b in r["batches"]:
            for name in ("api", "sql"):
                v = b[name]["recall"]
                if worst is None or v < worst[0]:
                    worst = (v, f"{name} batch, {r['dataset']} {b['key']}")
    if worst:
        below = sum(1 for r in ds for c in r["cells"] for n in KNNSQL if c["methods"][n]["recall"] < RECALL_MIN) + \
            sum(1 for r in ds for b in r["batches"] for n in ("api", "sql") if b[n]["recall"] < RECALL_MIN)
        rows.append(("recall@10 >= 0.95 everywhere (api, SQL filter :=, db.sql, both batches)",
                     f"{worst[0]:.3f} ({worst[1]}); {below} measurements below 0.95", worst[0] >= RECALL_MIN))
    # 2. unfiltered API vs raw knn_search
    worst = None
    for r in ds:
        c = next((c for c in r["cells"] if c["key"] == "all"), None)
        if c is None:
            continue
        x = c["methods"]["api"]["p50_ms"] / c["methods"]["sql"]["p50_ms"]
        if worst is None or x > worst[0]:
            worst = (x, r["dataset"], c["methods"]["api"]["p50_ms"], c["methods"]["sql"]["p50_ms"])
    if worst:
        rows.append(("unfiltered API p50 <= 1.3x the raw knn_search statement",
                     f"{worst[0]:.2f}x ({worst[1]}: API {fmt(worst[2])} ms, knn_search {fmt(worst[3])} ms)",
                     worst[0] <= 1.3))

    # 3./5. speed-ups against plain DuckDB SQL
    def vs_duck(name, need, label):
        worst, fails = None, []
        for r in ds:
            for c in r["cells"]:
                m = c["methods"]
                x = m["duckdb"]["p50_ms"] / m[name]["p50_ms"]
                if x < need:
                    fails.append(f"{_where(r, c)} {x:.1f}x")
                if worst is None or x < worst[0]:
                    worst = (x, _where(r, c), m[name]["p50_ms"], m["duckdb"]["p50_ms"])
        if worst:
            text = f"{worst[0]:.1f}x ({worst[1]}: {fmt(worst[2])} ms vs {fmt(worst[3])} ms)"
            if fails:
                text += f"; below {need:g}x: " + ", ".join(fails)
            rows.append((label, text, worst[0] >= need))

    vs_duck("api", 5, "API >= 5x plain DuckDB SQL at every selectivity and shape (100% included)")
    # 4. LanceDB
    worst, fails = None, []
    for r in ds:
        for c in r["cells"]:
            name, ref = lance_ref(c)
            if ref is None:
                continue
            api = c["methods"]["api"]
            x = ref["p50_ms"] / api["p50_ms"]
            ok = x > 1 and api["recall_slow_queries"] >= ref["recall"]
            if not ok:
                why = []
                if x <= 1:
                    why.append(f"{x:.2f}x")
                if api["recall_slow_queries"] < ref["recall"]:
                    why.append(f"recall {api['recall_slow_queries']:.3f} < {ref['recall']:.3f}")
                fails.append(f"{_where(r, c)} ({', '.join(why)})")
            if worst is None or x < worst[0]:
                worst = (x, _where(r, c), api["p50_ms"], ref["p50_ms"], name)
    if worst:
        text = (f"{worst[0]:.2f}x ({worst[1]}: API {fmt(worst[2])} ms vs {worst[4]} {fmt(worst[3])} ms)"
                + (f"; fails: {', '.join(fails)}" if fails else "; recall equal or better in every cell"))
        rows.append(("API faster than LanceDB at equal or better recall, every selectivity and shape",
                     text, not fails))
    vs_duck("db.sql", 3, "rewritten db.sql >= 3x plain DuckDB SQL at every selectivity and shape")
    # 6. batches
    worst = None
    for r in ds:
        for b in r["batches"]:
            for name, label in (("api", "table.search(Q)"), ("sql", "SQL knn()")):
                x = b["loop"]["est_s"] / b[name]["p50_s"]
                if worst is None or x < worst[0]:
                    worst = (x, f"{label}, {r['dataset']} {b['key']}")
    if worst:
        rows.append(("1,000 filtered queries in one call >= 10x the DuckDB SQL loop (API and SQL batch)",
                     f"{worst[0]:.1f}x ({worst[1]})", worst[0] >= 10))
    return rows


def _cell_row(c: dict) -> list:
    m = c["methods"]

    def t(name, plans=False):
        if name not in m:
            return "-"
        v = m[name]
        return f"{fmt(v['p50_ms'])} ({v['recall']:.3f})"

    plans = ", ".join(f"{k} {v}" for k, v in m["api"]["plans"].items())
    tuned = "= defaults" if "lance tuned" not in m and "lance" in m else t("lance tuned")
    if "lance tuned" in m:
        tuned += f" [{setting_text(c['lance_tuned'])}]"
    ref_name, ref = lance_ref(c)
    lx = ratio(ref["p50_ms"], m["api"]["p50_ms"]) + (" (t)" if ref_name == "lance tuned" else "") if ref else "-"
    sql_note = "" if c["dbsql"]["rewritten"] else " not rewritten"
    return [f"{c['label']} ({c['kept_frac']:.3%})", t("api"), plans, t("sql"), t("db.sql") + sql_note, t("duckdb"),
            t("lance"), tuned, ratio(m["duckdb"]["p50_ms"], m["api"]["p50_ms"]),
            ratio(m["duckdb"]["p50_ms"], m["db.sql"]["p50_ms"]), lx]


def to_markdown(doc: dict) -> str:
    res = doc["results"]
    opts = res["opts"]
    m = doc["machine"]
    quick = " (quick run: 20k-row slices)" if doc.get("quick") else ""
    lance_v = next((r["lance_build"]["version"] for r in res["datasets"] if r.get("lance_build")), None)
    lines = [f"## Suite `api`: filtered k-NN through the table API, SQL and db.sql vs DuckDB SQL and LanceDB, k = {K}"
             + quick, "",
             f"Run {doc['started']} ({doc['duration_s'] / 60:.1f} min), `{doc['command']}`, git commit "
             f"`{m['git_commit']}`" + (f" ({res['git']['head'][:41]}...)" if res.get("git") else "") + "."
             + (f" Uncommitted changes in the tree when it ran: {', '.join(x.split()[-1] for x in res['git']['modified'])}."
                if res.get("git", {}).get("modified") else ""), "", machine_markdown(m) + (f" LanceDB {lance_v}." if lance_v else ""), "",
             "### Targets", ""]
    rows = [[t, w, "**met**" if ok else "**not met**"] for t, w, ok in targets(doc)]
    lines += [md_table(["target", "measured worst case", ""], rows, "lll"), ""]
    lines += [
        "### Design", "",
        "Per dataset, the base rows and held-out queries of `benchmarks/datasets.py`, plus attribute columns "
        "`u` DOUBLE uniform [0,1), `cat` INTEGER uniform 0..9, `u2` DOUBLE uniform [0,1) (seed 0) and `far` "
        "BIGINT = rank of the row by descending distance (the table's metric) from the centroid of the dataset's "
        "query set (0 = farthest). Three predicate shapes keep a fraction s = 10%, 1%, 0.1% (100% = no filter, "
        "one cell shared by the shapes); the kept fraction measured on the rows is printed in each row:", ""]
    lines += [f"- **{s}**: {SHAPE_TEXT[s]}" for s in SHAPES]
    lines += [
        "",
        "Contenders, one call per query, k = 10:", "",
        "- **api**: `table.search(q).where(pred).limit(10).to_arrow()` (returns id, u, cat, u2, far, distance; "
        "*plans* counts `Search.plan`).",
        "- **SQL filter :=**: `SELECT id, distance FROM knn_search('items__emb', $q::FLOAT[d], k := 10, "
        "filter := '<pred>')`; in the 100% row this is the raw `knn_search` statement.",
        "- **db.sql**: `db.sql(\"SELECT id FROM items WHERE <pred> ORDER BY array_cosine_distance(emb, "
        "$q::FLOAT[d]) LIMIT 10\", q=q).fetchall()` (`array_distance` for l2), rewritten by knnsql; since "
        "1e90c8b such a statement (plain columns the index holds) returns an `IndexResult` whose `fetchall` is "
        "one core call; its relation-only methods (`df`, `filter`...) build the DuckDB relation (~1.5 ms more).",
        "- **DuckDB SQL**: the same statement through DuckDB unchanged (exact scan).",
        "- **LanceDB**: the same rows in a local LanceDB table, IVF_HNSW_SQ vector index with the table's "
        "metric (LanceDB defaults otherwise: m 20, ef_construction 300, 8-bit SQ, default partitions), BTREE "
        "scalar indexes on u, cat, u2, far; `tbl.search(q).distance_type(metric).where(pred, prefilter=True)"
        ".limit(10).select([id, u, cat, u2, far, _distance]).to_arrow()`. *default* = LanceDB's query defaults; "
        "*tuned* = the first setting of the ladder " + "; ".join(f"`{setting_text(s)}`" for s in LADDER[1:])
        + f" reaching recall 0.95 on {opts['tune_queries']} separate tuning queries (only when the defaults do not).",
        "",
        f"Timing: {opts['queries']} queries per cell for the knnsql paths, the first {opts['slow_queries']} of "
        "them also for DuckDB SQL and LanceDB, all interleaved (round robin over the contenders for each query, "
        "the first one rotating), after 2 warm-up queries each; garbage collector off; DuckDB and LanceDB at "
        "their default thread counts. Cells: median ms (recall@10). Recall is against numpy's exact top-10 among "
        "the rows the filter keeps (float64, the table's metric, tie-aware). *api x DuckDB* = DuckDB p50 / api "
        "p50 (above 1x: knnsql faster); *api x LanceDB* is against LanceDB's defaults when they reach recall "
        "0.95, else against the tuned setting (marked t); the LanceDB target also needs the API's recall on "
        "the same queries to be equal or better.", ""]
    for r in res["datasets"]:
        lines += _dataset_md(r, opts)
    return "\n".join(lines)


def _lance_shape(lb: dict) -> str:
    p = lb.get("partitions") or {}
    det = next((v.get("details") for v in (lb.get("indexes") or {}).values()
                if isinstance(v, dict) and v.get("details") and "hnsw" in v["details"]), None) or {}
    h, c = det.get("hnsw", {}), det.get("compression", {})
    return (f"IVF partitions {p.get('partitions_ranked', '?')}, default nprobes {p.get('minimum_nprobes', '?')}, "
            f"HNSW max_connections {h.get('max_connections', '?')}, construction_ef {h.get('construction_ef', '?')}, "
            f"{c.get('type', '?')} {c.get('num_bits', '?')} bits")


def _dataset_md(r: dict, opts: dict) -> list:
    lb = r.get("lance_build")
    lines = [f"### {r['dataset']}: {r['description']}", "",
             f"knnsql: add {r['add_s']:.1f} s, graph index {r['build_s']:.1f} s ({r['index_params']})."
             + (f" LanceDB {lb['version']}: table {lb['load_s']:.1f} s, IVF_HNSW_SQ index {lb['vector_index_s']:.1f} s, "
                f"4 BTREE indexes {lb['scalar_index_s']:.1f} s; {_lance_shape(lb)}." if lb else ""), ""]
    allc = next((c for c in r["cells"] if c["key"] == "all"), None)
    if allc:
        a, s = allc["methods"]["api"], allc["methods"]["sql"]
        lines += [f"Unfiltered: raw `knn_search` statement p50 {fmt(s['p50_ms'])} ms (recall {s['recall']:.3f}), "
                  f"API p50 {fmt(a['p50_ms'])} ms (recall {a['recall']:.3f}, plans "
                  f"{', '.join(f'{k} {v}' for k, v in a['plans'].items())}): API / raw = "
                  f"{a['p50_ms'] / s['p50_ms']:.2f}x.", ""]
    heads = ["filter keeps (measured)", "api ms (recall)", "api plans", "SQL filter :=", "db.sql", "DuckDB SQL",
             "LanceDB default", "LanceDB tuned", "api x DuckDB", "db.sql x DuckDB", "api x LanceDB"]
    for shape in SHAPES:
        cs = [c for c in r["cells"] if c["shape"] == shape]
        if not cs:
            continue
        body = ([_cell_row(allc)] if allc else []) + [_cell_row(c) for c in cs]
        lines += [f"**{shape}**: {SHAPE_TEXT[shape]}", "", md_table(heads, body), ""]
    # rewrite reasons, LanceDB tuning
    reasons = {}
    for c in r["cells"]:
        reasons.setdefault(("rewritten: " if c["dbsql"]["rewritten"] else "NOT rewritten: ") + c["dbsql"]["reason"],
                           []).append(c["key"])
    lines += ["db.sql rewrite (`db.explain`): " + "; ".join(f"{k} ({', '.join(v)})" for k, v in reasons.items())
              + ".", ""]
    if lb:
        body = []
        for c in r["cells"]:
            body.append([c["key"], "; ".join(f"{setting_text(s['setting'])}: {s['recall']:.3f} / {fmt(s['p50_ms'])} ms"
                                             for s in c["lance_tuning"])])
        lines += ["LanceDB tuning ladder on the tuning queries (recall / p50 ms; stops at the first reaching 0.95):",
                  "", md_table(["cell", "settings tried"], body, "ll"), ""]
    if r["batches"]:
        body = []
        for b in r["batches"]:
            lp = b["loop"]
            body.append([b["key"], f"{b['kept_frac']:.3%}",
                         f"{fmt(b['api']['p50_s'] * 1e3)} ({b['api']['recall']:.3f})",
                         f"{fmt(b['sql']['p50_s'] * 1e3)} ({b['sql']['recall']:.3f})",
                         f"{fmt(lp['est_s'] * 1e3)} ({lp['recall']:.3f}; {fmt(lp['per_query_p50_ms'])} ms/query p50)",
                         ratio(lp["est_s"], b["api"]["p50_s"]), ratio(lp["est_s"], b["sql"]["p50_s"])])
        q = r["queries"]
        lines += [f"Batches: {q['batch']:,} queries with one filter in one call, median of {opts['repeats']} "
                  f"interleaved repeats: `table.search(Q).where(pred).limit(10).to_arrow()` and "
                  f"`SELECT qid, knn('items__emb', emb, 10, '<pred>') AS r FROM queries` (a {q['batch']:,}-row "
                  f"query table), against the plain DuckDB statement in a loop, timed on {q['loop']} of the queries "
                  f"and extrapolated to {q['batch']:,} (total time x {q['batch'] / q['loop']:g}). ms (recall@10).", "",
                  md_table(["cell", "keeps", "API batch ms", "SQL knn batch ms", "DuckDB loop ms (est.)",
                            "API x loop", "SQL x loop"], body), ""]
    ns, nb = r["noise"].get("single") or {}, r["noise"].get("batch") or {}
    if ns:
        lines += [f"Other processes kept {ns.get('other_processes_cores', 0):.2f} cores busy on average during the "
                  f"single-query cells ({ns.get('wall_s', 0) / 60:.1f} min) and "
                  f"{nb.get('other_processes_cores', 0):.2f} during the batches; steal "
                  f"{ns.get('steal_cores', 0):.2f} / {nb.get('steal_cores', 0):.2f}.", ""]
    return lines
