"""What the results say: anomalies in the knnsql methods' results, and the targets T1 / T2 against the
baselines."""

from __future__ import annotations

from typing import List, Optional

from .config import BASELINE_SETS, KNNSQL_KEYS, LABELS, TARGET_BAND, THRESHOLD, _flabel


def find_anomalies(wname: str, fr: List[dict], base: Optional[dict] = None) -> List[str]:
    """Correctness problems of the knnsql methods (and out-of-window / duplicate rows of any method)."""
    out = []
    for f in fr:
        for key, b in f["methods"].items():
            for p in b["points"]:
                if p["out_of_window"] or p["duplicates"] or (key in KNNSQL_KEYS and p["short_results"]):
                    out.append(f"{wname} {_flabel(f)} {LABELS[key]} ef={p['ef']}: {p['short_results']} queries with "
                               f"fewer than min(k, window) rows, {p['out_of_window']} with out-of-window rows, "
                               f"{p['duplicates']} with duplicate ids (of {p['queries']})")
            if key in KNNSQL_KEYS and b["max_recall"] < THRESHOLD and not _subset_only(f, key, b):
                last = b["points"][-1]
                out.append(f"{wname} {_flabel(f)} {LABELS[key]}: recall@10 {last['recall']:.3f} at ef={last['ef']} "
                           f"(max over the sweep {b['max_recall']:.3f}) < {THRESHOLD}")
    return out


def _subset_only(f: dict, key: str, b: dict) -> bool:
    """knn_search runs on the first few queries only: below 0.95 there while the numpy API, at the same ef over
    all queries, reaches 0.95 is a sampling effect, not a separate problem (same graph, same core call)."""
    if key != "knnsql_sql":
        return False
    ef = b["points"][0]["ef"]
    kp = next((p for p in f["methods"].get("knnsql", {}).get("points", []) if p["ef"] == ef), None)
    return bool(kp) and kp["recall"] >= THRESHOLD and b["points"][0]["queries"] < kp["queries"]


def subset_notes(wname: str, fr: List[dict]) -> List[str]:
    out = []
    for f in fr:
        b = f["methods"].get("knnsql_sql")
        if b and b["max_recall"] < THRESHOLD and _subset_only(f, "knnsql_sql", b):
            p = b["points"][0]
            kp = next(x for x in f["methods"]["knnsql"]["points"] if x["ef"] == p["ef"])
            out.append(f"{wname} {_flabel(f)}: knnsql SQL knn_search recall@10 {p['recall']:.3f} on its first "
                       f"{p['queries']} queries at ef={p['ef']}; the numpy API at that ef over {kp['queries']} "
                       f"queries: {kp['recall']:.3f}")
    return out


# ---- targets -------------------------------------------------------------------------------------

def _best_of(f: dict, keys) -> tuple:
    """(QPS, key) of the fastest of `keys` at recall >= 0.95 at this fraction."""
    cands = [(f["methods"][k]["best_qps"], k) for k in keys if k in f["methods"] and f["methods"][k]["best_qps"]]
    return max(cands) if cands else (None, None)


def evaluate_targets(res: dict) -> dict:
    """T1: knnsql >= the best baseline at every fraction; T2: >= 10x at 2^-4 ... 2^-10 on >= 2 datasets.
    Evaluated against the brief's baselines (flat prefilter, postfilter) and strictly (+ slice prefilter)."""
    out = {}
    for sname, keys in BASELINE_SETS.items():
        per = {}
        for w, r in res["workloads"].items():
            rows = []
            for f in r["fractions"]:
                k = f["methods"].get("knnsql", {}).get("best_qps")
                bq, bk = _best_of(f, keys)
                rows.append({"exp": f["exp"], "knnsql_qps": k, "baseline_qps": bq, "baseline": bk,
                             "ratio": (k / bq) if (k and bq) else None})
            core = [x for x in rows if x["exp"] != "cluster"]
            miss = [x for x in core if x["ratio"] is None or x["ratio"] < 1.0]
            band = [x for x in core if x["exp"] in TARGET_BAND]
            band_r = [x["ratio"] for x in band]
            per[w] = {"rows": rows, "t1_holds": not miss, "t1_misses": [x["exp"] for x in miss],
                      "t2_holds": bool(band) and all(x is not None and x >= 10.0 for x in band_r),
                      "t2_min": min(band_r) if band and None not in band_r else None,
                      "t2_max": max([x for x in band_r if x is not None] or [None]) if band else None,
                      "band_fractions": len(band)}
        datasets_ok = sorted({res["workloads"][w]["dataset"] for w, v in per.items() if v["t2_holds"]})
        out[sname] = {"baselines": list(keys), "per_workload": per,
                      "t1_all": all(v["t1_holds"] for v in per.values()) if per else None,
                      "t2_workloads": [w for w, v in per.items() if v["t2_holds"]], "t2_datasets": datasets_ok,
                      "t2_holds": len(datasets_ok) >= 2}
    return out
