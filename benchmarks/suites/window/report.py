"""The window suite's Markdown report and plots."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from _common import fmt, machine_markdown, md_table, save_figure, try_import_pyplot

from .config import K, LABELS, METHODS, SWEPT, THRESHOLD, _flabel
from .targets import subset_notes


# ---- report --------------------------------------------------------------------------------------

def _q(b: Optional[dict]) -> str:
    if not b:
        return ""
    if b["best_qps"] is None:
        return f"<0.95 ({b['max_recall']:.2f})"
    s = fmt(b["best_qps"])
    best = next((p for p in b["points"] if p["ef"] == b["best_ef"]), None)
    if best and best.get("probe_only"):
        s += "~"
    return s


def _plan_cell(b: Optional[dict]) -> str:
    if not b or b["best_qps"] is None:
        return "-"
    p = next((x for x in b["points"] if x["ef"] == b["best_ef"]), None)
    pl = (p or {}).get("plans") or {}
    if "exact" not in pl:
        return "-"
    return (f"{100 * pl['exact']:.0f}/{100 * pl.get('bucket', 0):.0f}/{100 * pl.get('post', 0):.0f}/"
            f"{100 * pl['graph']:.0f}/{100 * pl['fallback']:.0f}")


def _ratio_s(x) -> str:
    if x is None:
        return "-"
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


def _short(k: Optional[str]) -> str:
    return {"prefilter_flat": "pre-flat", "prefilter_slice": "pre-slice", "postfilter": "post"}.get(k, "-")


def summary_tables(res: dict) -> List[str]:
    ws = res["workloads"]
    if not ws:
        return []
    exps = []
    for r in ws.values():
        for f in r["fractions"]:
            if f["exp"] not in exps:
                exps.append(f["exp"])
    L = []
    titles = {"brief": "knnsql graph QPS / max(prefilter via flat + lo/hi, postfilter), recall@10 >= 0.95",
              "strict": "knnsql graph QPS / max(prefilter via flat + lo/hi, prefilter on the sorted slice, "
                        "postfilter), recall@10 >= 0.95"}
    for sname in ("brief", "strict"):
        per = res["targets"][sname]["per_workload"]
        L += [f"#### Summary ({sname}): {titles[sname]}", ""]
        rows = []
        for e in exps:
            row = ["1 cluster" if e == "cluster" else f"2^-{e}"]
            for w in ws:
                t = next((x for x in per[w]["rows"] if x["exp"] == e), None)
                row.append("" if t is None else f"{_ratio_s(t['ratio'])} ({fmt(t['knnsql_qps'])} / "
                                                 f"{fmt(t['baseline_qps'])} {_short(t['baseline'])})")
            rows.append(row)
        L += [md_table(["fraction"] + list(ws), rows), ""]
    L += ["Cells: ratio (knnsql QPS / best baseline QPS, baseline). pre-flat = prefilter via the flat index + lo/hi "
          "(scores every row), pre-slice = prefilter on the label-sorted slice (numpy, 1 thread), post = doubling "
          "postfilter on the same graph.", ""]
    return L


def targets_markdown(res: dict) -> List[str]:
    L = ["### Targets", ""]
    rows = []
    for sname in ("brief", "strict"):
        t = res["targets"][sname]
        for w, v in t["per_workload"].items():
            core = [x for x in v["rows"] if x["exp"] != "cluster"]
            worst = min(core, key=lambda x: x["ratio"] if x["ratio"] is not None else -1) if core else None
            t1 = "holds" if v["t1_holds"] else "misses at " + ", ".join(f"2^-{e}" for e in v["t1_misses"])
            t2 = ("holds" if v["t2_holds"] else "misses") + (
                f" (band min {_ratio_s(v['t2_min'])}, max {_ratio_s(v['t2_max'])})" if v["band_fractions"]
                else " (band not run)")
            rows.append([sname, w, t1, (f"{_ratio_s(worst['ratio'])} at 2^-{worst['exp']}" if worst else "-"), t2])
    L.append(md_table(["baselines", "workload", "T1: knnsql >= best baseline at every fraction", "worst ratio",
                       "T2: >= 10x at 2^-4 ... 2^-10"], rows, "lllll"))
    L.append("")
    for sname in ("brief", "strict"):
        t = res["targets"][sname]
        L.append(f"- **{sname}** ({', '.join(t['baselines'])}): T1 at every fraction of every workload: "
                 f"**{'holds' if t['t1_all'] else 'misses'}**; T2 (>= 10x at 2^-4 ... 2^-10 on at least two "
                 f"datasets): **{'holds' if t['t2_holds'] else 'misses'}** (holds on: "
                 f"{', '.join(t['t2_workloads']) or 'none'}).")
    return L


def to_markdown(doc: dict) -> str:
    res = doc["results"]
    o = res["options"]
    L = [f"## Suite `window` — window-filtered k-NN, k = {K}", "",
         f"Run {doc['started']} ({doc['duration_s'] / 60:.1f} min), `{doc['command']}`.", "",
         machine_markdown(doc["machine"]), "",
         f"Each query has its own random window of a fraction 2^-i of the labelled rows (consecutive in label "
         f"order); recall@10 is tie-aware against the exact top-10 inside the window (over min(10, window rows)). "
         f"Cells: **highest QPS at recall@10 >= {THRESHOLD}**, single-threaded, one call per query "
         f"(from an ef sweep {o['efs']} where applicable; `<0.95 (r)` = never reached, r = best recall; "
         f"`~` = from 2 probe queries only, each slower than {o['slow']} s). Up to {o['queries']} queries per "
         f"fraction, fewer for slow cells (budget {o['cell_budget']} s per cell; DuckDB SQL {o['duck_queries']}, "
         f"knnsql SQL {o['sql_queries']} statements). *knnsql / best* = knnsql graph QPS over the best of "
         "prefilter (flat, slice) and postfilter. *plans* = share of the knnsql graph's queries (at its best ef) "
         "answered by exact window scan / bucket-graph beams / in-search postfilter beam / two-hop filtered beam / "
         "beam + exact fallback.", ""]
    ws = res["workloads"]
    if ws:
        L += ["### Summary", ""] + summary_tables(res) + targets_markdown(res) + [""]
        L += ["Per-call floor (one thread, empty window, us per call): " + "; ".join(
            f"{w}: knnsql {fmt(r['call_overhead'].get('knnsql_us'))}, slice prefilter "
            f"{fmt(r['call_overhead'].get('prefilter_slice_us'))}, flat prefilter "
            f"{fmt(r['call_overhead'].get('prefilter_flat_us'))}" for w, r in ws.items() if r.get("call_overhead")) + ".",
              ""]
    strict = res["targets"]["strict"]["per_workload"] if ws else {}
    for w, r in ws.items():
        L += [f"### {w}: {r['description']}", "", f"Labels: {r['labels']}; {r['n_labelled']:,} labelled rows.", ""]
        b = r["build"]
        wg, pg = b.get("window_graph") or {}, b.get("plain_graph") or {}
        brow = []
        for name, x in (("knnsql graph with labels (window-capable)", wg), ("knnsql graph without labels", pg),
                        ("hnswlib (same M, ef_construction)", b.get("hnswlib") or {}),
                        ("DuckDB vss HNSW (same M, ef_construction; DuckDB 1.5.5)", b.get("vss") or {})):
            if x:
                brow.append([name, fmt(x.get("build_s")), fmt(x["calibrate_s"]) if "calibrate_s" in x else "-",
                             ", ".join(f"{r:,}" for r in x["bucket_rows"]) if x.get("bucket_rows") else "-",
                             fmt((x.get("memory_bytes") or 0) / 2**20) if x.get("memory_bytes") else "-",
                             fmt(x["rss_delta_bytes"] / 2**20) if "rss_delta_bytes" in x else "-"])
        L.append(md_table(["index", "build s (all cores, with calibration and buckets)", "of which first window query s",
                           "bucket levels (rows per bucket)", "memory_bytes MiB", "RSS growth MiB"], brow))
        if wg and pg:
            L += ["", f"Window-capable / plain: build {_ratio_s(wg['build_s'] / pg['build_s'])}, memory_bytes "
                      f"{_ratio_s(wg['memory_bytes'] / pg['memory_bytes'])}, RSS growth "
                      f"{_ratio_s(wg['rss_delta_bytes'] / pg['rss_delta_bytes']) if pg['rss_delta_bytes'] > 0 else '-'}."
                      + (" (The plain graph is built once per dataset and shared by its label sets.)"
                         if r["dataset"] == "glove" else "")]
        elif wg:
            L += ["", "No plain graph for this dataset (skipped for time; `--plain-graph all` builds it)."]
        L.append("")
        keys = [k for k in METHODS if any(k in f["methods"] for f in r["fractions"])]
        rows = []
        for f in r["fractions"]:
            t = next(x for x in strict[w]["rows"] if x["exp"] == f["exp"])
            rows.append([_flabel(f), fmt(f["w_median"])] + [_q(f["methods"].get(k)) for k in keys]
                        + [_ratio_s(t["ratio"]), _plan_cell(f["methods"].get("knnsql"))])
        L.append(md_table(["fraction", "window rows"] + [LABELS[k] for k in keys] + ["knnsql / best", "plans"], rows))
        noise = r.get("cpu_noise") or {}
        L += ["", f"Other processes kept {fmt(noise.get('other_processes_cores'))} cores busy on average while this "
                  f"workload ran (steal {fmt(noise.get('steal_cores'))}). hnswlib queries that raised (fewer than k "
                  f"found): {r.get('hnswlib_failures', 0)}.", ""]
        L += ["<details><summary>recall / QPS points (ef: recall @ QPS)</summary>", ""]
        drows = []
        for f in r["fractions"]:
            for k in SWEPT + ("knnsql_ffi", "knnsql_sql", "knnsql_sql_batch", "vss"):
                if k in f["methods"]:
                    pts = "; ".join(f"{p['ef']}: {p['recall']:.3f} @ {fmt(p['qps'])}" + ("~" if p["probe_only"] else "")
                                    for p in f["methods"][k]["points"])
                    drows.append([_flabel(f), LABELS[k], pts])
        L.append(md_table(["fraction", "method", "points"], drows, "lll"))
        L += ["", "</details>", ""]
    if res["skipped"]:
        L += ["Skipped: " + "; ".join(f"{k} ({v})" for k, v in res["skipped"].items()), ""]
    notes = [x for w, r in ws.items() for x in subset_notes(w, r["fractions"])]
    if notes:
        L += ["Sampling notes (not anomalies: knn_search is the same graph and core call as the numpy API, and "
              "returned the same result sets as the numpy API on all 200 queries of a separate check on minilm, full window, ef 48):", ""] + [f"- {x}" for x in notes] + [""]
    if res["anomalies"]:
        L += ["**Anomalies:**", ""] + [f"- {a}" for a in res["anomalies"]] + [""]
    else:
        L += ["No anomalies: every knnsql result had min(k, window rows) rows, all inside the window, no duplicates, "
              "and the knnsql sweeps reached recall@10 >= 0.95 at every fraction.", ""]
    return "\n".join(L)


COLORS = {"knnsql": "#2ca02c", "knnsql_ffi": "#98df8a", "prefilter_flat": "#9467bd", "prefilter_slice": "#8c564b",
          "postfilter": "#ff7f0e", "hnswlib": "#d62728", "duckdb_sql": "#7f7f7f", "knnsql_sql": "#1f77b4",
          "knnsql_sql_batch": "#17becf", "vss": "#bcbd22"}


def plot_workload(plt, w: str, r: dict, outdir) -> str:
    """window-<workload>.png: QPS at recall 0.95 against the window fraction, one line per method."""
    fig, ax = plt.subplots(figsize=(9.5, 4.8))
    fr = [f for f in r["fractions"] if f["exp"] != "cluster"]
    for k in METHODS:
        xs, ys = [], []
        for f in fr:
            b = f["methods"].get(k)
            if b and b["best_qps"]:
                xs.append(f["fraction"])
                ys.append(b["best_qps"])
        if xs:
            ax.plot(xs, ys, marker="o", ms=3.5, lw=2.2 if k == "knnsql" else 1.2, color=COLORS[k], label=LABELS[k])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("window fraction of the rows (log2)")
    ax.set_ylabel(f"QPS at recall@10 >= {THRESHOLD} (1 thread, log)")
    ax.set_title(f"{w}: {r['n']:,} x {r['dim']} ({r['metric']}), k = {K}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7.5, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save_figure(plt, fig, Path(outdir) / f"window-{w}.png")


def plot(doc: dict, outdir) -> List[str]:
    plt = try_import_pyplot()
    return [plot_workload(plt, w, r, outdir) for w, r in doc["results"]["workloads"].items()] if plt else []
